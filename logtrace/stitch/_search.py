"""``logtrace grep``'s byte search: the C library's ``memmem`` when the
``_native_find`` extension is built, else ``bytes.find`` (the same offsets,
a few times slower). No numpy, so that grep starts light.

``LOGTRACE_PURE_PYTHON`` turns the C search off, as it does the stitcher's
extensions (:data:`._native.PURE_PYTHON`; that module loads numpy).
"""

from __future__ import annotations

import mmap
import os

try:
    import logtrace.stitch._native_find as native_find
except ImportError:  # not built: bytes.find gives the same offsets
    native_find = None  # type: ignore[assignment]

__all__ = ["find", "native_find"]

PURE_PYTHON = "LOGTRACE_PURE_PYTHON"


def find(data: bytes | bytearray | mmap.mmap, needle: bytes, start: int, stop: int) -> int:
    """``data.find(needle, start, stop)``."""
    if native_find is not None and not os.environ.get(PURE_PYTHON):
        return native_find.find(data, needle, start, stop)
    return data.find(needle, start, stop)
