"""Render for trace viewers: Chrome trace-event JSON (Perfetto UI, chrome://tracing).

One process per service. Spans become complete events (``"ph": "X"``) on the
corrected clock; log lines become instant events (``"ph": "i"``) with their
fields in ``args``. Viewers draw the complete events of one thread as a
stack and need them strictly nested, which concurrent spans are not, so the
spans of each service within each trace are packed into as few threads
("lanes") as keep every thread properly nested. Times are whole
microseconds since the epoch: rounding is monotonic, so a child drawn on
the corrected clock stays inside its parent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import IO, Any

import msgspec
import numpy as np

from ._group import RowLines
from ._marks import span_mark
from ._model import ERROR, KIND_CLIENT, KIND_SERVER, SPAN_RECORD, Rendering
from ._record_text import record_fields
from ._timeline import Timeline, timeline

__all__ = ["write_chrome"]

_encode = msgspec.json.encode
_MAX_NAME = 200
_MAX_ARG = 10_000


def write_chrome(r: Rendering, out: IO[bytes]) -> None:
    """The selected traces as one trace-event JSON object (lines without a trace are left out)."""
    out.write(b'{"displayTimeUnit":"ms","traceEvents":[\n')
    first = True
    for event in _events(r):
        if not first:
            out.write(b",\n")
        first = False
        out.write(_encode(event))
    tl_offsets = _offsets(r)
    other = {"generator": "logtrace stitch", "clock_offsets_ms": tl_offsets}
    out.write(b'\n],"otherData":' + _encode(other) + b"}\n")


def _offsets(r: Rendering) -> dict[str, float]:
    rows = r.table.rows
    ordered = r.order.rows
    shift = rows["ts"][ordered] - r.corrected[ordered]
    svc = rows["svc"][ordered]
    out = {}
    for i in np.unique(svc).tolist():
        mine = shift[(svc == i) & ~np.isnan(shift)]
        if len(mine):
            out[r.table.services[i]] = round(float(np.median(mine)) * 1e3, 3)
    return out


def _us(seconds: float) -> int:
    return math.floor(seconds * 1e6 + 0.5)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _events(r: Rendering) -> Iterator[dict[str, Any]]:
    table = r.table
    rows = table.rows
    traced = r.order.rows[: r.order.n_traced]
    if not len(traced):
        return
    tl = timeline(r)
    svc_col = rows["svc"][traced]
    for i in np.unique(svc_col).tolist():
        name = table.services[i]
        yield _meta("process_name", i + 1, 0, {"name": name})
        yield _meta("process_sort_index", i + 1, 0, {"sort_index": i})
    trace_col = rows["trace"][traced]
    bounds = (np.flatnonzero(trace_col[1:] != trace_col[:-1]) + 1).tolist()
    line_of = RowLines(r.table)
    lanes = [0]  # the last thread id handed out
    flows = [0]  # the last flow (call arrow) id handed out
    try:
        for lo, hi in zip([0, *bounds], [*bounds, len(traced)], strict=True):
            yield from _trace(r, tl, traced[lo:hi].tolist(), line_of, lanes, flows)
    finally:
        line_of.close()


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    """A metadata event: names and sorts a process (service) or thread (trace lane)."""
    return {"name": name, "ph": "M", "ts": 0, "pid": pid, "tid": tid, "args": args}


def _trace(
    r: Rendering,
    tl: Timeline,
    block: list[int],
    line_of: RowLines,
    lanes: list[int],
    flows: list[int],
) -> Iterator[dict[str, Any]]:
    table = r.table
    rows = table.rows
    trace = int(rows["trace"][block[0]])
    trace_id = table.traces[trace]

    # The trace's spans with a known extent, in start order (longest first on ties).
    spans = sorted(
        (s for s in set(rows["span"][block].tolist()) if s >= 0 and _known(tl, s)),
        key=lambda s: (_us(float(tl.span_start[s])), -_us(float(tl.span_end[s])), table.spans[s]),
    )
    # Pack each service's spans into lanes. A lane is a stack of open spans
    # (end, span); a span goes on top of its own parent or on an empty lane,
    # so what a viewer draws nested is nested in the span tree too.
    stacks: dict[int, list[list[tuple[int, int]]]] = {}
    lane_ids: dict[tuple[int, int], int] = {}
    span_lane: dict[int, tuple[int, int]] = {}

    def lane_tid(svc: int, lane: int) -> tuple[int, bool]:
        key = (svc, lane)
        tid = lane_ids.get(key)
        if tid is None:
            lanes[0] += 1
            tid = lane_ids[key] = lanes[0]
            return tid, True
        return tid, False

    def thread_meta(svc: int, lane: int, tid: int) -> Iterator[dict[str, Any]]:
        label = f"trace {trace_id[:16]}" + (f" ({lane + 1})" if lane else "")
        yield _meta("thread_name", svc + 1, tid, {"name": label})
        yield _meta("thread_sort_index", svc + 1, tid, {"sort_index": tid})

    for span in spans:
        svc = int(r.tree.service[span])
        begin, end = _us(tl.span_start[span]), _us(tl.span_end[span])
        own = stacks.setdefault(svc, [])
        parent = int(r.tree.parent[span])
        for lane, stack in enumerate([*own, []]):
            while stack and stack[-1][0] <= begin:
                stack.pop()
            if not stack or (stack[-1][1] == parent and end <= stack[-1][0]):
                if lane == len(own):
                    own.append(stack)
                stack.append((end, span))
                span_lane[span] = (svc, lane)
                break
        svc, lane = span_lane[span]
        tid, new = lane_tid(svc, lane)
        if new:
            yield from thread_meta(svc, lane, tid)
        record = int(tl.span_record[span])
        args: dict[str, Any] = {"trace_id": trace_id, "span_id": table.spans[span]}
        if parent >= 0:
            args["parent_span_id"] = table.spans[parent]
        mark = span_mark(r.tree, span)
        if mark:
            args["mark"] = mark
        name = f"span {table.spans[span]}"
        category = "span"
        error = False
        if record >= 0:
            flags = int(rows["flags"][record])
            _, message, fields = record_fields(line_of(record), flags)
            name = _clip(message, _MAX_NAME) or name
            args.update((k, _arg(v)) for k, v in fields.items())
            category = (
                "server" if flags & KIND_SERVER else "client" if flags & KIND_CLIENT else "internal"
            )
            error = bool(flags & ERROR)
        event: dict[str, Any] = {
            "name": name,
            "cat": category,
            "ph": "X",
            "ts": begin,
            "dur": end - begin,
            "pid": svc + 1,
            "tid": tid,
            "args": args,
        }
        if error:
            args["error"] = True
            event["cname"] = "terrible"
        yield event

    # A call from one service to another: a flow arrow from the caller's
    # span to the callee's (v1 flow events bind to the slice around them).
    for span in spans:
        parent = int(r.tree.parent[span])
        if parent not in span_lane or span_lane[parent][0] == span_lane[span][0]:
            continue
        begin = _us(float(tl.span_start[span]))
        p_begin, p_end = _us(float(tl.span_start[parent])), _us(float(tl.span_end[parent]))
        p_svc, p_lane = span_lane[parent]
        c_svc, c_lane = span_lane[span]
        flows[0] += 1  # numbered in output order: the same whatever else the input holds
        common = {"name": "call", "cat": "call", "id": flows[0], "args": {"trace_id": trace_id}}
        yield {
            **common,
            "ph": "s",
            "ts": min(max(begin, p_begin), p_end),
            "pid": p_svc + 1,
            "tid": lane_ids[p_svc, p_lane],
        }
        yield {
            **common,
            "ph": "f",
            "bp": "e",
            "ts": begin,
            "pid": c_svc + 1,
            "tid": lane_ids[c_svc, c_lane],
        }

    for row in block:
        flags = int(rows["flags"][row])
        ts = float(tl.shown[row])  # inside its span's bar, also when timed to the ms or s
        if ts != ts or (flags & SPAN_RECORD and int(rows["span"][row]) >= 0):
            continue  # no time to place it at, or drawn as its span
        span = int(rows["span"][row])
        svc = int(rows["svc"][row])
        where = span_lane.get(span)
        if where is None or where[0] != svc:
            where = (svc, 0)
        tid, new = lane_tid(*where)
        if new:
            yield from thread_meta(where[0], where[1], tid)
        level, message, fields = record_fields(line_of(row), flags)
        args = {"trace_id": trace_id}
        if span >= 0:
            args["span_id"] = table.spans[span]
        if level:
            args["level"] = _clip(level, _MAX_NAME)
        args["message"] = _clip(message, _MAX_ARG)
        args.update((k, _arg(v)) for k, v in fields.items())
        args["file"] = table.sources[int(table.file[row])].name
        args["line"] = int(rows["line"][row])
        event = {
            "name": _clip(message, _MAX_NAME) or "log",
            "cat": "log",
            "ph": "i",
            "s": "t",
            "ts": _us(ts),
            "pid": svc + 1,
            "tid": tid,
            "args": args,
        }
        if flags & ERROR:
            args["error"] = True
            event["cname"] = "terrible"
        yield event


def _known(tl: Timeline, span: int) -> bool:
    return not (math.isnan(tl.span_start[span]) or math.isnan(tl.span_end[span]))


def _arg(value: Any) -> Any:
    if isinstance(value, str):
        return _clip(value, _MAX_ARG)
    if isinstance(value, bool | int | float) or value is None:
        return value
    return _clip(str(value), _MAX_ARG)
