"""The run's outcomes: traces by outcome and latency per entry operation, the
operations that fail most, and where each failing trace's error started.

A trace's entry operation is its root span's name (``GET /checkout``). A
trace is ``ok`` without an error line, ``failed`` when its entry span has an
error, ``recovered`` when only spans below it do (the entry answered, or its
lines do not say it failed). Its latency is its entry span's ``duration_ms``
(what the service measured), or the trace's extent when the entry span has
no span record.

Everything is plain data (:class:`._model.Outcomes`), computed per partition
(:func:`outcomes`) and merged by the driver (:func:`merge_outcomes`): a
trace is in one partition, so sums and unions are exact. Latencies are kept
exactly while an operation has at most :data:`EXACT` of them, then as a
log-scale histogram with buckets 1 % wide (percentiles to within 0.5 %);
which one depends only on the count, never on how the run was partitioned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import msgspec
import numpy as np

from .._schema import (
    DURATION_MS,
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    URL_PATH,
)
from ._group import RowLines
from ._model import JSON, Cause, Failure, Operation, Outcomes, Rendering
from ._root_cause import origins, tell
from ._timeline import timeline

__all__ = ["EXACT", "KEPT", "merge_outcomes", "outcomes", "overall", "percentile"]

EXACT = 10_000
"""Latencies kept exactly per operation; beyond, a histogram."""
KEPT = 100
"""Failing traces kept with their root cause (the earliest ones)."""
_RATIO = math.log(1.01)
_TINY = 1e-9

_decode = msgspec.json.decode
_NAME_KEYS = ("span.name", "name", "transaction.name", "span_name")


def outcomes(r: Rendering) -> Outcomes:
    """The outcomes of the traces ``r`` writes."""
    table = r.table
    found = origins(r)
    tl = timeline(r)
    line_of = RowLines(table)
    names: dict[int, str] = {}

    def record_of(row: int) -> dict[str, Any]:
        if not int(table.rows["flags"][row]) & JSON:
            return {}
        try:
            obj = _decode(line_of(row))
        except (msgspec.DecodeError, RecursionError):
            return {}
        return obj if isinstance(obj, dict) else {}

    def name_of(span: int) -> str:
        name = names.get(span)
        if name is None:
            name = names[span] = _span_name(span, record_of, tl.span_record, found.span_rows)
        return name

    result = Outcomes()
    try:
        starts = r.order.trace_start
        for k, (trace, entry) in enumerate(
            zip(found.traces.tolist(), found.entry.tolist(), strict=True)
        ):
            if entry >= 0:
                operation = name_of(entry) or f"{table.services[r.tree.service[entry]]} (unnamed)"
                record = int(tl.span_record[entry])
                lo, hi = (
                    (tl.span_start[entry], tl.span_end[entry])
                    if record >= 0
                    else (tl.trace_lo[trace], tl.trace_hi[trace])
                )
            else:
                operation = "(no span)"
                lo, hi = tl.trace_lo[trace], tl.trace_hi[trace]
            op = result.operations.get(operation)
            if op is None:
                op = result.operations[operation] = Operation()
            op.traces += 1
            took = float(hi - lo)
            if entry >= 0 and record >= 0:
                # What the service measured, when its span record says.
                measured = record_of(record).get(DURATION_MS)
                if isinstance(measured, (int, float)) and 0 <= measured < math.inf:
                    took = float(measured) / 1e3
            if not math.isnan(took):
                _add(op, [took])
            if not found.failing[k]:
                continue
            result.failing += 1
            entry_says = ""
            if found.entry_failed[k]:
                op.failed += 1
                entry_says = _entry_status(record_of, found.span_rows(entry)) or "error"
            else:
                op.recovered += 1
            story = tell(r, found, k, line_of, name_of)
            cause = int(found.cause[k])
            failure = Failure(
                trace=table.traces[trace],
                start=float(starts[trace]),
                operation=operation,
                entry=entry_says,
                service=table.services[
                    int(r.tree.service[cause])
                    if cause >= 0
                    else int(table.rows["svc"][found.cause_row[k]])
                ],
                span=story.span,
                depth=int(r.tree.depth[cause]) if cause >= 0 else 0,
                exception=story.exception,
                message=story.message,
                where=story.where,
            )
            _count_cause(result, failure, 1)
            result.failures.append(failure)
            if len(result.failures) > 2 * KEPT:
                result.failures = _earliest(result.failures)
    finally:
        line_of.close()
    result.failures = _earliest(result.failures)
    return result


def merge_outcomes(parts: Iterable[Outcomes]) -> Outcomes:
    """Partitions' outcomes as one (what the driver does with what each returned)."""
    result = Outcomes()
    for part in parts:
        result.failing += part.failing
        for name, op in part.operations.items():
            mine = result.operations.get(name)
            if mine is None:
                mine = result.operations[name] = Operation()
            mine.traces += op.traces
            mine.failed += op.failed
            mine.recovered += op.recovered
            _merge_latencies(mine, op)
        for cause in part.causes.values():
            _count_cause(result, cause.example, cause.traces)
        result.failures = _earliest([*result.failures, *part.failures])
    return result


