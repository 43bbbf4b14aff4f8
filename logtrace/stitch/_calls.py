"""Clocks: one collector of call bounds that every partition feeds, one estimate.

Each partition gives its cross-service calls (:func:`partition_calls`: a
few arrays, a small fraction of its rows) to the run's
:class:`CallCollector`; the driver solves the clocks from all of them
(:func:`solve_clocks`). Calls without a client span record are bounded by
the caller's whole span at first; with that first estimate, the caller's
records just before and just after the callee's span (on corrected clocks,
kept a margin away so that the first estimate's error cannot pick the wrong
side) bound them much tighter, and the estimate is repeated. (Records proven
on the right side by the bounds alone would bound nothing tighter than those
bounds: the estimate has to lead.) That bracketing needs the caller's
records, so it runs partition by partition (:func:`bracket_partition`): a
call's caller span and its records are in one partition.

Beyond :func:`call_cap` calls (a run of many partitions), the calls of a
deterministic sample of traces are kept, so that memory stays bounded
however long the run; below it, every call counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from hashlib import blake2b

import numpy as np
import numpy.typing as npt

from ._clock_asymmetry import ASYMMETRY, lined_services
from ._clock_queues import Queues, add_hop
from ._clocks import (
    ClockModel,
    DifferenceBounds,
    estimate_clocks_from_columns,
    one_host_services,
)
from ._correct import (
    CallerRecords,
    bracketing_rows,
    correct_times,
    find_calls,
    loose_calls,
    model_arrays,
)
from ._model import Summary, Table, Tree, outward_ms
from ._partition import FIXED_MEMORY
from ._resolution import row_resolution, span_resolution
from ._span_extras import text_records

__all__ = [
    "MIN_CALLS",
    "Bracketing",
    "CallCollector",
    "CallColumns",
    "KeptCalls",
    "bracket_partition",
    "call_cap",
    "estimate_calls",
    "note_clocks",
    "overlapping",
    "partition_calls",
    "queue_bounds",
    "sample_keys",
    "solve_clocks",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MIN_CALLS = 500_000
"""Calls the clock estimate keeps at least, whatever the budget: enough for
the tightest delays of every service pair to show (about 80 MB at most)."""
BYTES_PER_CALL = 160
"""Memory per kept call while estimating (columns, sort, the estimator's arrays)."""

MARGINS = (100e-6, 30e-6)
"""Bracketing rounds: how far (seconds, corrected) a bracketing record must
be from the callee's span."""


def call_cap(memory: int) -> int:
    """How many calls the clock estimate keeps: a quarter of the budget's worth."""
    return max(MIN_CALLS, (memory - FIXED_MEMORY) // 4 // BYTES_PER_CALL)


def sample_keys(trace_ids: Sequence[str]) -> I64:
    """Per trace, the key that decides whether its calls are kept when a run
    has more calls than the estimate keeps: a hash other than the partition's."""
    digests = b"".join(
        blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest() for t in trace_ids
    )
    keys: I64 = (np.frombuffer(digests, dtype=">u8") >> np.uint64(1)).astype(np.int64)
    return keys


CallColumns = tuple[npt.NDArray[np.generic], ...]
"""One partition's calls: partition, callee's trace first key, callee's rank
in its trace, caller span, services, send, receive, start, end, exact,
answered, both hosts, whether the callee's lines time it, whether it is a
queue hop (:attr:`._correct.Calls.queued`), and the sample key
(the first key, rank and sample key are empty for a run of one partition)."""
_SAMPLE = -1


def partition_calls(s: int, table: Table, tree: Tree, first: I64, many: bool) -> CallColumns:
    """Partition ``s``'s calls; ``first`` is per trace where it first appears
    in the run. In a run of ``many`` partitions, each call carries what puts
    it in the run's order and its trace's sample key (one partition's calls
    are in that order already and all kept)."""
    calls = find_calls(table, tree, hops=True)
    n = len(calls.callee)
    start, receive = calls.start, calls.receive
    res = row_resolution(table)
    if res.any():
        # A time to the millisecond (or second) says "some time in it": the
        # callee may have started, and the caller heard back, that much later.
        span_res = span_resolution(table, len(table.spans), res)
        start = start + span_res[calls.callee]
        receive = receive + span_res[calls.caller]
    if many:
        span_trace = table.span_trace.astype(np.int64)
        # A span's rank among its trace's spans (spans are numbered by trace).
        within = np.arange(len(span_trace)) - np.searchsorted(span_trace, span_trace)
        callee_trace = span_trace[calls.callee]
        with_calls, at = np.unique(callee_trace, return_inverse=True)
        sample = sample_keys([table.traces[t] for t in with_calls.tolist()])[at.ravel()]
        trace_key, rank = first[callee_trace], within[calls.callee]
    else:
        trace_key = rank = sample = np.empty(0, dtype=np.int64)
    return (
        np.full(n, s, dtype=np.int32),
        trace_key,
        rank,
        calls.caller,
        tree.service[calls.caller].astype(np.int16),
        tree.service[calls.callee].astype(np.int16),
        calls.send,
        receive,
        start,
        calls.end,
        calls.exact,
        calls.answered,
        calls.caller_host,
        calls.callee_host,
        calls.lined,
        calls.queued,
        sample,
    )


@dataclass(slots=True)
class KeptCalls:
    """The run's kept calls, in the order one table of the whole run finds them."""

    partition: npt.NDArray[np.int32]
    caller: I64
    """The caller's span index in its partition."""
    svc_caller: npt.NDArray[np.int16]
    svc_callee: npt.NDArray[np.int16]
    send: F64
    receive: F64
    start: F64
    end: F64
    exact: npt.NDArray[np.bool_]
    answered: F64
    caller_host: I64
    callee_host: I64
    lined: npt.NDArray[np.bool_]
    """The callee's span is timed by its own first and last lines (no span record)."""
    queued: npt.NDArray[np.bool_]
    """A queue hop (producer to consumer), no call: :func:`queue_bounds`."""


class CallCollector:
    """Every partition's calls, at most about ``cap`` of them (``None``: all)."""

    def __init__(self, cap: int | None) -> None:
        self.cap = cap
        self.parts: list[CallColumns] = []
        self.below = np.iinfo(np.int64).max
        """Calls of traces with sample keys below this are kept."""

    @property
    def many(self) -> bool:
        """Whether partitions must give their calls' rank and sample keys."""
        return self.cap is not None

    def add(self, columns: CallColumns) -> None:
        self.parts.append(columns)
        if self.cap is None:
            return
        kept = sum(len(p[0]) for p in self.parts)
        if self.below < np.iinfo(np.int64).max or kept > 2 * self.cap:
            self._thin(self.cap)

    def _thin(self, cap: int) -> None:
        """Keep the calls of traces whose key is under the (lowered) limit: at
        most ``cap`` calls once more than twice that many were seen."""
        every = np.concatenate([p[_SAMPLE] for p in self.parts])
        every = every[every < self.below]
        if len(every) > cap:
            self.below = int(np.partition(every, cap)[cap])
        thinned = []
        for part in self.parts:
            keep = np.less(part[_SAMPLE], self.below)
            thinned.append(tuple(column[keep] for column in part))
        self.parts = thinned

    def calls(self) -> KeptCalls | None:
        """The kept calls in the order of one table of the whole run (traces
        by first appearance, spans by rank in their trace); ``None`` if no
        partition gave any."""
        parts, self.parts = self.parts, []
        if not parts:
            return None
        if len(parts) == 1:  # one partition: in that order already
            cols = [parts[0][0], *parts[0][3:-1]]
        else:
            every = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]) - 1)]
            perm = np.lexsort((every[2], every[1]))
            cols = [column[perm] for column in (every[0], *every[3:])]
            del every, perm
        del parts
        kept = KeptCalls(*cols)  # type: ignore[arg-type]
        return kept


