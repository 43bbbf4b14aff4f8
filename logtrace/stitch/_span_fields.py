"""Two fields of a span record that only the clock estimate reads.

When the server's response was complete (``response_ms`` after
``span.start``) and which host the span ran on (``host.name``, or
``hostname``): read from the raw line, JSON or ``key=value`` text, without
parsing it whole. ``logtrace grep`` reads them here for the calls among its
matches; the stitch reads the same keys for many records at once
(:mod:`._span_extras`), so that the two estimate clocks from the same
evidence. No numpy: ``logtrace grep`` must start fast.
"""

from __future__ import annotations

from .._schema import HOST_NAME, RESPONSE_MS

__all__ = ["answer_ms", "host_name"]

_ANSWER_KEYS = (f'"{RESPONSE_MS}"'.encode(), f"{RESPONSE_MS}=".encode())
_HOST_KEYS = (
    f'"{HOST_NAME}"'.encode(),
    b'"hostname"',
    f"{HOST_NAME}=".encode(),
    b"hostname=",
)
_NUMBER_END = b" ,}\t\r\n"


def answer_ms(line: bytes) -> float | None:
    """Milliseconds from the span's start to its complete response, if the line says."""
    at = _value_at(line, _ANSWER_KEYS)
    if at < 0:
        return None
    end = at
    while end < len(line) and line[end] not in _NUMBER_END:
        end += 1
    try:
        value = float(line[at:end])
    except ValueError:
        return None
    return value if value == value and abs(value) < 1e12 else None


def host_name(line: bytes) -> bytes:
    """The host the line names (``b""``: none)."""
    at = _value_at(line, _HOST_KEYS)
    if at < 0 or at >= len(line):
        return b""
    if line[at] == 0x22:  # a quoted string: up to the closing quote
        end = line.find(b'"', at + 1)
        return line[at + 1 : end] if end > at else b""
    end = at
    while end < len(line) and line[end] not in _NUMBER_END:
        end += 1
    return line[at:end]


def _value_at(line: bytes, keys: tuple[bytes, ...]) -> int:
    """Where the value of the first of ``keys`` found starts (-1: none)."""
    for key in keys:
        at = line.find(key)
        if at >= 0:
            at += len(key)
            while at < len(line) and line[at] in b" :\t":
                at += 1
            return at
    return -1
