"""``logtrace grep``: every line holding an ID, in stitched order.

The search (:mod:`._grep_search`) reads each file a block of whole lines at a
time, on as many threads as there are CPUs; only matching lines are parsed
(:mod:`._grep_order`), a module loaded while the first files are searched.
They are then ordered as the stitcher orders a trace. On small inputs
(:data:`SMALL_INPUT`), a stitch of them for the matches' traces gives that
order itself (:mod:`._grep_stitched`): its clocks come from every trace's
calls. Beyond, the clock offsets are estimated from the calls among the
matches alone (a full estimate would need a full read; one trace's client
span records pin its hops down, but between parallel branches, or on logs
that name no parent, the two orders can differ).

Ordering needs every match at once, so it is done while the matches fit a
bounded buffer (:data:`ORDER_BUFFER`, far more than a trace's lines). Beyond
it, an ID held by a large part of the input, the matches are written as they
are found, in file order file by file, and :func:`grep_stream` says so: memory
stays bounded whatever the input. Beyond small inputs, pure Python and no
numpy, so that start-up costs little next to the search.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._grep_search import MATCH_COST, Match, each_file
from ._plan import InputError

if TYPE_CHECKING:
    from ._clocks import ClockModel
    from ._source import Source

__all__ = ["ORDER_BUFFER", "SMALL_INPUT", "Match", "grep", "grep_stream", "small_input"]

SMALL_INPUT = 32 << 20
"""Bytes of input (as stored) up to which the matches are put in order by
a stitch of the inputs (:mod:`._grep_stitched`): exactly its order."""

ORDER_BUFFER = 32 << 20
"""Bytes of matches (their text and about :data:`._grep_search.MATCH_COST`
each) held to be put in stitched order; beyond, matches are written in file order."""


def small_input(sources: Sequence[Source]) -> bool:
    """Whether ``sources`` are files of :data:`SMALL_INPUT` bytes in all."""
    total = 0
    for source in sources:
        try:
            total += os.path.getsize(source.path)
        except OSError:
            return False
        if total > SMALL_INPUT:
            return False
    return True


def _needles(ids: Sequence[str]) -> list[bytes]:
    """What to look for: each ID as given and in lower case; for a 128-bit
    hex ID its low half instead (which every line of the whole ID holds
    too), in hex and in decimal, as services that log only the low 64 bits
    write it (Datadog's tracers, B3's 64-bit IDs; the stitch joins them:
    :mod:`._trace_halves`); for a decimal ID of 64 bits, its hex form too."""
    needles: list[bytes] = []
    for ident in ids:
        forms = [ident, ident.lower()]
        if len(ident) == 32 and _is_hex(ident):
            low = ident[16:]
            forms = [low, low.lower(), str(int(low, 16))]
        elif ident.isdigit() and int(ident) < 1 << 64:
            forms.append(format(int(ident), "016x"))
        for form in forms:
            encoded = form.encode()
            if encoded and encoded not in needles:
                needles.append(encoded)
    return needles


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def grep(
    ids: Sequence[str], sources: Sequence[Source], warnings: list[str], numbers: bool = True
) -> list[Match]:
    """Every line of ``sources`` containing one of ``ids``, in stitched order
    (all held: :func:`grep_stream` bounds its memory).

    Line numbers cost a count of every newline before each match; without
    ``numbers`` they are left at 0.
    """
    found: list[Match] = []
    grep_stream(ids, sources, warnings, found.append, numbers, buffer=-1)
    return found


def grep_stream(
    ids: Sequence[str],
    sources: Sequence[Source],
    warnings: list[str],
    write: Callable[[Match], None],
    numbers: bool = True,
    buffer: int | None = None,
    skipped: list[str] | None = None,
    clocks: dict[str, ClockModel] | None = None,
    notes: list[str] | None = None,
) -> tuple[int, bool]:
    """Every line of ``sources`` containing one of ``ids``, each handed to
    ``write``: in stitched order while the matches fit ``buffer`` bytes
    (default :data:`ORDER_BUFFER`; -1: no limit), else each file's in file
    order as found. Returns the number of matches and whether they came in
    stitched order.

    A file that cannot be opened (gone since it was listed) is named in
    ``skipped`` and passed over; without ``skipped``, it raises :class:`InputError`.
    ``clocks`` are as :func:`._grep_order.order_matches` takes them (``{}``: no correction);
    ``notes`` gets what it notes about the order.
    """
    needles = _needles(ids)
    # Small inputs: the stitch itself orders the matches (they need their
    # line numbers for that). Its module loads only then.
    small = clocks is None and small_input(sources)
    numbers = numbers or small
    if buffer is None:
        buffer = ORDER_BUFFER
    held: list[Match] | None = []
    size = 0
    count = 0
    cap = None if buffer < 0 else buffer // 2
    # The ordering's modules load while the threads search the first files.
    for matches in each_file(sources, needles, warnings, numbers, cap, _load_order):
        try:
            for m in matches:
                count += 1
                if held is None:
                    write(m)
                    continue
                held.append(m)
                size += len(m.raw) + MATCH_COST
                if 0 <= buffer < size:
                    for early in held:
                        write(early)
                    held = None
        except InputError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
    if held is None:
        return count, False
    order_matches = _load_order().order_matches
    paths = [s.path for s in sources]
    names = [s.name for s in sources]
    stitched = _load("._grep_stitched").stitched_order(held, sources) if small else None
    if stitched is not None:
        known, rest = stitched
        held = known + (order_matches(rest, names, paths, {}) if rest else [])
    else:
        held = order_matches(held, names, paths, clocks, notes)
    for m in held:
        write(m)
    return count, True


def _load(name: str) -> Any:
    return import_module(name, __package__)


def _load_order() -> Any:
    """:mod:`._grep_order` (the parser, the ordering rules, the clock solver)."""
    return _load("._grep_order")
