"""One log record as text: its JSON value, its display fields, escaped for a
terminal, and corrected times as ISO 8601. Shared by every renderer.

Log text is untrusted: :func:`escape` writes control characters (escape
sequences above all) and text-reordering characters as visible escapes.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from .._schema import (
    DURATION_MS,
    ERROR_TYPE,
    EXCEPTION_TYPE,
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    URL_FULL,
    URL_PATH,
)
from ._model import JSON, LOGFMT
from ._parse import parse_logfmt
from ._record_exception import Raised, record_exception
from ._wrapped import cri_record, display_record

__all__ = [
    "SHORT_LEVELS",
    "escape",
    "iso_strings",
    "record_fields",
    "record_json",
    "record_parts",
]

_encode = msgspec.json.encode
_decode = msgspec.json.decode

_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(32), 127, *range(0x80, 0xA0)]}
_ESCAPES.update({9: "\\t", 10: "\\n", 13: "\\r", 0x1B: "\\e"})
# Characters that reorder or hide the text around them on a terminal: bidirectional
# overrides and isolates, zero-width marks, line and paragraph separators, BOM.
_ESCAPES.update(
    {
        c: f"\\u{c:04x}"
        for c in (
            0x200B,
            0x200E,
            0x200F,
            *range(0x202A, 0x202F),
            *range(0x2066, 0x206A),
            0x2028,
            0x2029,
            0xFEFF,
        )
    }
)
SHORT_LEVELS = {"WARNING": "WARN", "CRITICAL": "CRIT"}
"""Level names shortened for display."""
_BREAK = re.compile(r"\r\n|\r|\n")
_MESSAGE_KEYS = ("message", "msg", "event", "body")
_LEVEL_KEYS = ("level", "levelname", "severity", "severityText", "log.level")
_KEY_FIELDS = (
    HTTP_REQUEST_METHOD,
    HTTP_ROUTE,
    URL_PATH,
    URL_FULL,
    HTTP_RESPONSE_STATUS_CODE,
    DURATION_MS,
    ERROR_TYPE,
    EXCEPTION_TYPE,
    "request_id",
)


def escape(text: str) -> str:
    """``text`` with every control and text-reordering character written as an escape."""
    if text.isascii() and text.isprintable():
        return text  # the common case, without building a copy
    return text.translate(_ESCAPES)


def record_fields(raw: bytes, flags: int) -> tuple[str, str, dict[str, Any]]:
    """Level, message and key fields of one line, for display."""
    level, message, fields, _ = record_parts(raw, flags, exception=False)
    return level, message, fields


def record_parts(
    raw: bytes, flags: int, exception: bool = True
) -> tuple[str, str, dict[str, Any], Raised | None]:
    """Level, message, key fields and the exception (see
    :func:`._record_exception.record_exception`) of one line, for display.

    A text record over many lines (a traceback logged by a text format) is
    its first line; the lines after it are read as a record's ``exc_info``."""
    obj: Any = None
    if flags & JSON:
        try:
            obj = _decode(raw)
        except (msgspec.DecodeError, RecursionError):
            obj = None
    elif flags & LOGFMT:
        obj = parse_logfmt(raw.decode(errors="replace"))
    elif raw[:1].isdigit():
        obj = cri_record(raw)
    if not isinstance(obj, dict):
        text = raw.decode(errors="replace")
        if "\n" in text or "\r" in text:
            # A text record with the lines that continue it (see ._continued):
            # its first line, and the others shown under it as an exception is.
            first, rest = _BREAK.split(text, 1)
            return "", first, {}, record_exception({"exc_info": rest}) if exception else None
        return "", text, {}, None
    obj = display_record(obj)  # a collector's record shows the record it wraps
    message = _first(obj, _MESSAGE_KEYS)
    level = _first(obj, _LEVEL_KEYS)
    if isinstance(level, dict):
        level = ""
    fields = {k: obj[k] for k in _KEY_FIELDS if k in obj}
    raised = record_exception(obj) if exception else None
    return str(level), message if isinstance(message, str) else str(message), fields, raised


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return ""


def record_json(raw: bytes, flags: int) -> bytes:
    """The ``record`` value for a line: its own text if it is a valid JSON object."""
    if flags & JSON:
        return raw
    text = raw.decode(errors="replace")
    if flags & LOGFMT:
        return _encode(parse_logfmt(text))
    return _encode({"message": text})


def iso_strings(ts: npt.NDArray[np.float64]) -> list[str]:
    """ISO 8601 UTC strings with microseconds; ``""`` for NaN."""
    nan = np.isnan(ts)
    us = np.round(np.where(nan, 0.0, ts) * 1e6).astype(np.int64)
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    out: list[str] = text.tolist()
    if nan.any():
        for i in np.flatnonzero(nan).tolist():
            out[i] = ""
    return out
