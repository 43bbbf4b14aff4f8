"""What the batches of one output range share, on both rendering paths:
service and file names, the input files open for reading, the pages to give
back behind the reading position, and how each line ends."""

from __future__ import annotations

import contextlib
import itertools
import mmap

import numpy as np
import numpy.typing as npt

from ._decompress import LineReader
from ._marks import MARKS
from ._model import REASONS, Rendering, Table

__all__ = ["TAILS", "RangeContext", "ReleasePlan", "marks_if_any", "tail_codes"]


class ReleasePlan:
    """Give back the pages of input files that no later row will read.

    Traces come out in start order and files are written in time order, so
    the reading position in each file only creeps forward. Dropping the
    mapped pages behind it keeps resident memory to a window instead of
    the whole input (the page cache keeps them; nothing is read twice).
    """

    __slots__ = ("_low", "_positions")

    def __init__(self, r: Rendering, lo: int, hi: int) -> None:
        # Lines without a trace come last, in file order: they would pin every
        # file's first pages. They are left out; reading one of them again later
        # only maps its page back from the page cache.
        hi = max(lo, min(hi, r.order.n_traced))
        idx = r.order.rows[lo:hi]
        files = r.table.file[idx]
        offsets = r.table.rows["off"][idx]
        self._positions: dict[int, npt.NDArray[np.int64]] = {}
        self._low: dict[int, npt.NDArray[np.int64]] = {}
        # Positions grouped by file, in order within each (a stable sort: a
        # linear-time radix sort when file numbers fit 16 bits).
        key = files.astype(np.uint16) if len(r.table.sources) <= 1 << 16 else files
        by_file = np.argsort(key, kind="stable")
        sorted_files = files[by_file]
        cuts = [0, *(np.flatnonzero(np.diff(sorted_files)) + 1).tolist(), len(by_file)]
        for a, b in itertools.pairwise(cuts):
            if a == b:
                continue
            where = by_file[a:b]
            self._positions[int(sorted_files[a])] = where + lo
            # Smallest offset still needed from each position on (suffix minimum).
            self._low[int(sorted_files[a])] = np.minimum.accumulate(offsets[where][::-1])[::-1]

    def after(self, end: int, ctx: RangeContext) -> None:
        for f, positions in self._positions.items():
            data = ctx.maps[f]
            if not isinstance(data, mmap.mmap):
                continue
            k = int(np.searchsorted(positions, end))
            low = int(self._low[f][k]) if k < len(positions) else len(data)
            low -= low % mmap.PAGESIZE
            if low > 0:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    data.madvise(mmap.MADV_DONTNEED, 0, low)


class RangeContext:
    """What the batches of one range share: names and open files."""

    __slots__ = ("_names", "files", "maps", "marks", "readers", "services")

    def __init__(
        self,
        services: list[str],
        files: list[str],
        n_files: int,
        marks: npt.NDArray[np.uint8] | None,
    ) -> None:
        self.services = services
        self.marks = marks
        """Per span: its mark (:func:`._marks.span_marks`); ``None`` when none has one."""
        self.files = files
        self.readers: list[LineReader | None] = [None] * n_files
        self.maps: list[bytes | mmap.mmap | None] = [None] * n_files
        self._names: (
            tuple[tuple[str, ...], tuple[str, ...], tuple[bytes, ...], tuple[bytes, ...]] | None
        ) = None

    def names(
        self, table: Table
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[bytes, ...], tuple[bytes, ...]]:
        """Trace and span IDs, service and file names (JSON bytes), for the C path.

        Tuples: the C loop reads them without the GIL, so they must not change.
        """
        if self._names is None:
            self._names = (
                tuple(table.traces),
                tuple(table.spans),
                tuple(s.encode() for s in self.services),
                tuple(f.encode() for f in self.files),
            )
        return self._names

    def open(self, file: int, path: str) -> bytes | mmap.mmap:
        reader = self.readers[file] = LineReader(path)
        data = self.maps[file] = reader.data
        return data


TAILS = (
    b"}\n",
    *(b',"reason":"%s"}\n' % reason.encode() for reason in REASONS[1:]),
    *(b',"mark":"%s"}\n' % mark.encode() for mark in MARKS[1:]),
)
"""A line's end: per reason a line joins no trace, then per mark of its span
(:mod:`._marks`); :func:`tail_codes` picks one per row."""


def marks_if_any(marks: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8] | None:
    return marks if marks.any() else None


def tail_codes(
    marks: npt.NDArray[np.uint8] | None, sub: npt.NDArray[np.void]
) -> npt.NDArray[np.uint8]:
    """Per row of ``sub``: its index into :data:`TAILS`."""
    reason = np.asarray(sub["reason"], dtype=np.uint8)
    span = sub["span"]
    if marks is None:
        return reason
    mark = np.where(span >= 0, marks[np.maximum(span, 0)], 0).astype(np.uint8)
    return np.where(mark > 0, mark + (len(REASONS) - 1), reason).astype(np.uint8)
