"""Files a run keeps in its spool directory, and their formats.

A compressed input is decompressed once into a ``.spool`` file that the
writer reads lines back from by offset. A scan too big for memory leaves its
rows in ``.rows`` files (the raw :data:`SCAN_DTYPE` bytes, mapped back
read-only) with the segment's trace and span IDs pickled beside them in
``.rows.ids``: a worker hands back only what does not grow with the input.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterator
from typing import IO

import numpy as np
import numpy.typing as npt

from ._model import SCAN_DTYPE, FileScan

__all__ = ["content_spool", "drop_spilled", "load_spilled", "spill", "spooled"]


def content_spool(file_index: int, spool_dir: str) -> tuple[IO[bytes], str]:
    """A new spool file for a compressed input's content: open for writing, and its path."""
    fd, path = tempfile.mkstemp(prefix=f"{file_index}-", suffix=".spool", dir=spool_dir)
    return os.fdopen(fd, "wb"), path


def spooled(blocks: Iterator[bytes | memoryview], spool: IO[bytes]) -> Iterator[bytes | memoryview]:
    """Blocks, each also written to the spool (closed at the end)."""
    with spool:
        for block in blocks:
            spool.write(block)
            yield block


def spill(file_index: int, part: FileScan, spool_dir: str) -> tuple[FileScan, str | None]:
    """``part`` with its rows and IDs moved to spool files, and their path
    (``None`` when it has no rows: nothing is written)."""
    if not len(part.rows):
        return part, None
    fd, path = tempfile.mkstemp(prefix=f"rows{file_index}-", suffix=".rows", dir=spool_dir)
    with os.fdopen(fd, "wb") as f:
        f.write(part.rows.tobytes())
    with open(path + ".ids", "wb") as f:
        pickle.dump((part.traces, part.spans), f, protocol=pickle.HIGHEST_PROTOCOL)
    part.spooled_ids = len(part.traces) + len(part.spans)
    part.rows = np.empty(0, dtype=SCAN_DTYPE)
    part.traces = []
    part.spans = []
    return part, path


def load_spilled(path: str) -> tuple[npt.NDArray[np.void], list[str], list[str]]:
    """A spilled scan's rows (mapped read-only: no memory until read), trace IDs and span IDs."""
    rows: npt.NDArray[np.void] = np.memmap(path, dtype=SCAN_DTYPE, mode="r")
    with open(path + ".ids", "rb") as f:
        traces, spans = pickle.load(f)
    return rows, traces, spans


def drop_spilled(path: str) -> None:
    """Remove a spilled scan's files."""
    os.unlink(path)
    os.unlink(path + ".ids")
