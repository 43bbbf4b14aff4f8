"""W3C Trace Context: ``traceparent`` and ``tracestate`` (Level 1 and Level 2).

The parsers raise :class:`ValueError` with a short reason that never quotes the
input, so callers can log the reason next to their own escaped copy of the
value. The propagator has an inlined fast path for the common well-formed
version-00 header; these functions are the complete rules behind it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = [
    "FLAG_RANDOM",
    "FLAG_SAMPLED",
    "TRACESTATE_MAX_LENGTH",
    "Traceparent",
    "format_traceparent",
    "format_tracestate",
    "normalize_tracestate",
    "parse_traceparent",
    "parse_tracestate",
    "truncate_tracestate",
]

FLAG_SAMPLED = 0x01
"""``trace-flags`` bit 0: the caller may have recorded trace data."""
FLAG_RANDOM = 0x02
"""``trace-flags`` bit 1 (Level 2): the right-most 7 bytes of the trace-id are random."""

ZERO_TRACE_ID = "0" * 32
ZERO_SPAN_ID = "0" * 16

TRACEPARENT_MAX_LENGTH = 512
"""Longest ``traceparent`` of a future version we try to read; longer is hostile."""
TRACESTATE_MAX_LENGTH = 512
"""Default propagated ``tracestate`` length: the minimum the spec asks vendors to carry."""
TRACESTATE_RAW_MAX_LENGTH = 8192
"""Combined incoming ``tracestate`` longer than this is discarded unread."""
TRACESTATE_MAX_MEMBERS = 32
TRACESTATE_LARGE_MEMBER = 128
"""Members longer than this are dropped first when truncating."""

_OWS = " \t"

# version 00 is exactly these 55 characters; future versions may append "-..." fields.
_VERSION = re.compile(r"[0-9a-f]{2}-")
_TRACEPARENT = re.compile(
    r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x20-\x7e]*)?"
)
_PRINTABLE = re.compile(r"[\x20-\x7e]*")

# Level 2 key: a lowercase letter or digit, then up to 255 of a-z 0-9 _ - * / @.
_KEY = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}")
# Level 1 key: simple-key, or multi-tenant-key (tenant-id "@" system-id).
_KEY_LEVEL1 = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}"  # simple-key
    r"|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"  # multi-tenant-key
)
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")


class Traceparent(NamedTuple):
    """A parsed ``traceparent``: the caller's position in its trace."""

    version: int
    trace_id: str
    parent_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & FLAG_SAMPLED)

    @property
    def random(self) -> bool:
        return bool(self.flags & FLAG_RANDOM)


def parse_traceparent(value: str) -> Traceparent:
    """Read a ``traceparent`` value; raise :class:`ValueError` saying why it is invalid.

    Surrounding spaces and tabs are optional whitespace and ignored. Version
    ``00`` must be exactly 55 characters; a higher version is read leniently
    (its first four fields as version 00 defines them, anything after a dash
    ignored); version ``ff``, uppercase hex and all-zero IDs are invalid.
    """
    value = value.strip(_OWS)
    if len(value) > TRACEPARENT_MAX_LENGTH:
        raise ValueError("oversized")
    if _PRINTABLE.fullmatch(value) is None:
        raise ValueError("non-ASCII or control characters")
    if _VERSION.match(value) is None:
        raise ValueError("version is not two lowercase hex digits and a dash")
    version = int(value[:2], 16)
    if version == 0xFF:
        raise ValueError("version ff is forbidden")
    if version == 0 and len(value) != 55:
        raise ValueError("version 00 must be exactly 55 characters")
    if len(value) < 55:
        raise ValueError("shorter than 55 characters")
    m = _TRACEPARENT.fullmatch(value)
    if m is None:
        raise ValueError("fields are not lowercase hex of the right lengths")
    _, trace_id, parent_id, flags, _rest = m.groups()
    if trace_id == ZERO_TRACE_ID:
        raise ValueError("trace-id is all zeros")
    if parent_id == ZERO_SPAN_ID:
        raise ValueError("parent-id is all zeros")
    return Traceparent(version, trace_id, parent_id, int(flags, 16))


def format_traceparent(trace_id: str, span_id: str, sampled: bool, random: bool) -> str:
    """A version-00 ``traceparent``; flags other than sampled and random are written as zero."""
    return f"00-{trace_id}-{span_id}-0{(1 if sampled else 0) | (2 if random else 0)}"


