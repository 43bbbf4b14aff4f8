"""Timestamps as services write them, turned into epoch seconds (UTC).

Log lines repeat the same second many times, so the calendar arithmetic for
``YYYY-MM-DDTHH:MM:SS`` is cached and only the fraction and offset are parsed
per line. A value without an offset is taken as UTC: one file is one clock,
and the clock stage corrects whatever offset remains.
"""

from __future__ import annotations

import re
import time
from calendar import timegm

__all__ = [
    "epoch_from_number",
    "iso_fast",
    "leading_timestamp",
    "minute_cache",
    "parse_timestamp",
    "timestamp_in_text",
]

_SECONDS: dict[str, int] = {}
_MINUTES: dict[str, int] = {}
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?"
)
_NGINX = re.compile(
    r"(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s*([+-]\d{4})?"
)
_SYSLOG = re.compile(r"([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?")
_NUMBER = re.compile(r"\d{9,19}(?:\.\d+)?")


def iso_fast(value: str) -> float | None:
    """``YYYY-MM-DDTHH:MM:SS.ffffff[Z]`` in a minute already seen, else ``None``.

    The shape nearly every line has; about a quarter of the general path's cost.
    """
    if len(value) not in (26, 27) or value[19] != "." or value[16] != ":":
        return None
    base = _MINUTES.get(value[:16])
    if base is None or (len(value) == 27 and value[26] != "Z"):
        return None
    second, fraction = value[17:19], value[20:26]
    if not (second.isdigit() and fraction.isdigit() and second.isascii() and fraction.isascii()):
        return None
    whole = int(second)
    if whole > 60:
        return None
    # As the general path adds them (whole seconds, then the fraction), to the bit.
    return (base + whole) + int(fraction) / 10**6


def minute_cache() -> dict[str, int]:
    """``YYYY-MM-DDTHH:MM`` -> epoch seconds, what :func:`iso_fast` reads."""
    return _MINUTES


def epoch_from_number(value: float) -> float | None:
    """Epoch seconds from seconds, milliseconds, microseconds or nanoseconds.

    The unit is guessed from the magnitude, which is unambiguous for any date
    between 1973 and 5138.
    """
    if value != value or value <= 0:
        return None
    if value < 1e11:
        return float(value)
    if value < 1e14:
        return value / 1e3
    if value < 1e17:
        return value / 1e6
    if value < 1e20:
        return value / 1e9
    return None


def _offset_seconds(tz: str | None) -> int:
    if not tz or tz in ("Z", "z", "UTC"):
        return 0
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) >= 4 else 0
    return sign * (hours * 3600 + minutes * 60)


def _fraction(digits: str | None) -> float:
    return int(digits) / 10 ** len(digits) if digits else 0.0


def _from_iso_match(m: re.Match[str]) -> float | None:
    year, month, day, hour, minute, second, frac, tz = m.groups()
    key = m.string[m.start() : m.start() + 19]
    base = _SECONDS.get(key)
    if base is None:
        if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31 and int(hour) < 24):
            return None
        if int(minute) > 59 or int(second) > 60 or int(year) < 1:
            return None
        base = timegm((int(year), int(month), int(day), int(hour), int(minute), int(second)))
        if len(_SECONDS) > 1_000_000:
            _SECONDS.clear()
            _MINUTES.clear()
        _SECONDS[key] = base
        _MINUTES[key[:16]] = base - int(second)
    return base + _fraction(frac) - _offset_seconds(tz)


def _fast_iso(text: str) -> float | None:
    """``2026-11-24T10:00:00[.ffffff][Z|+hh:mm]``: the shape nearly every line has."""
    base = _SECONDS.get(text[:19])
    if base is None:
        return None
    rest = text[19:]
    if not rest or rest == "Z":
        return float(base)
    frac = 0.0
    if rest[0] in ".,":
        end = 1
        n = len(rest)
        while end < n and rest[end].isdigit():
            end += 1
        digits = rest[1:end]
        if not digits or end > 10:
            return None
        frac = int(digits) / 10 ** len(digits)
        rest = rest[end:]
    if not rest or rest == "Z":
        return base + frac
    if rest[0] in "+-" and len(rest) in (3, 5, 6) and rest[1:3].isdigit():
        try:
            return base + frac - _offset_seconds(rest)
        except ValueError:
            return None
    return None


def parse_timestamp(value: object) -> float | None:
    """Epoch seconds from a record's timestamp field, or ``None``."""
    if isinstance(value, str):
        if len(value) >= 19:
            fast = _fast_iso(value)
            if fast is not None:
                return fast
        return _parse_text(value.strip())
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            return epoch_from_number(float(value))
        except OverflowError:
            return None
    return None


def _parse_text(text: str) -> float | None:
    if not text or len(text) > 64:
        return None
    if text[0].isdigit() and _NUMBER.fullmatch(text):
        return epoch_from_number(float(text))
    m = _ISO.match(text)
    if m is not None and m.end() == len(text):
        return _from_iso_match(m)
    return timestamp_in_text(text, anchored=True)


def timestamp_in_text(text: str, anchored: bool = False) -> float | None:
    """The first timestamp in a plain text line (ISO, nginx or syslog layout)."""
    head = text[:96]
    m = _ISO.match(head) if anchored else _ISO.search(head)
    if m is not None:
        return _from_iso_match(m)
    n = _NGINX.match(head) if anchored else _NGINX.search(head)
    if n is not None:
        day, mon, year, hour, minute, second, frac, tz = n.groups()
        month = _MONTHS.get(mon.lower())
        if month is None:
            return None
        try:
            base = timegm((int(year), month, int(day), int(hour), int(minute), int(second)))
        except (ValueError, OverflowError):
            return None
        return base + _fraction(frac) - _offset_seconds(tz)
    s = _SYSLOG.match(head) if anchored else _SYSLOG.search(head)
    if s is not None:
        mon, day, hour, minute, second, frac = s.groups()
        month = _MONTHS.get(mon.lower())
        if month is None:
            return None
        # Syslog omits the year: take the current one, as syslog readers do.
        year = time.gmtime().tm_year
        try:
            base = timegm((year, month, int(day), int(hour), int(minute), int(second)))
        except (ValueError, OverflowError):
            return None
        return base + _fraction(frac)
    return None


def leading_timestamp(text: str, at: int = 0) -> int:
    """Where the time that :func:`timestamp_in_text` reads from ``text`` ends,
    when that time starts at ``at`` (or just inside a ``[`` there); 0 when
    the time read is elsewhere or there is none. Ends past the spaces after
    an ISO time, as its pattern does."""
    head = text[:96]
    if head[at : at + 1] == "[":
        at += 1
    m = _ISO.match(head, at)
    if m is not None:
        # The first ISO time of the line is the one read (none can start in a "[").
        if at > 1 or (at == 1 and head[0] != "["):
            first = _ISO.search(head)
            if first is None or first.start() != at:
                return 0
        if head[at : at + 19] in _SECONDS or _from_iso_match(m) is not None:
            return m.end()
        return 0
    if _ISO.search(head) is not None:
        return 0
    n = _NGINX.match(head, at)
    if n is None:
        if _NGINX.search(head) is not None:
            return 0
        n = _SYSLOG.match(head, at)
        if n is None:
            return 0
    first = (_NGINX if n.re is _NGINX else _SYSLOG).search(head)
    if first is None or first.start() != at or timestamp_in_text(text) is None:
        return 0
    return n.end()
