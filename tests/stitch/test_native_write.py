"""The C JSON-lines writer: the same bytes as the pure-Python one, and bad
arguments raise instead of crashing the process."""

from __future__ import annotations

import gc
import math
import mmap
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from _renderdata import EXAMPLE, hostile_logs, skewed_copy
from _stitchutil import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtrace.stitch import _native, _render_jsonl
from logtrace.stitch._model import (
    JSON,
    LOGFMT,
    REASONS,
    ROW_DTYPE,
    Order,
    Rendering,
    Source,
    Table,
    Tree,
)
from logtrace.stitch._render_jsonl import write_jsonl
from logtrace.testing import SynthConfig, generate

native = pytest.importorskip("logtrace.stitch._native_write")

PURE = "LOGTRACE_PURE_PYTHON"


@pytest.fixture(autouse=True)
def _native_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PURE, raising=False)


def _stitch(out: Path, monkeypatch: pytest.MonkeyPatch, pure: bool, *argv: str) -> bytes:
    if pure:
        monkeypatch.setenv(PURE, "1")
    else:
        monkeypatch.delenv(PURE, raising=False)
    assert _native.native_enabled(_native.native_write) is not pure
    code, err = run("stitch", "--format", "jsonl", "-q", "-o", str(out), *argv)
    assert code == 0, err
    return out.read_bytes()


def _both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *argv: str) -> bytes:
    fast = _stitch(tmp_path / "native.jsonl", monkeypatch, False, *argv)
    slow = _stitch(tmp_path / "pure.jsonl", monkeypatch, True, *argv)
    assert fast == slow
    return fast


@pytest.fixture(scope="module")
def synth_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig(
        traces=150,
        seed=11,
        skew_ms=40.0,
        drift_ppm=30.0,
        foreign_rate=0.15,
        noise_rate=0.05,
        corrupt_rate=0.02,
        rotate=True,
    )
    return generate(str(root), cfg).files


