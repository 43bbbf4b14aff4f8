"""grep's byte search: the C ``memmem`` and ``bytes.find`` give the same offsets."""

from __future__ import annotations

import mmap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtrace.stitch import _search
from logtrace.stitch._search import PURE_PYTHON, find

native = pytest.importorskip("logtrace.stitch._native_find")


class TestSameOffsets:
    @settings(max_examples=400)
    @given(
        st.binary(max_size=300),
        st.binary(max_size=6),
        st.integers(0, 320),
        st.integers(0, 320),
    )
    def test_any_bytes_any_window(self, data: bytes, needle: bytes, start: int, stop: int) -> None:
        assert native.find(data, needle, start, stop) == data.find(needle, start, stop)

    @given(st.lists(st.sampled_from([b"a", b"b", b"ab", b"\n", b"\x00"]), max_size=200))
    def test_repetitive_text(self, parts: list[bytes]) -> None:
        data = b"".join(parts)
        for needle in (b"ab", b"aab", b"ba\n", b"\x00a", b"abab"):
            pos, found = 0, []
            while (pos := native.find(data, needle, pos, len(data))) >= 0:
                found.append(pos)
                pos += 1
            want, pos = [], 0
            while (pos := data.find(needle, pos)) >= 0:
                want.append(pos)
                pos += 1
            assert found == want

    def test_a_mapped_file(self, tmp_path: Path) -> None:
        path = tmp_path / "app.log"
        trace = b"4bf92f3577b34da6a3ce929d0e0e4736"
        path.write_bytes(b'{"msg": "x"}\n' * 50_000 + trace + b"\n" + b"y" * 10)
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            assert native.find(data, trace, 0, len(data)) == 13 * 50_000
            assert native.find(data, trace, 13 * 50_000 + 1, len(data)) == -1
            assert native.find(data, trace, 0, 13 * 50_000 + 31) == -1  # the window cuts it


class TestSwitch:
    def test_pure_python_turns_the_c_search_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        calls: list[object] = []

        class Spy:
            @staticmethod
            def find(*args: object) -> int:
                calls.append(args)
                return -1

        monkeypatch.setattr(_search, "native_find", Spy)
        assert find(b"abc", b"c", 0, 3) == -1
        assert len(calls) == 1
        monkeypatch.setenv(PURE_PYTHON, "1")
        assert find(b"abc", b"c", 0, 3) == 2
        assert len(calls) == 1

    def test_the_switch_is_the_stitchers(self) -> None:
        from logtrace.stitch._native import PURE_PYTHON as stitcher_switch

        assert stitcher_switch == PURE_PYTHON
