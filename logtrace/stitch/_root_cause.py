"""Where a failing trace's error started.

A failure shows up on every span between where it started and the user: the
database call raises, its service answers 500, the caller's client span
records the 500, the gateway answers 502. The span where it started is the
deepest span with an error whose child spans all succeeded. Among several
such spans (two branches failed), the deepest wins, then the one whose first
error came first.

Its exception comes from its own lines (a traceback, structlog's
``exception``, ECS's ``error.*``); when they hold none, from the nearest
ancestor's line holding an exception of the same type (a server logs the
traceback of what its handler's span raised); else the span's error type or
status code and its first error line's message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .._schema import ERROR_TYPE, EXCEPTION_TYPE, HTTP_RESPONSE_STATUS_CODE
from ._model import ERROR, Rendering
from ._record_exception import Raised, last_frame
from ._record_text import record_parts

__all__ = ["Origins", "Story", "origins", "tell"]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(slots=True)
class Origins:
    """Per trace (of the written ones): its entry span and where its error started."""

    traces: I64
    """The traces, in output order."""
    entry: I64
    """Per trace: its entry span (its first span at depth 0), -1 if none."""
    failing: B
    """Per trace: some line of it has an error."""
    entry_failed: B
    """Per trace: its entry span has an error."""
    cause: I64
    """Per failing trace: the span where the error started (-1: the error is
    on a line without a span)."""
    cause_row: I64
    """Per failing trace: the first error line of that span (or of the trace)."""
    span_rows: Callable[[int], I64]
    """The written rows of a span, in output order."""


def origins(r: Rendering) -> Origins:
    """Entry spans and error origins of every written trace, in a few vectorised passes."""
    rows = r.table.rows
    idx = r.order.rows[: r.order.n_traced].astype(np.int64)
    trace = rows["trace"][idx].astype(np.int64)
    span = rows["span"][idx].astype(np.int64)
    error = (rows["flags"][idx] & ERROR) != 0
    n_spans = len(r.table.spans)
    tree = r.tree

    cut = np.flatnonzero(np.diff(trace)) + 1
    first = np.concatenate([[0], cut]).astype(np.int64) if len(idx) else cut.astype(np.int64)
    traces = trace[first]
    block = np.repeat(np.arange(len(first)), np.diff(np.append(first, len(idx))))

    # Entry: the first line (in narrative order) of a span at depth 0.
    entry = np.full(len(first), -1, dtype=np.int64)
    has = np.flatnonzero(span >= 0)
    top = has[tree.depth[span[has]] == 0]
    firsts = np.unique(block[top], return_index=True)
    entry[firsts[0]] = span[top[firsts[1]]]

    span_err = np.zeros(n_spans, dtype=bool)
    span_err[span[error & (span >= 0)]] = True
    failing = np.zeros(len(first), dtype=bool)
    failing[block[error]] = True
    entry_failed = np.zeros(len(first), dtype=bool)
    entered = entry >= 0
    entry_failed[entered] = span_err[entry[entered]]

    # Spans with an error none of whose children has one.
    erring = np.flatnonzero(span_err)
    parents = tree.parent[erring]
    child_err = np.zeros(n_spans, dtype=bool)
    child_err[parents[parents >= 0]] = True
    leaf = span_err & ~child_err

    # Per trace, the deepest such span, then the earliest first error.
    cand = has[error[has] & leaf[span[has]]]
    order = np.lexsort((cand, -tree.depth[span[cand]], block[cand]))
    cand = cand[order]
    cause = np.full(len(first), -1, dtype=np.int64)
    cause_row = np.full(len(first), -1, dtype=np.int64)
    picked = np.unique(block[cand], return_index=True)
    cause[picked[0]] = span[cand[picked[1]]]
    cause_row[picked[0]] = idx[cand[picked[1]]]
    # A failing trace without a failing span: its first error line.
    loose = failing & (cause_row < 0)
    if loose.any():
        err_at = np.flatnonzero(error)
        by_block = np.unique(block[err_at], return_index=True)
        at = np.full(len(first), -1, dtype=np.int64)
        at[by_block[0]] = idx[err_at[by_block[1]]]
        cause_row[loose] = at[loose]

    by_span = np.argsort(span, kind="stable")
    sorted_spans = span[by_span]

    def span_rows(s: int) -> I64:
        lo, hi = np.searchsorted(sorted_spans, [s, s + 1])
        return idx[by_span[lo:hi]]

    return Origins(traces, entry, failing, entry_failed, cause, cause_row, span_rows)


@dataclass(slots=True)
class Story:
    """What a failing trace's summary line says about where it started."""

    span: str
    exception: str
    message: str
    where: str
    status: str
    """The span's error type or status code (what it answered)."""


def tell(
    r: Rendering,
    found: Origins,
    k: int,
    line_of: Callable[[int], bytes],
    name_of: Callable[[int], str],
) -> Story:
    """The root cause of failing trace ``k`` of ``found``, read from its lines."""
    rows = r.table.rows
    span = int(found.cause[k])
    row = int(found.cause_row[k])
    if span < 0:
        _, message, fields, raised = record_parts(line_of(row), int(rows["flags"][row]))
        if raised is not None:
            return _story("", raised, message, "")
        return Story("", "", message, "", _status(fields))
    own = found.span_rows(span)
    status = ""
    first_message = ""
    for at in own.tolist():
        flags = int(rows["flags"][at])
        if not flags & ERROR:
            continue
        _, message, fields, raised = record_parts(line_of(at), flags)
        status = status or _status(fields)
        first_message = first_message or message
        if raised is not None and raised.type:
            return _story(name_of(span), raised, message, status)
    # The traceback may be on an ancestor's line: a server logs what its handler raised.
    wanted = status.rpartition(".")[2]
    parent = int(r.tree.parent[span])
    hops = 0
    while wanted and parent >= 0 and hops < 64:
        for at in found.span_rows(parent).tolist():
            flags = int(rows["flags"][at])
            if flags & ERROR:
                _, message, _, raised = record_parts(line_of(at), flags)
                if raised is not None and raised.type.rpartition(".")[2] == wanted:
                    return _story(name_of(span), raised, message, status)
        parent = int(r.tree.parent[parent])
        hops += 1
    return Story(name_of(span), status, first_message, "", status)


def _story(span: str, raised: Raised, message: str, status: str) -> Story:
    return Story(
        span,
        raised.type or status,
        raised.message or message,
        last_frame(raised.traceback),
        status,
    )


def _status(fields: dict[str, Any]) -> str:
    """A line's error: its exception type, error type or 5xx status."""
    for key in (EXCEPTION_TYPE, ERROR_TYPE):
        value = fields.get(key)
        if value is not None and value != "":
            return str(value)
    code = fields.get(HTTP_RESPONSE_STATUS_CODE)
    return str(code) if isinstance(code, int) and code >= 500 else ""
