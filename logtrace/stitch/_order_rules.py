"""The ordering rules, stated once in plain Python over a list of lines.

This is what ``logtrace grep`` runs on its matches, and the reference the
stitcher's numpy version (:mod:`._order`) is tested against, line for line
(tests/stitch/test_order_parity.py). The rules, per trace (the keys of
rules 1 and 2 are worked out in :mod:`._order_keys`):

1. **File order.** Lines of one file never swap places. Each line's key
   starts as its corrected time; a key never goes below an earlier line's of
   the same file and trace (threads racing to a log write times out of order).
2. **Precision.** A line whose time is a whole second or millisecond in a
   file that writes such times (:mod:`._precision`) happened some time in
   that interval. Its earlier lines in the file say it is no earlier than
   theirs, its later lines that it is no later than theirs. Bounded by an
   earlier line alone, it goes right after it; by a later line alone, right
   before it; by both or neither, the lines of one such run spread evenly
   over what is left of their interval.
3. **Causality.** A call is a span whose parent span, in another service,
   is in the logs (a message's consumer under its producer is one with no
   answer: its lines go after the send, however long after). The
   caller says when it sent the request and got the answer in its span
   records: its client span record, else its own span's record (the request
   went out after the span's start, the answer came before its latest
   time). Without a record the caller's lines say neither, as any of them
   may come before or after the call: only their times (and rule 4) place
   the callee's lines. Nor does a caller the stitcher inferred from
   containment (its records belong to a guess): rule 4 alone. The callee's lines, and
   those of every span under it, go after the send and before the answer,
   the bounds of a call inside a call nested inside the outer call's. Work
   the callee did after its answer was complete is bounded by the send
   alone: lines at or after the callee's span record (written when the
   application returned) and, when the record says when the response was
   complete (``response_ms``) and a line would otherwise be moved, lines
   after that. Where bounds cross, the send wins: a line after, in its file,
   a line that came after a later request ran after its own answer. The
   bounds move keys, never file order.
4. **Brackets.** Where either side of a call writes coarse times, the
   caller's own lines (not its span records) tighten the call's bounds, as
   far as the times allow; a caller with none (a client span whose only
   line is its record) lends those of the nearest span above it in its
   service. The lines of the call (the callee span's and
   those of the spans under it up to the next call, span records included)
   say when the callee can have started at the latest (the earliest end of
   their intervals, or a span record's start) and ended at the earliest
   (their latest time; not a span record a text format wrote, which came
   when the application returned). In key order, the longest run of the caller's lines from
   the first that all surely came before the callee ended, and all may have
   come before it started, were written before the request went out: the
   callee's lines go after the last of them. The longest run back from the
   last line that all surely came after the callee started, and may have
   come after it ended, were written after the answer: the callee's lines
   go before the first of them. A caller's line came no earlier than the
   lines before it in its file (of the trace), the start its span states
   (else its first time) and the send of a call it is in. A caller's line
   written while the callee surely ran bounds nothing. A call whose callee
   wrote three lines or
   more (before a span record a text format wrote) is also bracketed
   without the last: where that finds a closer line of the caller's after
   the call and the last line surely came after it, the last line is work
   after the answer, bounded by the send alone.

Traces go out by their first key, ties by first appearance; a trace's lines
by key, ties by file then line; lines without a trace last, as read.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ._model import KIND_CLIENT, KIND_PRODUCER, SPAN_RECORD
from ._order_keys import MAX_WRITER_HOPS, Line, bounded_keys, clip, precise_keys
from ._span_fields import answer_ms, text_span_record

__all__ = [
    "MAX_DEPTH",
    "answered_at",
    "order_lines",
    "shown_at",
]

MAX_DEPTH = 256
"""Parent links followed at most (as the span tree does): deeper is a cycle."""
_INF = math.inf


def answered_at(raw: bytes, start: float) -> float:
    """When a server span record (starting at raw ``start``) says its response
    was complete, raw; NaN if it does not say."""
    ms = answer_ms(raw)
    if ms is None or start != start:
        return math.nan
    return start + ms / 1000.0


@dataclass(slots=True)
class _Span:
    key: str
    service: str
    start: float = _INF
    end: float = -_INF
    last: float = -_INF
    """The latest its lines' times allow (a time to the second: its end)."""
    parent: str | None = None
    client: bool = False
    producer: bool = False
    record: int = -1
    """The span's last span record (index into the lines)."""
    depth: int = -1
    call: bool = False
    queued: bool = False
    """A message's consumer: its producer's send bounds it, nothing after."""
    root: str | None = None
    """The innermost call at or above the span (a callee span), if any."""
    send: float = -_INF
    receive: float = _INF
    answered: float = math.nan
    written_late: float = _INF
    """The time of its span record when a text format wrote it (no fields):
    written when the application returned, often after the answer."""
    rows: list[int] = field(default_factory=list)


