"""Input bytes: decompressed, in blocks of whole lines, or lines back by offset.

Compression is recognised by magic bytes, not by name: rotated logs are often
renamed. A compressed file is decompressed once into a spool file next to the
run's other temporary files (see :mod:`._spool`); later stages read lines back
by byte offset from that spool (or from the original file) through ``mmap``.
"""

from __future__ import annotations

import bz2
import lzma
import mmap
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from ._plan import InputError
from ._record_cuts import record_cut

__all__ = [
    "BLOCK",
    "LineReader",
    "line_views",
    "open_decompressed",
    "range_blocks",
    "read_blocks",
    "whole_lines",
]

BLOCK = 8 << 20
"""Bytes read at a time."""

_UNLIMITED_OUTPUT = 1 << 62


class _Decompressing:
    """A read-only stream over a compressed file, multi-member aware.

    Unlike :mod:`gzip` and friends, a file cut short (still being written)
    gives back everything decompressed before the cut, then ``EOFError``.
    """

    def __init__(self, raw: IO[bytes], make: Callable[[], Any]) -> None:
        self._raw = raw
        self._make = make
        self._d = make()
        self._pending = b""
        self._done = False

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all with -1); never more, however well the
        data compresses: a megabyte of input can hold gigabytes of output."""
        parts: list[bytes] = []
        have = 0
        while (size < 0 or have < size) and not self._done:
            d = self._d
            if getattr(d, "needs_input", True):
                data = self._pending or self._raw.read(1 << 20)
                self._pending = b""
                if not data:
                    self._done = True
                    if not d.eof and self._started:
                        if parts:
                            self._truncated = True
                            break
                        raise EOFError("compressed data ends before its end marker")
                    break
            else:
                data = b""  # bz2 and lzma hold back output past the limit
            out = d.decompress(data, size - have if size >= 0 else _UNLIMITED_OUTPUT)
            # zlib hands back the input it did not get to.
            self._pending = getattr(d, "unconsumed_tail", b"") or self._pending
            self._started = True
            if out:
                parts.append(out)
                have += len(out)
            if self._d.eof:
                rest = self._d.unused_data
                self._d = self._make()
                self._started = False
                self._pending = rest.lstrip(b"\x00")  # gzip writers may pad with zeros
        if not parts and getattr(self, "_truncated", False):
            self._truncated = False
            raise EOFError("compressed data ends before its end marker")
        return b"".join(parts)

    _started = False

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _Decompressing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _opener(head: bytes) -> Callable[[], Any] | None:
    if head.startswith(b"\x1f\x8b"):
        return lambda: zlib.decompressobj(31)
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return bz2.BZ2Decompressor
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor
    return None


def open_decompressed(path: str) -> tuple[IO[bytes], bool]:
    """A binary stream of the file's content and whether it was compressed."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 (returned to the caller)
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    try:
        head = raw.read(6)
        raw.seek(0)
    except OSError as exc:
        raw.close()
        raise InputError(f"{path}: {exc.strerror or exc}") from exc
    make = _opener(head)
    if make is None:
        return raw, False
    return _Decompressing(raw, make), True  # type: ignore[return-value]


def read_blocks(
    stream: IO[bytes], warnings: list[str], name: str, size: int = BLOCK
) -> Iterator[bytes]:
    """Blocks of whole lines, read ``size`` bytes at a time (the last may lack its newline).

    A line longer than a block is carried into the next read, so a
    multi-megabyte line arrives whole. A compressed stream that ends early
    (a file still being written) yields what could be read and a warning.
    """
    return whole_lines(_raw_blocks(stream, warnings, name, size))


def _raw_blocks(
    stream: IO[bytes], warnings: list[str], name: str, size: int = BLOCK
) -> Iterator[bytes]:
    while True:
        try:
            block = stream.read(size)
        except (EOFError, OSError, lzma.LZMAError, zlib.error, ValueError) as exc:
            warnings.append(f"{name}: stopped reading: {exc}")
            return
        if not block:
            return
        yield block


def whole_lines(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """Re-cut blocks so that each ends on a line boundary (the last may lack
    its newline) where no record is split (see :func:`._record_cuts.record_cut`)."""
    carry = b""
    for block in blocks:
        if carry:
            block = carry + block
        cut = block.rfind(b"\n") + 1
        if cut:
            cut = record_cut(block, 0, cut)
        if cut == 0:
            carry = block
            continue
        carry = block[cut:]
        yield block[:cut] if carry else block
    if carry:
        yield carry


def range_blocks(path: str, start: int, end: int, size: int = BLOCK) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` of a plain file, ``size`` at a time (cut anywhere)."""
    with open(path, "rb") as f:
        f.seek(start)
        remaining = end - start
        while remaining > 0:
            block = f.read(min(remaining, size))
            if not block:
                return
            remaining -= len(block)
            yield block


def line_views(
    stream: IO[bytes], limit: int, warnings: list[str] | None, name: str, block: int = BLOCK
) -> Iterator[memoryview]:
    """Blocks of whole lines (the last may lack its newline), read straight
    into reused buffers: no copy per block, unlike :func:`read_blocks`. A
    block ends where no record is split, as with :func:`whole_lines`.

    Buffers rotate so that a view stays valid while the next two are read
    (a reading thread may run ahead of the scan). ``limit`` bytes at most
    (-1: to the end). With ``warnings``, a read error ends the stream with a
    warning, as :func:`read_blocks` does; without, it is raised.
    """
    bufs = [bytearray(block) for _ in range(3)]
    turn = 0
    buf = bufs[0]
    fill = 0
    while True:
        want = len(buf) - fill if limit < 0 else min(len(buf) - fill, limit)
        got = 0
        if want > 0:
            try:
                got = stream.readinto(memoryview(buf)[fill : fill + want])  # type: ignore[attr-defined]
            except (OSError, ValueError, EOFError) as exc:
                if warnings is None:
                    raise
                warnings.append(f"{name}: stopped reading: {exc}")
        if not got:
            if fill:
                yield memoryview(buf)[:fill]
            return
        fill += got
        if limit >= 0:
            limit -= got
        cut = buf.rfind(b"\n", 0, fill) + 1
        if cut:
            cut = record_cut(buf, 0, cut)
        if cut == 0:
            if fill == len(buf):  # a line (or record) longer than the buffer
                grown = bytearray(2 * len(buf))
                grown[:fill] = buf
                buf = bufs[turn] = grown
            continue
        yield memoryview(buf)[:cut]
        turn = (turn + 1) % len(bufs)
        tail = fill - cut
        if len(bufs[turn]) < tail + 1:
            bufs[turn] = bytearray(max(block, 2 * tail))
        bufs[turn][:tail] = memoryview(buf)[cut:fill]
        buf = bufs[turn]
        fill = tail


class LineReader:
    """Lines back by byte offset, from the file or its decompressed spool."""

    __slots__ = ("_file", "_map")

    def __init__(self, path: str) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed in close())
        size = os.fstat(self._file.fileno()).st_size
        self._map: mmap.mmap | None = (
            mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else None
        )

    def get(self, offset: int, length: int) -> bytes:
        if self._map is None:
            return b""
        return self._map[offset : offset + length]

    @property
    def data(self) -> bytes | mmap.mmap:
        """The whole content, to slice lines from directly (a hot loop skips the call)."""
        return b"" if self._map is None else self._map

    def fileno(self) -> int:
        """The open file, to read lines with ``os.pread`` instead of the map."""
        return self._file.fileno()

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
        self._file.close()
