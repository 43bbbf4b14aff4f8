"""Trace and span IDs as other tools spell them, in one canonical form.

Hex IDs become lowercase and are left-padded (trace 32, span 16 digits) so
that a 64-bit trace ID from one tool meets the same ID from another; UUID
dashes and a ``0x`` prefix are dropped. Datadog writes decimal IDs; they are
converted to hex. Other short printable IDs are kept verbatim: a trace ID need
not be W3C. The spellings of "no ID" (``None``, ``null``, ``nil``,
``undefined``, ``-``, ``n/a``, empty: what a format string writes for a
record outside a request) are no ID.
"""

from __future__ import annotations

import re

__all__ = [
    "datadog_trace",
    "decimal_id",
    "means_none",
    "names_no_service",
    "norm_span_id",
    "norm_trace_id",
    "traceparent_ids",
]

_HEX = re.compile(r"[0-9a-fA-F]{1,32}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_PRINTABLE = re.compile(r"[\w.:/@+=-]{1,128}")
_TRACEPARENT = re.compile(r"\b[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}\b")

_NO_ID = frozenset({"none", "null", "nil", "undefined", "-", "n/a"})
"""Spellings of a missing ID (compared lowercased)."""

_TRACE_CACHE: dict[object, str | None] = {}
_SPAN_CACHE: dict[object, str | None] = {}


def _norm(value: object, width: int) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return decimal_id(value, width)
    if not isinstance(value, str):
        return None
    if value[:2] in ("0x", "0X") and _HEX.fullmatch(value, 2):
        value = value[2:]  # OpenTelemetry's console exporter writes "0x" + the hex ID
    if _HEX.fullmatch(value):
        if len(value) > width:
            return value.lower()
        text = value.lower().rjust(width, "0")
        return None if text.count("0") == width else text
    if len(value) == 36 and _UUID.fullmatch(value):
        return value.replace("-", "").lower()
    stripped = value.strip()
    if stripped and _PRINTABLE.fullmatch(stripped) and stripped.lower() not in _NO_ID:
        return stripped
    return None


def _cached(value: object, cache: dict[object, str | None], width: int) -> str | None:
    if type(value) is not str:  # bool == int and 1.0 == 1 would share cache slots
        return _norm(value, width)
    try:
        return cache[value]
    except KeyError:
        pass
    result = _norm(value, width)
    if len(cache) > 1_000_000:
        cache.clear()
    cache[value] = result
    return result


def means_none(value: str) -> bool:
    """Whether a string spells "none": empty, or one of the spellings of a
    missing ID in any case (``None``, ``null``, ``-``...). For values that
    are not IDs, such as a service name written by a format string."""
    return not value or (len(value) <= 9 and value.isascii() and value.lower() in _NO_ID)


UNKNOWN_SERVICE = "unknown_service"
"""What OpenTelemetry's SDKs name a service they were given no name for
(``unknown_service``, or ``unknown_service:python`` and the like)."""


def names_no_service(value: str) -> bool:
    """Whether a service name names none: it spells none (:func:`means_none`)
    or is OpenTelemetry's :data:`UNKNOWN_SERVICE`, which every unnamed
    service shares (read as a name, it would make them all one service on
    one clock)."""
    return means_none(value) or value == UNKNOWN_SERVICE or value.startswith(UNKNOWN_SERVICE + ":")


def norm_trace_id(value: object) -> str | None:
    """Canonical trace ID or ``None`` for a missing or unusable value."""
    return _cached(value, _TRACE_CACHE, 32)


def norm_span_id(value: object) -> str | None:
    """Canonical span ID or ``None``."""
    return _cached(value, _SPAN_CACHE, 16)


def decimal_id(value: object, width: int = 32) -> str | None:
    """A decimal ID (Datadog ``dd.trace_id``) as zero-padded lowercase hex."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not value.isdecimal() or len(value) > 39:
            return None
        value = int(value)
    if not isinstance(value, int) or value <= 0 or value >= 1 << (4 * width):
        return None
    return format(value, f"0{width}x")


def datadog_trace(value: object, tid: object) -> str | None:
    """A Datadog trace ID as a W3C one: 32 hex digits as written, or a decimal
    holding the low 64 bits, the high 64 in ``_dd.p.tid`` (hex) when given."""
    if isinstance(value, str) and len(value) == 32 and not value.isdecimal():
        return norm_trace_id(value)
    if (
        isinstance(tid, str)
        and len(tid) == 16
        and tid.strip("0123456789abcdefABCDEF") == ""
        and tid.strip("0")
    ):
        low = decimal_id(value, 16)
        return None if low is None else tid.lower() + low
    return decimal_id(value)


def traceparent_ids(text: str) -> tuple[str, str] | None:
    """Trace and span ID of the first W3C ``traceparent`` value in ``text``."""
    m = _TRACEPARENT.search(text)
    if m is None or m.group(1) == "0" * 32:
        return None
    return m.group(1), m.group(2)