def estimate_calls(
    c: KeptCalls,
    send: F64,
    receive: F64,
    services: list[str],
    hosts: dict[str, str] | None = None,
    queues: Queues | None = None,
) -> tuple[dict[str, ClockModel], DifferenceBounds | None]:
    """One estimate from the kept calls with these send and receive bounds."""
    return estimate_clocks_from_columns(
        c.svc_caller, c.svc_callee, send, receive, c.start, c.end, c.exact, services, services,
        c.answered, hosts, queues,
    )  # fmt: skip


def queue_bounds(c: KeptCalls, services: list[str]) -> tuple[KeptCalls, Queues]:
    """The calls without the queue hops, and the hops' bound per service pair."""
    queued = c.queued
    if not queued.any():
        return c, {}
    queues: Queues = {}
    producer, consumer = c.svc_caller[queued].tolist(), c.svc_callee[queued].tolist()
    gaps = (c.start[queued] - c.send[queued]).tolist()
    for p, q, gap in zip(producer, consumer, gaps, strict=True):
        add_hop(queues, services[p], services[q], gap)
    keep = ~queued
    return KeptCalls(*(getattr(c, f.name)[keep] for f in fields(KeptCalls))), queues


def service_hosts(c: KeptCalls, services: list[str]) -> dict[str, str]:
    """The host of each service whose span records all name the same one."""
    named: set[tuple[int, int]] = set()
    for svc, host in ((c.svc_caller, c.caller_host), (c.svc_callee, c.callee_host)):
        keep = host != 0
        named.update(zip(svc[keep].tolist(), host[keep].tolist(), strict=True))
    return one_host_services((services[s], f"{h:x}") for s, h in named)