def order_lines(
    lines: Sequence[Line],
    correct: Callable[[str, float], float],
    read: Callable[[int], bytes],
) -> list[int]:
    """Indexes of ``lines`` (in file then line order) in output order.

    ``correct(service, t)`` puts a raw time of ``service`` on the reference
    clock; ``read(i)`` gives line ``i``'s bytes (a span record's, for its
    ``response_ms``)."""
    traces: dict[str, list[int]] = {}
    tail: list[int] = []
    for i, ln in enumerate(lines):
        if ln.trace is None:
            tail.append(i)
        else:
            traces.setdefault(ln.trace, []).append(i)
    keyed: list[tuple[float, int, list[int]]] = []
    for n, rows in enumerate(traces.values()):
        keys = _trace_keys(lines, rows, correct, read)
        fine = [lines[i].corrected for i in rows if not lines[i].res]
        first = min((t for t in fine if t == t), default=_INF)
        shown = [shown_at(lines[i], first) for i in rows]
        start = min((t for t in shown if t == t), default=_INF)
        keyed.append((start, n, sorted(rows, key=lambda i: (keys[i], lines[i].file, i))))
    keyed.sort(key=lambda t: (t[0], t[1]))
    out = [i for _, _, rows in keyed for i in rows]
    return out + tail


def shown_at(line: Line, first_fine: float) -> float:
    """The time ``line`` is shown at (NaN: none), its trace's first finely
    timed line at ``first_fine`` (infinite: none): its own for a finely timed
    line; for one timed to the millisecond or the second, the instant of its
    interval nearest that line's, its interval's start without one. Traces
    come out by the first."""
    t = line.corrected
    if not line.res or t != t or first_fine == _INF:
        return t
    return min(max(first_fine, t), t + line.res)


def _spans(lines: Sequence[Line], rows: list[int]) -> dict[str, _Span]:
    spans: dict[str, _Span] = {}
    for i in rows:
        ln = lines[i]
        if ln.span is None:
            continue
        s = spans.get(ln.span)
        if s is None:
            s = spans[ln.span] = _Span(ln.span, ln.service)
        s.rows.append(i)
        if ln.parent is not None and ln.parent != ln.span:
            s.parent = ln.parent
        if ln.ts == ln.ts:
            s.start = min(s.start, ln.ts)
            s.end = max(s.end, ln.ts)
            s.last = max(s.last, ln.ts + ln.res)
        if ln.flags & SPAN_RECORD:
            if ln.start == ln.start:
                s.start = min(s.start, ln.start)
            if ln.flags & KIND_CLIENT:
                s.client = True
            s.record = i
        if ln.flags & KIND_PRODUCER:
            s.producer = True
    for s in spans.values():
        if s.start == _INF:
            s.start = math.nan
        if s.end == -_INF:
            s.end = s.last = math.nan
    _depths(spans)
    return spans


def _depths(spans: dict[str, _Span]) -> None:
    """Depths as the span tree gives them (orphans and cycles under the root)."""
    has_root = any(s.parent is None for s in spans.values())
    for s in spans.values():
        if s.parent is None:
            s.depth = 0
        elif s.parent not in spans:
            s.depth = int(has_root)
    for s in spans.values():
        if s.depth >= 0:
            continue
        steps, up = 0, s
        while up.depth < 0 and steps <= MAX_DEPTH:
            assert up.parent is not None
            up = spans[up.parent]
            steps += 1
        s.depth = up.depth + steps if up.depth >= 0 and steps <= MAX_DEPTH else -2
    for s in spans.values():
        if s.depth == -2:
            s.depth = int(has_root)


def _linked(spans: dict[str, _Span], s: _Span) -> _Span | None:
    """The parent, when the tree really hangs ``s`` under it."""
    up = spans.get(s.parent) if s.parent is not None else None
    return up if up is not None and up.depth == s.depth - 1 else None


