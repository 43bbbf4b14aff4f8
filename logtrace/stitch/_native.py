"""The stitcher's optional C extensions, found in one place.

``_native_scan`` reads lines into rows for the scan stage; ``_native_write``
renders JSON lines for the writer. Either may be missing (built without a C
compiler, or with ``LOGTRACE_NO_EXTENSIONS``); ``LOGTRACE_PURE_PYTHON`` (any
non-empty value) turns both off. The pure-Python paths give the same bytes.
"""

from __future__ import annotations

import os

from ._model import SCAN_DTYPE

try:
    import logtrace.stitch._native_scan as native_scan
except ImportError:  # not built: the pure-Python scan gives the same rows
    native_scan = None  # type: ignore[assignment]
try:
    import logtrace.stitch._native_write as native_write
except ImportError:  # not built: the pure-Python writer gives the same bytes
    native_write = None  # type: ignore[assignment]

__all__ = ["PURE_PYTHON", "native_enabled", "native_scan", "native_write"]

PURE_PYTHON = "LOGTRACE_PURE_PYTHON"
"""The environment variable that selects the pure-Python paths."""

_ROW_OFFSETS = [0, 8, 12, 16, 24, 28, 32, 36, 38, 39, 40]
"""Where the C scanner writes each field of a :data:`SCAN_DTYPE` row."""

if native_scan is not None and not (
    SCAN_DTYPE.itemsize == native_scan.ROW_SIZE
    and [SCAN_DTYPE.fields[name][1] for name in SCAN_DTYPE.names or ()]  # type: ignore[index]
    == _ROW_OFFSETS
):
    native_scan = None  # type: ignore[assignment]  # built for another row layout


def native_enabled(*extensions: object) -> bool:
    """Whether to run C code: :data:`PURE_PYTHON` unset or empty and each of
    ``extensions`` (:data:`native_scan`, :data:`native_write`) built.

    Read at each call, so that a test can switch paths within one process.
    """
    return not os.environ.get(PURE_PYTHON) and all(e is not None for e in extensions)