def overall(result: Outcomes) -> Operation:
    """Every operation's traces as one (the summary's ``all`` row)."""
    total = Operation()
    for op in result.operations.values():
        total.traces += op.traces
        total.failed += op.failed
        total.recovered += op.recovered
        _merge_latencies(total, op)
    return total


def percentile(op: Operation, q: float) -> float:
    """The ``q`` quantile (0..1, nearest rank) of ``op``'s latencies; NaN if none."""
    if not op.timed:
        return math.nan
    rank = max(1, math.ceil(q * op.timed))
    if op.durations:
        return sorted(op.durations)[rank - 1]
    seen = 0
    for bucket in sorted(op.buckets):
        seen += op.buckets[bucket]
        if seen >= rank:
            middle = math.exp((bucket + 0.5) * _RATIO)
            return min(max(middle, op.low), op.high)
    return op.high


def _add(op: Operation, values: list[float]) -> None:
    op.timed += len(values)
    op.low = min(op.low, *values)
    op.high = max(op.high, *values)
    if op.buckets or len(op.durations) + len(values) > EXACT:
        _bucket(op, [*op.durations, *values])
        op.durations = []
    else:
        op.durations.extend(values)


def _bucket(op: Operation, values: list[float]) -> None:
    if not values:
        return
    keys = np.floor(np.log(np.maximum(np.asarray(values), _TINY)) / _RATIO).astype(np.int64)
    found, counts = np.unique(keys, return_counts=True)
    for key, count in zip(found.tolist(), counts.tolist(), strict=True):
        op.buckets[key] = op.buckets.get(key, 0) + count


def _merge_latencies(mine: Operation, op: Operation) -> None:
    if not op.timed:
        return
    if op.buckets or mine.buckets or mine.timed + op.timed > EXACT:
        _bucket(mine, [*mine.durations, *op.durations])
        mine.durations = []
        for key, count in op.buckets.items():
            mine.buckets[key] = mine.buckets.get(key, 0) + count
    else:
        mine.durations.extend(op.durations)
    mine.timed += op.timed
    mine.low = min(mine.low, op.low)
    mine.high = max(mine.high, op.high)


def _count_cause(result: Outcomes, failure: Failure, traces: int) -> None:
    key = (failure.service, failure.span, failure.exception)
    cause = result.causes.get(key)
    if cause is None:
        result.causes[key] = Cause(traces, failure)
        return
    cause.traces += traces
    if _when(failure) < _when(cause.example):
        cause.example = failure


def _when(failure: Failure) -> tuple[float, str]:
    return (math.inf if math.isnan(failure.start) else failure.start, failure.trace)


def _earliest(failures: list[Failure]) -> list[Failure]:
    return sorted(failures, key=_when)[:KEPT]


def _span_name(span: int, record_of: Any, span_record: Any, span_rows: Any) -> str:
    """A span's name: its span record's ``span.name`` (or the like), else
    ``METHOD route`` from its lines, else ``""``."""
    row = int(span_record[span])
    candidates = [row] if row >= 0 else []
    candidates += [int(at) for at in span_rows(span)[:8].tolist() if at != row]
    for at in candidates:
        obj = record_of(at)
        for key in _NAME_KEYS:
            value = obj.get(key)
            if isinstance(value, str) and value:
                return value
    for at in candidates:
        obj = record_of(at)
        method, route = obj.get(HTTP_REQUEST_METHOD), obj.get(HTTP_ROUTE) or obj.get(URL_PATH)
        if isinstance(method, str) and isinstance(route, str):
            return f"{method} {route}"
    return ""


def _entry_status(record_of: Any, rows: Any) -> str:
    """What a failed entry span answered: its status code or error type."""
    for at in rows.tolist()[::-1]:
        obj = record_of(int(at))
        code = obj.get(HTTP_RESPONSE_STATUS_CODE)
        if isinstance(code, int) and code >= 400:
            return str(code)
        for key in ("error.type", "exception.type"):
            if isinstance(obj.get(key), str) and obj[key]:
                return str(obj[key])
    return ""