def _exempt(s: _Span, t: float, lines: Sequence[Line]) -> bool:
    """Whether a time ``t`` of the callee ``s``'s service is after its answer."""
    if s.record >= 0 and t >= lines[s.record].ts:
        return True
    return t > s.answered or t >= s.written_late


def _text_records(
    spans: dict[str, _Span], lines: Sequence[Line], read: Callable[[int], bytes]
) -> None:
    """Mark the spans whose last line is a span record a text format wrote."""
    for s in spans.values():
        if s.record >= 0 or s.end != s.end:
            continue
        last = max((i for i in s.rows if lines[i].ts == s.end), default=-1)
        if last >= 0 and text_span_record(read(last)):
            s.written_late = s.end


def _trace_keys(
    lines: Sequence[Line],
    rows: list[int],
    correct: Callable[[str, float], float],
    read: Callable[[int], bytes],
) -> dict[int, float]:
    base = precise_keys(lines, rows)
    spans = _spans(lines, rows)
    _text_records(spans, lines, read)
    by_depth = sorted(spans.values(), key=lambda s: s.depth)
    for s in by_depth:
        up = spans.get(s.parent) if s.parent is not None else None
        s.call = (
            up is not None
            and up.service != s.service
            and s.start == s.start
            and up.start == up.start
        )
        s.queued = s.call and up is not None and up.producer
        linked = _linked(spans, s)
        inherited = linked.root if linked is not None else None
        s.root = s.key if s.call else inherited
    sent = {}  # a call's send, where its caller's record says it
    for s in spans.values():
        caller = spans[s.parent] if s.call and s.parent is not None else None
        if caller is not None and caller.record >= 0:
            sent[s.key] = math.nextafter(correct(caller.service, caller.start), _INF)
    floor = _written_after(lines, rows, spans, correct, sent)
    members: dict[str, list[int]] = {}
    for s in spans.values():
        if s.root is not None:
            members.setdefault(s.root, []).extend(s.rows)
    for s in by_depth:  # outer calls are bounded before the calls inside them
        if not s.call:
            continue
        caller = spans[s.parent]  # type: ignore[index]
        send = correct(caller.service, caller.start)
        receive = correct(caller.service, caller.last)
        recorded = caller.record >= 0
        lo = math.nextafter(send, _INF) if recorded else -_INF
        hi = math.nextafter(receive, -_INF) if recorded and receive > send else _INF
        held = members[s.key]
        writer = _writer(spans, caller, lines)
        before, after = _brackets(lines, base, writer, held, correct, s.written_late, floor)
        # Work after the answer: bracketed without the callee's last line,
        # the call's lines are bounded by a closer line of the caller's,
        # and its later lines surely came after that line.
        cut = _last_but_one(lines, s)
        if cut == cut:
            kept = [i for i in held if not lines[i].ts > cut]
            cut_before, cut_after = _brackets(
                lines, base, writer, kept, correct, s.written_late, floor
            )
            later = [lines[i].corrected for i in held if lines[i].ts > cut]
            later = [t for t in later if t == t]
            if cut_after < after and later and min(later) > cut_after:
                before, after = cut_before, cut_after
                s.answered = cut
        lo, hi = max(lo, math.nextafter(before, _INF)), min(hi, math.nextafter(after, -_INF))
        if s.queued:
            hi = _INF
        linked = _linked(spans, s)
        if linked is not None and linked.root is not None:
            outer = spans[linked.root]
            # A message's consumer may run after the outer call's answer.
            free = s.queued or _exempt(outer, caller.start, lines)
            o_hi = _INF if free else outer.receive
            lo, hi = clip(lo, outer.send, o_hi), clip(hi, outer.send, o_hi)
        s.send, s.receive = lo, hi
        if s.record >= 0:
            end = lines[s.record].ts
            if any(not lines[i].ts >= end and base[i] > hi for i in members[s.key]):
                s.answered = answered_at(read(s.record), lines[s.record].start)
    bounds: dict[int, tuple[float, float]] = {}
    for s in spans.values():
        if s.root is None:
            continue
        call = spans[s.root]
        for i in s.rows:
            hi = _INF if _exempt(call, lines[i].ts, lines) else call.receive
            bounds[i] = (call.send, hi)
    return bounded_keys(lines, rows, base, bounds)