def parse_tracestate(value: str, level: int = 2) -> list[tuple[str, str]]:
    """Read a combined ``tracestate`` value into ``(key, value)`` members, left to right.

    Several ``tracestate`` header fields are combined first by joining them
    with commas, in order. Empty and whitespace-only members are skipped and
    not counted. A key that appears again is kept once, at its left-most
    place (the most recent vendor's entry): the W3C test suite asks that such
    a list be passed on, whole or with duplicates dropped, rather than
    discarded. Any invalid member or more than 32 distinct members makes the
    whole value invalid: :class:`ValueError`.

    Keys follow the Level 2 grammar (``level=2``, the default): a lowercase
    letter or digit, then up to 255 of ``a-z 0-9 _ - * / @``. ``level=1``
    applies the Level 1 grammar instead, where a key is either a simple key
    (starting with a letter) or exactly one ``tenant@system`` with length
    limits on each side. Every Level 1 key is a valid Level 2 key.
    """
    if len(value) > TRACESTATE_RAW_MAX_LENGTH:
        raise ValueError("oversized")
    key_match = _KEY.fullmatch if level == 2 else _KEY_LEVEL1.fullmatch
    members: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in value.split(","):
        member = raw.strip(_OWS)
        if not member:
            continue
        key, eq, val = member.partition("=")
        if not eq:
            raise ValueError("member without '='")
        if key_match(key) is None:
            raise ValueError("invalid key")
        if _VALUE.fullmatch(val) is None:
            raise ValueError("invalid value")
        if key in seen:
            continue
        seen.add(key)
        members.append((key, val))
        if len(members) > TRACESTATE_MAX_MEMBERS:
            raise ValueError("more than 32 members")
    return members


def truncate_tracestate(
    members: list[tuple[str, str]], max_length: int = TRACESTATE_MAX_LENGTH
) -> list[tuple[str, str]]:
    """Whole members removed until the formatted list fits ``max_length`` characters.

    Members longer than 128 characters go first, starting from the right;
    then members are removed from the right, as the specification asks.
    """
    lengths = [len(k) + 1 + len(v) for k, v in members]
    total = sum(lengths) + max(len(members) - 1, 0)
    if total <= max_length:
        return members
    keep = [True] * len(members)
    for i in range(len(members) - 1, -1, -1):
        if total <= max_length:
            break
        if lengths[i] > TRACESTATE_LARGE_MEMBER:
            keep[i] = False
            total -= lengths[i] + 1
    for i in range(len(members) - 1, -1, -1):
        if total <= max_length:
            break
        if keep[i]:
            keep[i] = False
            total -= lengths[i] + 1
    return [m for m, k in zip(members, keep, strict=True) if k]


def format_tracestate(members: list[tuple[str, str]]) -> str | None:
    """Members as a ``tracestate`` value without optional whitespace; ``None`` when empty."""
    if not members:
        return None
    return ",".join(f"{k}={v}" for k, v in members)


_VALUE_PATTERN = _VALUE.pattern
# A list already in the form we send: members joined by bare commas, no optional
# whitespace, no empty members. Most headers arrive like this; for them one
# match and a duplicate check replace the member-by-member parse.
_CLEAN = re.compile(
    f"(?:{_KEY.pattern})=(?:{_VALUE_PATTERN})(?:,(?:{_KEY.pattern})=(?:{_VALUE_PATTERN}))*"
)


def normalize_tracestate(
    value: str, max_length: int = TRACESTATE_MAX_LENGTH, level: int = 2
) -> str | None:
    """An incoming combined ``tracestate`` as we propagate it, or ``None`` when empty.

    Duplicated keys are kept once, at their left-most place. Raises
    :class:`ValueError` when the value is invalid (it is then dropped whole).
    """
    if level == 2 and len(value) <= max_length and _CLEAN.fullmatch(value) is not None:
        members = value.split(",")
        if len(members) == 1:
            return value
        if len(members) <= TRACESTATE_MAX_MEMBERS and len(
            {m[: m.index("=")] for m in members}
        ) == len(members):
            return value
    return format_tracestate(truncate_tracestate(parse_tracestate(value, level), max_length))
