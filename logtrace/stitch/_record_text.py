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
from ._parse_text import TEXT_ID_KEYS
from ._record_exception import Raised, record_exception
from ._timestamps import leading_timestamp
from ._wrapped import cri_record, display_record

__all__ = [
    "SHORT_LEVELS",
    "escape",
    "iso_strings",
    "record_fields",
    "record_json",
    "record_parts",
    "text_parts",
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


_LEVELS = "TRACE|DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL"
_LEVEL = re.compile(
    # at most one word before it: a logger name (dotted, or before a dash), a [pid]
    r"(?P<pre>(?:(?:\[[^\]\s]{1,64}\]|[\w<>-]{1,128}(?:\.[\w<>-]{1,128})+|"
    r"[^\s=\[\]\"']{1,128}(?=[ \t]+[-|][ \t]))[ \t]+(?:[-|][ \t]+)?)??)"
    rf"(?:\[[ \t]*(?P<b>(?i:{_LEVELS}))[ \t]*\]|(?P<w>{_LEVELS})(?::|(?=[ \t]|$)))"
    r"(?:[ \t]+[-|](?=[ \t]|$))?[ \t]*"
)
"""A level word, upper case or bracketed in any case (``[info     ]``), or
followed by a colon (``INFO:``), with the separator after it."""
_ID_PAIR = re.compile(
    rf"(?i)(?:({TEXT_ID_KEYS[0]})|({TEXT_ID_KEYS[1]})|({TEXT_ID_KEYS[2]}))=([\"']?)[\w.:/-]*\4"
)
"""A trace, span or parent span ID pair as the stitcher reads it from text
(see :mod:`._parse_text`), its value unquoted or quoted."""
_BARE_IDS = re.compile(r"trace=[0-9a-f]{32}")
"""``trace=<32 hex>`` (then ``span=<16 hex>``): logtrace's readable lines before they named the
keys in full."""
_BARE_SPAN = re.compile(r"span=[0-9a-f]{16}")
_SEPARATOR = re.compile(r"[ \t]*(?:[-|][ \t]+)?")
_EMPTY_BRACKETS = re.compile(r" ?\[ *\]")
_INNER_BLANK = re.compile(r"(\[) +| +(\])")


def text_parts(text: str) -> tuple[str, str] | None:
    """The level a text line names, and its message without what the stitcher
    read from it and shows elsewhere: the time that starts it (the time
    column shows it) and the first trace, span and parent span ID pairs (in
    the trace's heading and the span tree). ``None`` for a line that starts
    with neither that time nor a level word: it is shown as written.

    ``2026-12-06 05:12:25,619 INFO leaf.app trace_id=... span_id=... handling``
    is ``("INFO", "leaf.app handling")``; ``INFO:     127.0.0.1 - "GET / HTTP/1.1" 200``
    is ``("INFO", '127.0.0.1 - "GET / HTTP/1.1" 200')``."""
    level = ""
    end = _time_end(text, 0)
    if not end:
        m = _LEVEL.match(text)  # a level, then the time: `INFO 2026-12-06 05:12:25,619 ...`
        if m is not None and not m["pre"]:
            end = _time_end(text, m.end())
            if end:
                level = m["b"] or m["w"]
    if end:
        sep = _SEPARATOR.match(text, end)  # the blanks, and a dash, after the time
        end = sep.end() if sep is not None else end
    rest = _without_ids(text[end:])
    if not level:
        m = _LEVEL.match(rest)
        if m is None:
            return None if not end else ("", rest)
        level = m["b"] or m["w"]
        rest = m["pre"] + rest[m.end() :]
    return level.upper(), rest


def _time_end(text: str, at: int) -> int:
    """Where the time the stitcher read ends (and its brackets), when it starts at ``at``."""
    end = leading_timestamp(text, at)
    if end and text[at : at + 1] == "[":
        while text[end : end + 1] in (" ", "\t"):
            end += 1
        if text[end : end + 1] != "]":
            return 0
        end += 1
    return end


def _without_ids(text: str) -> str:
    """``text`` without the first pair of each ID kind, as words between spaces."""
    if "=" not in text:
        return text
    words = text.split(" ")
    seen = ""
    drop: list[int] = []
    bare = -1
    for i, word in enumerate(words):
        if "=" not in word:
            continue
        m = _ID_PAIR.fullmatch(word.lstrip("[").rstrip("]"))
        if m is not None:
            kind = "t" if m[1] else "s" if m[2] else "p"
            if kind not in seen:
                seen += kind
                drop.append(i)
        elif bare < 0 and _BARE_IDS.fullmatch(word):
            bare = i
    if bare >= 0 and "t" not in seen:  # read only where no trace ID key is
        drop.append(bare)
        if bare + 1 < len(words) and _BARE_SPAN.fullmatch(words[bare + 1]):
            drop.append(bare + 1)
    if not drop:
        return text
    bracketed = False
    for i in sorted(drop, reverse=True):
        # A pair in brackets (OpenTelemetry's ``[trace_id=... span_id=... ]``)
        # leaves its brackets, tidied below.
        word = words[i]
        core = word.lstrip("[").rstrip("]")
        if core == word:
            del words[i]
        else:
            words[i] = word.replace(core, "", 1)
            bracketed = True
    if bracketed:
        joined = _EMPTY_BRACKETS.sub("", " ".join(words))
        return _INNER_BLANK.sub(lambda m: m[1] or m[2], joined).lstrip(" ")
    return " ".join(words).lstrip(" ")


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
    raw: bytes, flags: int, exception: bool = True, as_written: bool = False
) -> tuple[str, str, dict[str, Any], Raised | None]:
    """Level, message, key fields and the exception (see
    :func:`._record_exception.record_exception`) of one line, for display.

    A text line's level and message are those :func:`text_parts` finds, as
    a JSON line's are read from its keys; with ``as_written``, for a line
    shown where no column shows its time (a line without a trace), no level
    and the whole line. A text record over many lines (a traceback logged by
    a text format) is its first line; the lines after it are read as a
    record's ``exc_info``."""
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
        raised = None
        if "\n" in text or "\r" in text:
            # A text record with the lines that continue it (see ._continued):
            # its first line, and the others shown under it as an exception is.
            text, rest = _BREAK.split(text, 1)
            raised = record_exception({"exc_info": rest}) if exception else None
        parts = None if as_written else text_parts(text)
        if parts is None:
            return "", text, {}, raised
        return parts[0], parts[1], {}, raised
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