def bracket_partition(
    table: Table, c: KeptCalls, mine: I64, before: F64, after: F64, send: F64, receive: F64
) -> None:
    """Tighten ``send`` and ``receive`` of calls ``mine`` (all of partition
    ``table``) with their callers' records at or before ``before`` and at or
    after ``after`` (per call of ``mine``, on the caller's clock)."""
    usable = bracketing_rows(table)
    records = CallerRecords(table.rows["span"][usable].astype(np.int64), table.rows["ts"][usable])
    was, caller = receive[mine], c.caller[mine]
    # A span record a text format wrote (no fields: structlog without its
    # ExtraAdder, a %-format) was written when the caller's span ended, after
    # the answer: never a record before the callee started, whatever the
    # first clocks say (an uncorrected callee seems to start after it).
    written = text_records(table, np.unique(caller))[0][caller]
    before = np.where(written <= before, np.nextafter(written, -np.inf), before)
    res = row_resolution(table)
    span_res = span_resolution(table, len(table.spans), res) if res.any() else None
    if span_res is not None:
        # A coarse caller line was written some time in its interval: it is
        # before the callee only if all of it is, as it is after the answer
        # only if all of it is. (Taking a line whose interval merely starts
        # in time on one side only would bound that side tighter than the
        # other, and move every offset by up to half the interval.)
        before = before - span_res[caller]
    records.tighten(mine, caller, before, after, send, receive)
    if span_res is not None:
        # A coarse caller line heard the answer some time in its interval.
        moved = mine[receive[mine] != was]
        receive[moved] += span_res[c.caller[moved]]


def _limits(
    c: KeptCalls, loose: I64, services: list[str], clocks: dict[str, ClockModel], margin: float
) -> tuple[F64, F64]:
    """Per loose call, on the caller's clock: the latest time a record of the
    caller counts as written before the callee started, and the earliest it
    counts as written after the callee answered (on corrected clocks, a
    ``margin`` away; NaN: none)."""
    a = c.svc_caller[loose].astype(np.int64)
    b = c.svc_callee[loose].astype(np.int64)
    start = c.start[loose]
    until = np.where(np.isnan(c.answered[loose]), c.end[loose], c.answered[loose])
    models = model_arrays(clocks, services)
    offset, drift, ref = models

    def on_caller(t: F64) -> F64:
        out: F64 = t + offset[a] + drift[a] * (t - ref[a])
        return out

    before = on_caller(correct_times(start, b, models) - margin)
    after = on_caller(correct_times(until, b, models) + margin)
    return before, after


def _overlapping(
    c: KeptCalls, loose: I64, services: list[str], clocks: dict[str, ClockModel]
) -> npt.NDArray[np.bool_]:
    """Per loose call, whether another call of the same caller span overlaps
    it (on corrected clocks): the caller's records around a parallel call are
    written for the other calls too, and bound one side much tighter than
    the other. Such calls keep the bounds of the caller's whole span, unless
    nine in ten calls between their two services or more are such calls (a
    gateway that always calls two services at once): the whole spans would
    then leave both clocks to the middle of milliseconds, where the records
    next to the calls bound them to a lean."""
    if len(loose) < 2:
        return np.zeros(len(loose), dtype=bool)
    models = model_arrays(clocks, services)
    b = c.svc_callee[loose].astype(np.int64)
    start = correct_times(c.start[loose], b, models)
    end = correct_times(np.where(np.isnan(c.end[loose]), c.start[loose], c.end[loose]), b, models)
    caller = c.caller[loose].astype(np.int64)
    group = c.partition[loose].astype(np.int64) * (int(caller.max(initial=0)) + 1) + caller
    crowded = overlapping(group, start, end)
    pair = c.svc_caller[loose].astype(np.int64) * len(services) + b
    calls = np.bincount(pair, minlength=len(services) ** 2)
    alone = np.bincount(pair[~crowded], minlength=len(services) ** 2)
    usual = 10 * alone[pair] < calls[pair]
    out: npt.NDArray[np.bool_] = crowded & ~usual
    return out


def overlapping(group: I64, start: F64, end: F64) -> npt.NDArray[np.bool_]:
    """Per interval ``[start, end]``, whether another of the same ``group`` overlaps it."""
    n = len(group)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    perm = np.lexsort((start, group))
    group, lo, hi = group[perm], start[perm], end[perm]
    same_next = group[1:] == group[:-1]
    crowded = np.zeros(n, dtype=bool)
    # Sorted by start within each group: an interval overlaps a later one
    # iff the next starts before it ends, an earlier one iff some earlier
    # one ends after it starts (the running latest end of its group).
    crowded[:-1] |= same_next & (lo[1:] < hi[:-1])
    first = np.concatenate(([True], ~same_next))
    seg = np.cumsum(first) - 1
    base = lo[first][seg]
    width = float(np.max(hi - base, initial=0.0)) + 1.0
    latest = np.maximum.accumulate(seg * width + (hi - base)) - seg * width
    crowded[1:] |= ~first[1:] & (latest[:-1] > lo[1:] - base[1:])
    out[perm] = crowded
    return out


