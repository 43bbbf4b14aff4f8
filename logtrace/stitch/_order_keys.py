"""Rules 1 and 2 of :mod:`._order_rules` in plain Python: each line's key
from the lines of its file in its trace, and the bounds of rule 3 applied
to those keys without reordering a file."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_WRITER_HOPS", "Line", "bounded_keys", "clip", "precise_keys"]

_INF = math.inf

MAX_WRITER_HOPS = 8
"""How far up its own service a call's bracketing lines are looked for, from
a caller that writes none of its own (rule 4 of :mod:`._order_rules`)."""


@dataclass(slots=True)
class Line:
    """What ordering reads of one line."""

    file: int
    trace: str | None
    span: str | None
    parent: str | None
    service: str
    flags: int
    ts: float
    """Raw time, NaN if none."""
    start: float
    """A span record's start (raw), NaN otherwise."""
    corrected: float
    """``ts`` on the reference clock (NaN if none)."""
    res: float = 0.0
    """Resolution of ``ts``: 0.0 a point, else the interval's length."""


def clip(value: float, lo: float, hi: float) -> float:
    """``value`` within ``[lo, hi]``; ``lo`` wins if they cross (a request is
    never handled before it was sent; an answer bound may not hold)."""
    return max(min(value, hi), lo)


def precise_keys(lines: Sequence[Line], rows: list[int]) -> dict[int, float]:
    """Rules 1 and 2: each line's key from its file's lines of the trace."""
    keys: dict[int, float] = {}
    for group in _by_file(lines, rows):
        n = len(group)
        lo = [math.nan] * n
        hi = [_INF] * n
        running = math.nan
        for j, i in enumerate(group):
            c = lines[i].corrected
            if c == c:
                running = c if running != running else max(running, c)
            lo[j] = running
        running = _INF
        for j in range(n - 1, -1, -1):
            ln = lines[group[j]]
            if ln.corrected == ln.corrected:
                running = min(running, ln.corrected + ln.res)
            hi[j] = running
        base = list(lo)
        j = 0
        while j < n:
            ln = lines[group[j]]
            if not (ln.res > 0 and ln.corrected == ln.corrected and hi[j] > lo[j]):
                j += 1
                continue
            k = j + 1
            while k < n:
                nx = lines[group[k]]
                if not (nx.res > 0 and nx.corrected == nx.corrected):
                    break
                if lo[k] != lo[j] or hi[k] != hi[j]:
                    break
                k += 1
            count = k - j
            after = lo[j] > ln.corrected  # an earlier line of the file bounds the run
            before = hi[j] < ln.corrected + ln.res  # a later one does
            for r in range(count):
                if after and not before:
                    base[j + r] = lo[j]
                elif before and not after:
                    base[j + r] = hi[j]
                else:
                    base[j + r] = lo[j] + (hi[j] - lo[j]) * (r + 1) / (count + 1)
            j = k
        first = next((b for b in base if b == b), math.nan)
        held = first
        for j, i in enumerate(group):
            b = base[j]
            if b == b and b > held:
                held = b
            keys[i] = held if held == held else -_INF
    return keys


def bounded_keys(
    lines: Sequence[Line],
    rows: list[int],
    base: dict[int, float],
    bounds: dict[int, tuple[float, float]],
) -> dict[int, float]:
    """Rule 3 applied to the keys, each file's order kept."""
    keys: dict[int, float] = {}
    for group in _by_file(lines, rows):
        n = len(group)
        upper = [_INF] * n
        running = _INF
        for j in range(n - 1, -1, -1):
            running = min(running, bounds.get(group[j], (-_INF, _INF))[1])
            upper[j] = running
        lower = -_INF
        held = -_INF
        for j, i in enumerate(group):
            lower = max(lower, bounds.get(i, (-_INF, _INF))[0])
            held = max(held, clip(base[i], lower, upper[j]))
            keys[i] = held
    return keys


def _by_file(lines: Sequence[Line], rows: list[int]) -> list[list[int]]:
    """``rows`` per file, in their order."""
    groups: dict[int, list[int]] = {}
    for i in rows:
        groups.setdefault(lines[i].file, []).append(i)
    return list(groups.values())