class TestSameBytes:
    def test_generated_logs(
        self, synth_files: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert any(f.endswith(".gz") for f in synth_files)
        out = _both(tmp_path, monkeypatch, *synth_files)
        lines = out.split(b"\n")[:-1]
        # The data exercises every kind of line the C path treats differently.
        assert b'"offset_ms":0.0,' in out and b'"offset_ms":null,' in out
        assert any(b'"offset_ms":' in x and b'"offset_ms":0.0,' not in x for x in lines)
        assert b'"trace_id":null' in out
        assert b'"reason":"no trace id"}' in out
        assert b'"reason":"binary"}' in out or b'"reason":"truncated line"}' in out
        assert b'"record":{"message":' in out  # plain text lines
        assert b'"record":{"ts":' in out  # logfmt lines
        assert b'"reason":"unparseable json"}' in out
        assert b'"timestamp":null' in out

    def test_generated_logs_in_small_batches(
        self, synth_files: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(_render_jsonl, "_NATIVE_BATCH", 97)
        monkeypatch.setattr(_render_jsonl, "_BATCH", 61)
        whole = _stitch(tmp_path / "whole.jsonl", monkeypatch, True, "--jobs", "1", *synth_files)
        assert _both(tmp_path, monkeypatch, "--jobs", "2", *synth_files) == whole

    def test_example_logs(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        out = _both(tmp_path, monkeypatch, str(EXAMPLE))
        assert out.count(b"\n") > 10

    def test_skewed_example_logs(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        logs = skewed_copy(tmp_path / "skewed")
        out = _both(tmp_path, monkeypatch, str(logs))
        assert b'"offset_ms":0.0,' in out

    def test_hostile_logs(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        out = _both(tmp_path, monkeypatch, str(hostile_logs(tmp_path / "hostile")))
        assert out

    def test_nothing_to_write(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        empty = tmp_path / "empty.log"
        empty.write_bytes(b"")
        assert _both(tmp_path, monkeypatch, str(empty)) == b""


# ---- renderings built directly, to reach values real logs rarely hold ----------

_NAMES = st.text(min_size=0, max_size=12)
_EDGE_TIMES = [
    -62135596800.0,  # 0001-01-01T00:00:00
    -62135596800.000001,  # just before year 1
    -62135596799.9999995,
    253402300799.99997,  # the last representable second of 9999
    253402300800.0,  # 10000-01-01
    -1e-7,
    -0.0000005,
    0.0,
    951782400.0,  # 2000-02-29
    4107542400.0,  # 2100-03-01
    -2208988800.5,  # 1900, half a second
    1e12,
    -1e12,
    math.nan,
]
_TIMES = st.one_of(
    st.sampled_from(_EDGE_TIMES),
    st.floats(-62135596800.0, 253402300800.0),
    st.floats(-9e12, 9e12),
    st.floats(1.7e9, 1.8e9),
)


@st.composite
def _renderings(draw: st.DrawFn, tmp: Path) -> Rendering:
    n_files = draw(st.integers(1, 3))
    sources: list[Source] = []
    files_lines: list[list[tuple[int, int]]] = []
    for k in range(n_files):
        lines = draw(st.lists(st.binary(max_size=30), min_size=1, max_size=6))
        path = tmp / f"f{k}.log"
        data = b"".join(lines)
        path.write_bytes(data)
        spans_of: list[tuple[int, int]] = []
        pos = 0
        for line in lines:
            spans_of.append((pos, len(line)))
            pos += len(line)
        files_lines.append(spans_of)
        sources.append(Source(draw(_NAMES), str(path)))
    services = draw(st.lists(_NAMES, min_size=1, max_size=4))
    traces = draw(st.lists(_NAMES, min_size=1, max_size=4))
    n_spans = draw(st.integers(1, 5))
    spans = draw(st.lists(_NAMES, min_size=n_spans, max_size=n_spans))
    span_trace = draw(st.lists(st.integers(0, len(traces) - 1), min_size=n_spans, max_size=n_spans))
    span_depth = draw(st.lists(st.integers(0, 2**31 - 1), min_size=n_spans, max_size=n_spans))
    n = draw(st.integers(0, 25))
    rows = np.zeros(n, dtype=ROW_DTYPE)
    file = np.zeros(n, dtype=np.int32)
    depth = np.zeros(n, dtype=np.int32)
    corrected = np.zeros(n, dtype=np.float64)
    for i in range(n):
        f = draw(st.integers(0, n_files - 1))
        off, length = draw(st.sampled_from(files_lines[f]))
        span = draw(st.integers(-1, n_spans - 1))
        trace = span_trace[span] if span >= 0 else draw(st.integers(-1, len(traces) - 1))
        file[i] = f
        depth[i] = span_depth[span] if span >= 0 else 0
        rows[i] = (
            off,
            length,
            draw(st.integers(-(2**31), 2**31 - 1)),
            draw(_TIMES),
            trace,
            span,
            draw(st.integers(-1, n_spans - 1)),
            draw(st.integers(0, len(services) - 1)),
            draw(st.sampled_from([JSON, 0, LOGFMT, JSON | 4, 64])),
            draw(st.integers(0, len(REASONS) - 1)),
        )
        corrected[i] = draw(st.one_of(_TIMES, st.just(float(rows["ts"][i]))))
    perm = np.array(draw(st.permutations(list(range(n)))), dtype=np.int64)
    n_traced = draw(st.integers(0, n))
    table = Table(
        sources=sources,
        data_paths=[s.path for s in sources],
        rows=rows,
        file=file,
        span_start=np.full(n, np.nan),
        traces=traces,
        spans=spans,
        span_trace=np.array(span_trace, dtype=np.int32),
        services=services,
        warnings=[],
    )
    empty_i = np.zeros(0, dtype=np.int32)
    empty_f = np.zeros(0, dtype=np.float64)
    empty_b = np.zeros(0, dtype=bool)
    tree = Tree(empty_i, empty_b, empty_i, empty_b, empty_i, empty_f, empty_f, empty_b, depth)
    order = Order(perm, n_traced, empty_f, empty_f)
    return Rendering(table, tree, corrected, order)


def _write(r: Rendering, spool: Path) -> bytes:
    path = spool / "out.jsonl"
    with open(path, "wb") as out:
        write_jsonl(r, out, 1, str(spool))
    return path.read_bytes()


class TestOddValues:
    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(data=st.data())
    def test_same_bytes(
        self, data: st.DataObject, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        r = data.draw(_renderings(tmp_path))
        batch = data.draw(st.sampled_from([4, 1 << 16]))
        monkeypatch.setattr(_render_jsonl, "_NATIVE_BATCH", batch)
        fast = _write(r, tmp_path)
        monkeypatch.setenv(PURE, "1")
        try:
            slow = _write(r, tmp_path)
        finally:
            monkeypatch.delenv(PURE)
        assert fast == slow
        assert fast.count(b"\n") >= len(r.order.rows)

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (-62135596800.0, b'"0001-01-01T00:00:00.000000Z"'),
            (253402300799.5, b'"9999-12-31T23:59:59.500000Z"'),
            (951868799.25, b'"2000-02-29T23:59:59.250000Z"'),
            (-0.25, b'"1969-12-31T23:59:59.750000Z"'),
            (math.nan, b"null"),
            (253402300800.0, b'"10000-01-01T00:00:00.000000Z"'),
        ],
    )
    def test_timestamps(self, seconds: float, text: bytes) -> None:
        out = bytearray()
        size = native.render_batch(out, *_args(1, us=_us(seconds), stamps=_odd(seconds)))
        assert b'"timestamp":' + text + b"," in bytes(out[:size])


def _us(seconds: float) -> int:
    scaled = round(seconds * 1e6) if math.isfinite(seconds) else 0
    return scaled if -62135596800000000 <= scaled < 253402300800000000 else 0


def _odd(seconds: float) -> tuple[list[int], list[bytes]] | None:
    if seconds != seconds:
        return [0], [b"null"]
    if -62135596800 <= seconds < 253402300800:
        return None
    text = np.datetime_as_string(np.array([round(seconds * 1e6)], dtype="datetime64[us]"))[0]
    return [0], [f'"{text}Z"'.encode()]


# ---- the C function called directly ----------------------------------------------

_DTYPES = ("<i4", "<i4", "<i4", "<u2", "<i4", "<i8", "<f8", "<i4", "<i4", "<i8", "<i4", "u1")
_DATA = b'{"a":1}{"b":2}'


def _args(
    n: int,
    us: int = 1_772_359_200_000_000,
    stamps: tuple[list[int], list[bytes]] | None = None,
    **changes: Any,
) -> list[Any]:
    columns = [np.zeros(n, dtype=d) for d in _DTYPES]
    columns[5][:] = us
    columns[10][:] = 7  # every row is the first 7 bytes of _DATA
    rows, texts = stamps or ([], [])
    args: dict[str, Any] = {
        "columns": tuple(columns),
        "traces": ("t0",),
        "spans": ("s0",),
        "services": (b'"svc"',),
        "files": (b'"f.log"',),
        "tails": (b"}\n", b',"reason":"x"}\n'),
        "sources": [_DATA],
        "stamp_rows": np.array(rows, dtype=np.int64),
        "stamp_texts": tuple(texts),
        "record_rows": np.zeros(0, dtype=np.int64),
        "record_texts": (),
    }
    for key, value in changes.items():
        if key.startswith("col_"):
            index = int(key[4:])
            columns[index] = value
            args["columns"] = tuple(columns)
        else:
            args[key] = value
    return list(args.values())


def _set(index: int, value: Any, n: int = 2) -> npt.NDArray[Any]:
    column = np.zeros(n, dtype=_DTYPES[index])
    if index == 10:
        column[:] = 7
    column[-1] = value
    return column


_BAD: tuple[tuple[str, dict[str, Any], type[Exception]], ...] = (
    ("too few columns", {"columns": (np.zeros(1),)}, ValueError),
    ("columns not a tuple", {"columns": [np.zeros(1)] * 12}, TypeError),
    ("wrong dtype", {"col_0": np.zeros(2, dtype=np.int64)}, TypeError),
    ("float for int", {"col_5": np.zeros(2, dtype=np.float64)}, TypeError),
    ("unsigned for signed", {"col_8": np.zeros(2, dtype=np.uint32)}, TypeError),
    ("big-endian", {"col_6": np.zeros(2, dtype=">f8")}, TypeError),
    ("two dimensions", {"col_1": np.zeros((2, 1), dtype=np.int32)}, ValueError),
    ("not a buffer", {"col_2": [0, 0]}, TypeError),
    ("lengths differ", {"col_3": np.zeros(3, dtype=np.uint16)}, ValueError),
    ("trace out of range", {"col_0": _set(0, 1)}, IndexError),
    ("span out of range", {"col_1": _set(1, 5)}, IndexError),
    ("parent out of range", {"col_2": _set(2, 2**31 - 1)}, IndexError),
    ("service out of range", {"col_3": _set(3, 1)}, IndexError),
    ("file out of range", {"col_7": _set(7, 1)}, IndexError),
    ("negative file", {"col_7": _set(7, -1)}, IndexError),
    ("reason out of range", {"col_11": _set(11, 2)}, IndexError),
    ("negative offset", {"col_9": _set(9, -1)}, ValueError),
    ("offset past the end", {"col_9": _set(9, 8)}, ValueError),
    ("huge offset", {"col_9": _set(9, 2**62)}, ValueError),
    ("negative length", {"col_10": _set(10, -1)}, ValueError),
    ("length past the end", {"col_10": _set(10, 15)}, ValueError),
    ("year 10000 without text", {"col_5": _set(5, 253402300800000000)}, ValueError),
    ("year 0 without text", {"col_5": _set(5, -62135596800000001)}, ValueError),
    ("trace not str", {"traces": (b"t0",)}, TypeError),
    ("service not bytes", {"services": ('"svc"',)}, TypeError),
    ("traces not a tuple", {"traces": ["t0"]}, TypeError),
    ("surrogate in an id", {"spans": ("\ud800",)}, UnicodeEncodeError),
    ("file not open", {"sources": [None]}, ValueError),
    ("no such source", {"sources": []}, IndexError),
    ("negative descriptor", {"sources": [-1]}, ValueError),
    ("closed descriptor", {"sources": [2**31 - 2]}, OSError),
    ("huge descriptor", {"sources": [2**80]}, OverflowError),
    ("source not a buffer", {"sources": [1.5]}, TypeError),
    (
        "stamp rows unsorted",
        {"stamp_rows": np.array([1, 0]), "stamp_texts": (b"1", b"2")},
        ValueError,
    ),
    (
        "stamp row repeated",
        {"stamp_rows": np.array([0, 0]), "stamp_texts": (b"1", b"2")},
        ValueError,
    ),
    ("stamp row past the end", {"stamp_rows": np.array([2]), "stamp_texts": (b"1",)}, ValueError),
    ("negative stamp row", {"stamp_rows": np.array([-1]), "stamp_texts": (b"1",)}, ValueError),
    ("texts missing", {"record_rows": np.array([0]), "record_texts": ()}, ValueError),
    ("texts not bytes", {"record_rows": np.array([0]), "record_texts": ("x",)}, TypeError),
    ("texts not a tuple", {"record_rows": np.array([0]), "record_texts": [b"x"]}, TypeError),
    (
        "rows not int64",
        {"record_rows": np.array([0], dtype=np.int32), "record_texts": (b"x",)},
        TypeError,
    ),
    ("out not a bytearray", {"out": b""}, TypeError),
    ("sources not a list", {"sources": (_DATA,)}, TypeError),
    ("non-ASCII id out of range", {"spans": ("é",), "col_2": _set(2, 1)}, IndexError),
)


class TestRenderBatch:
    def test_one_line(self) -> None:
        out = bytearray(b"leftover from before" * 10)
        size = native.render_batch(out, *_args(1))
        assert bytes(out[:size]) == (
            b'{"trace_id":"t0","span_id":"s0","parent_span_id":"s0","service":"svc",'
            b'"depth":0,"timestamp":"2026-03-01T10:00:00.000000Z","offset_ms":0.0,'
            b'"file":"f.log","line":0,"record":{"a":1}}\n'
        )

    def test_overrides_and_nulls(self, tmp_path: Path) -> None:
        path = tmp_path / "data"
        path.write_bytes(_DATA)
        fd = os.open(path, os.O_RDONLY)
        try:
            out = bytearray()
            size = native.render_batch(
                out,
                *_args(
                    3,
                    stamps=([1], [b"null"]),
                    col_0=np.array([-1, 0, -1], dtype=np.int32),
                    col_6=np.array([np.nan, -0.0, 1e-7], dtype=np.float64),
                    col_8=np.array([2**31 - 1, -(2**31), 5], dtype=np.int32),
                    col_9=np.array([0, 7, 7], dtype=np.int64),
                    col_11=np.array([0, 1, 0], dtype=np.uint8),
                    sources=[fd],
                    record_rows=np.array([2], dtype=np.int64),
                    record_texts=(b'{"message":"x"}',),
                ),
            )
        finally:
            os.close(fd)
        lines = bytes(out[:size]).split(b"\n")
        assert lines[0].startswith(b'{"trace_id":null,')
        assert b'"offset_ms":null,' in lines[0] and b'"line":2147483647,' in lines[0]
        assert lines[0].endswith(b'"record":{"a":1}}')
        assert b'"timestamp":null,"offset_ms":0.0,' in lines[1]
        assert lines[1].endswith(b'"line":-2147483648,"record":{"b":2},"reason":"x"}')
        assert b'"offset_ms":1e-07,' in lines[2]
        assert lines[2].endswith(b'"record":{"message":"x"}}')
        assert lines[3] == b""

    def test_pread_past_the_end_gives_what_is_there(self, tmp_path: Path) -> None:
        path = tmp_path / "data"
        path.write_bytes(_DATA)
        with open(path, "rb") as f:
            out = bytearray()
            args = _args(1, col_9=np.array([10], dtype=np.int64), sources=[f.fileno()])
            size = native.render_batch(out, *args)
        assert bytes(out[:size]).endswith(b'"record":":2}}\n')

    def test_grows_the_buffer_and_reads_strided_columns(self) -> None:
        n = 5000
        rows = np.zeros(n, dtype=ROW_DTYPE)
        rows["len"] = 7
        rows["line"] = np.arange(n)
        args = _args(n, col_8=rows["line"], col_10=rows["len"], col_9=rows["off"])
        out = bytearray()
        size = native.render_batch(out, *args)
        lines = bytes(out[:size]).split(b"\n")
        assert len(lines) == n + 1
        assert lines[4321].endswith(b'"line":4321,"record":{"a":1}}')

    @pytest.mark.parametrize(("changes", "error"), [b[1:] for b in _BAD], ids=[b[0] for b in _BAD])
    def test_bad_arguments_raise(self, changes: dict[str, Any], error: type[Exception]) -> None:
        changes = dict(changes)
        out = changes.pop("out", bytearray())
        with pytest.raises(error):
            native.render_batch(out, *_args(2, **changes))

    @pytest.mark.parametrize(("start", "length"), [(2**63 - 2, 7), (-1, 7), (0, -1)])
    def test_bad_offsets_to_pread_raise(self, tmp_path: Path, start: int, length: int) -> None:
        path = tmp_path / "data"
        path.write_bytes(_DATA)
        with open(path, "rb") as f, pytest.raises(ValueError):
            native.render_batch(
                bytearray(),
                *_args(
                    1,
                    col_9=np.array([start], dtype=np.int64),
                    col_10=np.array([length], dtype=np.int32),
                    sources=[f.fileno()],
                ),
            )

    def test_closed_map_raises(self, tmp_path: Path) -> None:
        path = tmp_path / "data"
        path.write_bytes(_DATA)
        with open(path, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        data.close()
        with pytest.raises(ValueError):
            native.render_batch(bytearray(), *_args(1, sources=[data]))

    def test_buffer_in_use_cannot_grow(self) -> None:
        out = bytearray()
        with memoryview(out), pytest.raises(BufferError):
            native.render_batch(out, *_args(3))

    def test_threads_render_at_once(self) -> None:
        args = _args(20_000, col_6=np.linspace(-50.0, 50.0, 20_000))
        want = bytearray()
        size = native.render_batch(want, *args)

        def render(_: int) -> bytes:
            out = bytearray()
            return bytes(out[: native.render_batch(out, *args)])

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(render, range(16)))
        assert all(got == want[:size] for got in results)

    def test_keyword_arguments(self) -> None:
        names = ["columns", "traces", "spans", "services", "files", "tails", "sources"]
        names += ["stamp_rows", "stamp_texts", "record_rows", "record_texts"]
        out = bytearray()
        size = native.render_batch(out=out, **dict(zip(names, _args(1), strict=True)))
        assert size == len(out[:size]) > 100


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * mmap.PAGESIZE


def _calls(count: int, call: Callable[[], object]) -> Iterator[int]:
    for k in range(count):
        call()
        if k % 500 == 0:
            yield _rss()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
class TestNoLeaks:
    def test_many_calls_keep_memory_and_references_flat(self) -> None:
        args = _args(
            400,
            stamps=([3], [b"null"]),
            record_rows=np.array([5, 9], dtype=np.int64),
            record_texts=(b'{"message":"m"}', b'{"message":"n"}'),
        )
        out = bytearray()
        counts = [sys.getrefcount(a) for a in args[1:]]
        items = [sys.getrefcount(x) for x in (*args[1], *args[2], *args[3], *args[8])]
        gc.collect()
        sizes = list(_calls(6000, lambda: native.render_batch(out, *args)))
        assert sizes[-1] - sizes[2] < 1 << 20
        assert [sys.getrefcount(a) for a in args[1:]] == counts
        assert [sys.getrefcount(x) for x in (*args[1], *args[2], *args[3], *args[8])] == items

    def test_failing_calls_leak_nothing(self) -> None:
        out = bytearray()
        bad = _args(400, col_11=_set(11, 9, n=400))

        def call() -> None:
            with pytest.raises(IndexError):
                native.render_batch(out, *bad)

        sizes = list(_calls(6000, call))
        assert sizes[-1] - sizes[2] < 1 << 20


class TestSwitch:
    def test_environment_turns_the_extension_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert _native.native_enabled(_native.native_write)
        monkeypatch.setenv(PURE, "1")
        assert not _native.native_enabled(_native.native_write)
        monkeypatch.setenv(PURE, "")
        assert _native.native_enabled(_native.native_write)