Bracketing = Callable[[KeptCalls, I64, F64, F64], Iterable[tuple[I64, F64, F64]]]
"""One bracketing round run where the partitions are: given the kept calls,
the loose ones and, per loose call, ``before`` and ``after`` on the caller's
clock, yields per partition its calls and their tightened send and receive
(a process pool, a cluster: :mod:`.spark`)."""


def solve_clocks(
    collector: CallCollector,
    services: list[str],
    count: int,
    table: Callable[[int], Table] | None,
    bracket: Bracketing | None = None,
    initial: dict[str, ClockModel] | None = None,
    gaps: Sequence[dict[str, float]] = (),
) -> dict[str, ClockModel]:
    """The run's clock models from the collected calls; ``table(s)`` gives
    partition ``s``'s table for bracketing (read back or held), unless
    ``bracket`` runs the rounds elsewhere. The first bracketing round
    starts from ``initial`` clocks when given (a better estimate than the
    callers' whole spans give), else from the whole spans, with the services
    of ``gaps`` (groups of offsets from where the callees fit between their
    callers' records: :func:`._evidence.gap_offsets`) set by those."""
    c = collector.calls()
    if c is None:
        return {}
    c, queues = queue_bounds(c, services)
    hosts = service_hosts(c, services)
    clocks = estimate_calls(c, c.send, c.receive, services, hosts, queues)[0]
    loose = loose_calls(c.svc_caller, c.svc_callee, c.exact)
    if not len(loose):
        return clocks
    clocks = initial if initial is not None else _with_gaps(clocks, gaps)

    def here(c: KeptCalls, loose: I64, before: F64, after: F64) -> Iterator[tuple[I64, F64, F64]]:
        # Partitions tighten disjoint calls: one scratch copy serves them all.
        send, receive = c.send.copy(), c.receive.copy()
        for s in range(count):
            at = np.flatnonzero(c.partition[loose] == s) if count > 1 else np.arange(len(loose))
            if len(at):
                mine = loose[at]
                assert table is not None
                bracket_partition(table(s), c, mine, before[at], after[at], send, receive)
                yield mine, send[mine], receive[mine]

    # Bounds from the records next to each call share an asymmetry per kind,
    # which the service graph's loops may show (the whole spans above do not).
    lined = lined_services([services[i] for i in c.svc_callee.tolist()], c.lined.tolist())
    token = ASYMMETRY.set(lined)
    try:
        for margin in MARGINS:
            send, receive = c.send.copy(), c.receive.copy()
            before, after = _limits(c, loose, services, clocks, margin)
            crowded = _overlapping(c, loose, services, clocks)
            before[crowded] = np.nan
            after[crowded] = np.nan
            for mine, tight_send, tight_receive in (bracket or here)(c, loose, before, after):
                send[mine], receive[mine] = tight_send, tight_receive
            clocks = estimate_calls(c, send, receive, services, hosts, queues)[0]
    finally:
        ASYMMETRY.reset(token)
    return clocks


def _with_gaps(
    clocks: dict[str, ClockModel], gaps: Sequence[dict[str, float]]
) -> dict[str, ClockModel]:
    """``clocks`` with each group of ``gaps`` in place of its services'
    offsets, shifted to agree with them on average (the other services are
    tied to the group by those clocks)."""
    out = dict(clocks)
    for group in gaps:
        now = [clocks[s].offset_s if s in clocks else 0.0 for s in group]
        shift = sum(now) / len(now) - sum(group.values()) / len(group)
        for name, offset in group.items():
            out[name] = ClockModel(offset + shift)
    return out


def note_clocks(summary: Summary, used: list[str], clocks: dict[str, ClockModel]) -> None:
    """Each used service's offset, drift and the interval its calls allow in
    ``summary`` (0 without a model), and which services nothing bounds."""
    for name in used:
        model = clocks.get(name)
        summary.offsets_ms[name] = round(model.offset_s * 1e3, 3) if model else 0.0
        summary.drift_ppm[name] = round(model.drift * 1e6, 3) if model else 0.0
        if model is None:
            summary.offset_bounds_ms[name] = (-math.inf, math.inf)
        else:
            summary.offset_bounds_ms[name] = outward_ms(model.low_s, model.high_s)
        if (model is None or not model.bounded) and summary.offsets_ms[name] == 0.0:
            summary.uncorrected.append(name)
