"""Three fields of a span record that only the clock estimate reads.

When the server's response was complete (``response_ms`` after
``span.start``), when its headers went out (``headers_ms``) and which host
the span ran on (``host.name``, or ``hostname``): read from the raw line,
JSON or ``key=value`` text, without parsing it whole. ``logtrace grep``
reads them here for the calls among its matches; the stitch reads the same
keys for many records at once (:mod:`._span_extras`), so that the two
estimate clocks from the same evidence. A record written by a text format
carries none of them: the clock estimate only needs to know it is one
(:func:`text_span_record`). No numpy: ``logtrace grep`` must
start fast.
"""

from __future__ import annotations

import re

from .._schema import HEADERS_MS, HOST_NAME, RESPONSE_MS

__all__ = [
    "ANSWER_PATTERNS",
    "HEADERS_PATTERNS",
    "HOST_PATTERNS",
    "answer_ms",
    "headers_ms",
    "host_name",
    "number",
    "text_span_record",
]


def _after(key: bytes, value: bytes) -> re.Pattern[bytes]:
    """The ``value`` after ``key`` (a pattern that starts with a literal, so
    that the search skips ahead fast), within one line; one group."""
    return re.compile(key + rb"[ \t:]*" + value)


_NUMBER = rb"([^ ,}\t\r\n]*)"
_TEXT = rb'"?((?<=")[^"\n]*|(?<!")[^ ,}\t\r\n"]*)'
"""A quoted string's text, or a bare word."""
assert RESPONSE_MS == "response_ms" and HOST_NAME == "host.name"  # spelled out below
assert HEADERS_MS == "headers_ms"
ANSWER_PATTERNS = (_after(rb'"response_ms"', _NUMBER), _after(rb"response_ms=", _NUMBER))
"""In order of preference: the JSON key, then the logfmt one."""
HEADERS_PATTERNS = (_after(rb'"headers_ms"', _NUMBER), _after(rb"headers_ms=", _NUMBER))
HOST_PATTERNS = (
    _after(rb'"host(?:\.name|name)"', _TEXT),
    _after(rb"host(?:\.name|name)=", _TEXT),
)
"""``host.name`` or ``hostname``: the JSON keys, then the logfmt ones."""


def number(text: bytes) -> float | None:
    """``text`` as a finite number of reasonable size, if it is one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) < 1e12 else None


def _first_number(patterns: tuple[re.Pattern[bytes], ...], line: bytes) -> float | None:
    for pattern in patterns:
        match = pattern.search(line)
        if match is not None:
            return number(match[1])
    return None


def answer_ms(line: bytes) -> float | None:
    """Milliseconds from the span's start to its complete response, if the line says."""
    return _first_number(ANSWER_PATTERNS, line)


def headers_ms(line: bytes) -> float | None:
    """Milliseconds from the span's start to its response's headers, if the line says."""
    return _first_number(HEADERS_PATTERNS, line)


TEXT_RECORD = re.compile(rb"(?<![\w.])logtrace\.span(?![\w.])")
"""The logger name of logtrace's span records, as a text format writes it
(``%(name)s``): such a line has none of the record's fields to read."""


def text_span_record(line: bytes) -> bool:
    """Whether ``line`` is a span record written by a text format, without
    its fields: it was written when the application returned, which can be
    after the caller heard back, and it says no more."""
    return b"logtrace.span" in line and TEXT_RECORD.search(line) is not None


def host_name(line: bytes) -> bytes:
    """The host the line names (``b""``: none)."""
    for pattern in HOST_PATTERNS:
        match = pattern.search(line)
        if match is not None and match[1]:
            return match[1]
    return b""
