"""Finding input files and reading them, compressed or not."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
from pathlib import Path

import pytest

from logtrace.stitch._decompress import LineReader, open_decompressed, read_blocks
from logtrace.stitch._plan import (
    InputError,
    expand_paths,
    rotation_key,
    rotation_order,
    service_from_path,
)


@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("orders.log", "orders"),
        ("logs/orders.log.1", "orders"),
        ("orders.log.2.gz", "orders"),
        ("orders-2026-11-24.log", "orders"),
        ("orders.jsonl.xz", "orders"),
        ("api-gateway.log", "api-gateway"),
        ("noext", "noext"),
        ("-", "stdin"),
        # Kubernetes node files: the container's name.
        ("/var/log/containers/web-7d9f-abcde_shop_orders-" + "3f" * 32 + ".log", "orders"),
        ("/var/log/containers/web-7d9f-abcde_shop_orders-" + "3f" * 32 + ".log.1.gz", "orders"),
        (
            "/var/log/pods/shop_web-7d9f-abcde_0b1c2d3e-1111-2222-3333-444455556666/orders/0.log",
            "orders",
        ),
        (
            "/var/log/pods/shop_web_0b1c2d3e-1111-2222-3333-444455556666/orders/3.log.20261203-101010.gz",
            "orders",
        ),
        ("logs/0.log", "0"),
    ],
)
def test_service_from_file_name(name: str, service: str) -> None:
    assert service_from_path(name) == service


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress, lambda b: b])
def test_compression_is_recognised_by_content_not_name(tmp_path: Path, compress: object) -> None:
    path = tmp_path / "renamed.log"
    data = b"one\r\ntwo\n" * 1000
    path.write_bytes(compress(data))  # type: ignore[operator]
    stream, _ = open_decompressed(str(path))
    with stream:
        assert b"".join(read_blocks(stream, [], str(path))) == data


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress])
def test_output_of_a_well_compressed_file_comes_in_bounded_reads(
    tmp_path: Path, compress: object
) -> None:
    """40 MB of one repeated line packs into kilobytes: one read of the
    compressed input must not become one 40 MB block."""
    line = b'{"timestamp":"2026-03-01T10:00:00Z","event":"health check ok"}\n'
    data = line * (40_000_000 // len(line))
    second = b"second member\n" * 1000
    path = tmp_path / "repeated.log"
    path.write_bytes(compress(data) + compress(second))  # type: ignore[operator]
    assert path.stat().st_size < 1 << 20
    stream, _ = open_decompressed(str(path))
    sizes = []
    got = bytearray()
    with stream:
        while block := stream.read(1 << 20):
            sizes.append(len(block))
            got += block
    assert got == data + second
    assert max(sizes) == 1 << 20
    assert len(sizes) >= 38


def test_truncated_gzip_yields_what_it_can_and_warns(tmp_path: Path) -> None:
    path = tmp_path / "cut.log.gz"
    whole = gzip.compress(b"line\n" * 100_000)
    path.write_bytes(whole[: len(whole) // 2])
    warnings: list[str] = []
    stream, compressed = open_decompressed(str(path))
    with stream:
        data = b"".join(read_blocks(stream, warnings, "cut.log.gz"))
    assert compressed and data.startswith(b"line\n") and len(data) < 500_000
    assert warnings and "cut.log.gz" in warnings[0]


def test_blocks_keep_huge_lines_whole(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_bytes(b"short\n" + b"x" * 5000 + b"\nend")
    stream, _ = open_decompressed(str(path))
    with stream:
        blocks = list(read_blocks(stream, [], "a", 1000))
    assert len(blocks) == 3
    assert all(b.endswith(b"\n") for b in blocks[:-1])
    assert b"".join(blocks).split(b"\n") == [b"short", b"x" * 5000, b"end"]


def test_expand_paths(tmp_path: Path) -> None:
    (tmp_path / "d" / ".hidden").mkdir(parents=True)
    (tmp_path / "d" / "b.log").write_text("b")
    (tmp_path / "d" / "a.log").write_text("a")
    (tmp_path / "d" / ".hidden" / "x.log").write_text("x")
    names = [s.name for s in expand_paths([str(tmp_path / "d")], str(tmp_path))]
    assert names == [str(tmp_path / "d" / "a.log"), str(tmp_path / "d" / "b.log")]
    globbed = [s.name for s in expand_paths([str(tmp_path / "d" / "*.log")], str(tmp_path))]
    assert globbed == names
    with pytest.raises(InputError, match=r"nothing\.log"):
        expand_paths([str(tmp_path / "nothing.log")], str(tmp_path))
    with pytest.raises(InputError, match="no file matches"):
        expand_paths([str(tmp_path / "*.nope")], str(tmp_path))


def test_line_reader_reads_by_offset(tmp_path: Path) -> None:
    path = tmp_path / "a"
    path.write_bytes(b"hello\nworld\n")
    reader = LineReader(str(path))
    try:
        assert reader.get(6, 5) == b"world"
    finally:
        reader.close()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    reader = LineReader(str(empty))
    assert reader.get(0, 0) == b""
    reader.close()


class TestRotationOrder:
    @pytest.mark.parametrize(
        ("given", "read"),
        [
            (
                ["app.log", "app.log.1", "app.log.10", "app.log.2", "app.log.9"],
                ["app.log.10", "app.log.9", "app.log.2", "app.log.1", "app.log"],
            ),
            (
                ["app.log", "app.log.1.gz", "app.log.2.gz", "app.log.3.xz"],
                ["app.log.3.xz", "app.log.2.gz", "app.log.1.gz", "app.log"],
            ),
            (
                ["app.log", "app.log-20261203.gz", "app.log-20261130.gz", "app.log.2026-12-01"],
                ["app.log-20261130.gz", "app.log.2026-12-01", "app.log-20261203.gz", "app.log"],
            ),
            # Other files keep their places; a log's rotations gather where the first was.
            (
                ["b.log", "a.log.1", "c.log", "a.log"],
                ["b.log", "a.log.1", "a.log", "c.log"],
            ),
        ],
    )
    def test_oldest_first_then_the_live_file(self, given: list[str], read: list[str]) -> None:
        assert rotation_order(given) == read

    def test_rotation_key(self) -> None:
        assert rotation_key("d/app.log.3.gz") == ("d/app.log", (1, -3))
        assert rotation_key("d/app.log") == ("d/app.log", (2,))
        assert rotation_key("app.log-20261203.gz")[0] == "app.log"


class TestExpandPathsSkipping:
    def test_bad_entries_are_described_and_skipped(self, tmp_path: Path) -> None:
        d = tmp_path / "d"
        d.mkdir()
        (d / "good.log").write_text("x\n")
        (d / "dangling.log").symlink_to(d / "gone")
        (d / "loop.log").symlink_to(d / "loop.log")
        os.mkfifo(d / "fifo.log")
        problems: list[str] = []
        sources = expand_paths([str(d), str(tmp_path / "missing.log")], str(tmp_path), problems)
        assert [s.name for s in sources] == [str(d / "good.log")]
        assert len(problems) == 4
        for name in ("dangling.log", "loop.log", "fifo.log", "missing.log"):
            assert sum(name in p for p in problems) == 1
        with pytest.raises(InputError, match="dangling"):
            expand_paths([str(d)], str(tmp_path))

    @pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
    def test_a_file_without_read_permission_is_skipped(self, tmp_path: Path) -> None:
        (tmp_path / "good.log").write_text("x\n")
        locked = tmp_path / "locked.log"
        locked.write_text("x\n")
        locked.chmod(0)
        problems: list[str] = []
        sources = expand_paths([str(tmp_path)], str(tmp_path), problems)
        assert [s.name for s in sources] == [str(tmp_path / "good.log")]
        assert len(problems) == 1 and "locked.log" in problems[0]

    def test_one_file_is_one_input(self, tmp_path: Path) -> None:
        d = tmp_path / "d"
        d.mkdir()
        (d / "a.log").write_text("x\n")
        (tmp_path / "link.log").symlink_to(d / "a.log")
        given = [str(tmp_path / "link.log"), str(d), str(d / "a.log"), str(d / "*.log")]
        sources = expand_paths(given, str(tmp_path), [])
        assert [s.name for s in sources] == [str(d / "a.log")]

    def test_nothing_readable_raises(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="nothing could be read"):
            expand_paths([str(tmp_path / "gone.log")], str(tmp_path), [])