def _last_but_one(lines: Sequence[Line], s: _Span) -> float:
    """The raw time of the span's last own line but one (before a span
    record a text format wrote), where it has three or more; else NaN."""
    own = sorted(
        lines[i].ts
        for i in s.rows
        if _own(lines[i]) and lines[i].ts == lines[i].ts and not lines[i].ts >= s.written_late
    )
    return own[-2] if len(own) >= 3 else math.nan


def _writer(spans: dict[str, _Span], caller: _Span, lines: Sequence[Line]) -> _Span:
    """The span whose own lines bracket a call of ``caller``: the caller, or,
    where it writes none (a client span whose only line is its record), the
    nearest span above it in its service that does."""
    writer = caller
    for _ in range(MAX_WRITER_HOPS):
        if any(_own(lines[i]) for i in writer.rows):
            return writer
        up = _linked(spans, writer)
        if up is None or up.service != writer.service:
            return writer
        writer = up
    return writer


def _own(ln: Line) -> bool:
    """A line of its span's own with a time (no span record)."""
    return ln.corrected == ln.corrected and not ln.flags & SPAN_RECORD


def _written_after(
    lines: Sequence[Line],
    rows: list[int],
    spans: dict[str, _Span],
    correct: Callable[[str, float], float],
    sent: dict[str, float],
) -> dict[int, float]:
    """Per line: the earliest it can have been written. Its time; the
    start of its span (the one its span records state, else its first
    time), the one its own span record states and the send of the call
    it is in (``sent``, per callee span), if later; and the earliest of an
    earlier line of its file (of the trace), if later."""
    recorded: dict[str, float] = {}
    for i in rows:
        ln = lines[i]
        if ln.span is not None and ln.flags & SPAN_RECORD and ln.start == ln.start:
            recorded[ln.span] = min(recorded.get(ln.span, _INF), ln.start)
    out: dict[int, float] = {}
    running: dict[int, float] = {}
    for i in rows:
        ln = lines[i]
        t = ln.corrected
        s = spans.get(ln.span) if ln.span is not None else None
        starts = [ln.start] if ln.flags & SPAN_RECORD else []
        began = math.nan if s is None else recorded.get(s.key, s.start)
        for raw in [*starts, began]:
            if raw == raw:
                stated = correct(ln.service, raw)
                t = stated if t != t else max(t, stated)
        send = sent.get(s.root, math.nan) if s is not None and s.root is not None else math.nan
        if send == send:
            t = send if t != t else max(t, send)
        held = running.get(ln.file, math.nan)
        if t == t:
            held = t if held != held else max(held, t)
            running[ln.file] = held
        out[i] = held
    return out


def _brackets(
    lines: Sequence[Line],
    base: dict[int, float],
    caller: _Span,
    call: list[int],
    correct: Callable[[str, float], float],
    written_late: float,
    floor: dict[int, float],
) -> tuple[float, float]:
    """Rule 4: the keys the lines of a call (``call``: its rows) stay above
    and below; lines at or after ``written_late`` (the callee's span record
    a text format wrote) say nothing of when it ended; ``floor`` per line:
    the earliest it can have been written (:func:`_written_after`)."""
    mine = [lines[i] for i in call if lines[i].corrected == lines[i].corrected]
    theirs = sorted((i for i in caller.rows if _own(lines[i])), key=lambda i: (base[i], i))
    if not mine or not theirs:
        return -_INF, _INF
    if not any(ln.res > 0 for ln in mine) and not any(lines[i].res > 0 for i in theirs):
        return -_INF, _INF
    latest_start = min(ln.corrected + ln.res for ln in mine)
    for ln in mine:
        if ln.flags & SPAN_RECORD and ln.start == ln.start:
            latest_start = min(latest_start, correct(ln.service, ln.start))
    earliest_end = max((ln.corrected for ln in mine if not ln.ts >= written_late), default=-_INF)
    before, after = -_INF, _INF
    lo = hi = -_INF
    for i in theirs:
        lo, hi = max(lo, floor[i]), max(hi, lines[i].corrected + lines[i].res)
        if not (hi < earliest_end and lo < latest_start):
            break
        before = base[i]
    lo = hi = _INF
    for i in reversed(theirs):
        lo, hi = min(lo, floor[i]), min(hi, lines[i].corrected + lines[i].res)
        if not (lo >= latest_start and hi > earliest_end):
            break
        after = base[i]
    return before, after
