"""Order: traces by start, records of a trace in narrative order.

The rules are those of :mod:`._order_rules` (file order, precision,
causality), applied here to a whole partition at once with numpy: a trace's
records in one file form a group, in line order, and every step is a pass
over all groups together. Only groups whose keys need a running maximum or
minimum (a file's times going backwards, parallel calls interleaved in one
file) are walked one by one. Lines without a trace come last, in file and
line order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._clocks import ClockModel
from ._correct import correct_rows, correct_times, find_calls, model_arrays
from ._group import RowLines
from ._model import SPAN_RECORD, Order, Table, Tree
from ._order_brackets import CallerLines, CallLines, bracket_writers, call_brackets
from ._order_rules import answered_at
from ._record_gaps import last_line_but_one
from ._resolution import row_resolution
from ._segments import segmented
from ._span_extras import text_records
from ._tree import build_tree

__all__ = ["order", "shown_times"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]
F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

_INF = np.inf


def order(
    table: Table,
    corrected: F64,
    tree: Tree | None = None,
    clocks: dict[str, ClockModel] | None = None,
) -> Order:
    """Output order of all rows.

    ``corrected`` holds per-row corrected times (NaN for lines without
    one), ``clocks`` the models that corrected them (for the callers' send
    and answer times); ``tree`` is the table's span tree (built if not given).
    """
    rows = table.rows
    trace = rows["trace"]
    n_traces = len(table.traces)
    traced = np.flatnonzero(trace >= 0)
    # Rows are in (file, line) order already; a stable sort by (trace, file) keeps it.
    key = trace[traced].astype(np.int64) * max(len(table.sources), 1) + table.file[traced]
    perm = np.argsort(key, kind="stable")
    by_group = traced[perm]
    boundary = np.empty(len(by_group), dtype=bool)
    if len(by_group):
        group_key = key[perm]
        boundary[0] = True
        np.not_equal(group_key[1:], group_key[:-1], out=boundary[1:])
    ts = corrected[by_group]
    res_all = row_resolution(table)
    keys = _precise_keys(ts, res_all[by_group], boundary)
    if tree is None and len(by_group) and (rows["parent"][by_group] >= 0).any():
        tree = build_tree(table)
    if tree is not None and len(by_group) and (tree.parent >= 0).any():  # parents read or inferred
        lower, upper = _bounds(table, tree, clocks, (by_group, boundary), keys, ts, res_all)
        if lower is not None and upper is not None:
            keys = _bounded(keys, lower, upper, boundary)
    t_of = trace[by_group]
    _, start, end = shown_times(ts, res_all[by_group], t_of, n_traces)

    # Trace rank: by start time, traces without any time last, ties by first appearance.
    sort_start = np.where(np.isnan(start), np.inf, start)
    rank = np.empty(n_traces, dtype=np.int64)
    rank[np.lexsort((np.arange(n_traces), sort_start))] = np.arange(n_traces)
    final = by_group[np.lexsort((keys, rank[t_of]))]
    tail = np.flatnonzero(trace < 0)
    out = np.concatenate([final, tail]).astype(np.int64)
    return Order(out, len(final), start, end)


def shown_times(ts: F64, res: F64, trace: I32, n_traces: int) -> tuple[F64, F64, F64]:
    """The time each line is shown at, and per trace the first and last of them.

    ``ts`` holds lines' corrected times (NaN: none), ``res`` their resolution
    and ``trace`` their trace. A finely timed line is shown at its time; a
    line timed to the millisecond or the second at the instant of its
    interval nearest its trace's first finely timed line (the pure-Python
    rule: :func:`._order_rules.shown_at`), so that it stretches its trace no
    further than its interval requires. Traces are ranked by their first.
    """
    timed = ~np.isnan(ts)
    fine = timed & (res == 0)
    first_fine = np.full(n_traces, _INF)
    np.minimum.at(first_fine, trace[fine], ts[fine])
    at = ts.copy()
    coarse = timed & (res > 0)
    if coarse.any():
        c_ts = ts[coarse]
        anchor = first_fine[trace[coarse]]
        at[coarse] = np.clip(np.where(np.isinf(anchor), c_ts, anchor), c_ts, c_ts + res[coarse])
    start = np.full(n_traces, _INF)
    end = np.full(n_traces, -_INF)
    np.minimum.at(start, trace[timed], at[timed])
    np.maximum.at(end, trace[timed], at[timed])
    start[np.isinf(start)] = np.nan
    end[np.isinf(end)] = np.nan
    return at, start, end


def _precise_keys(ts: F64, res: F64, boundary: B) -> F64:
    """Rules 1 and 2 of :mod:`._order_rules`: keys from each group's times."""
    n = len(ts)
    lo = segmented(ts.copy(), boundary, np.fmax, False)
    base = lo.copy()
    coarse = (res > 0) & ~np.isnan(ts)
    if coarse.any():
        hi = segmented(np.where(np.isnan(ts), _INF, ts + res), boundary, np.fmin, True)
        with np.errstate(invalid="ignore"):
            eligible = coarse & (hi > lo)
        joined = np.zeros(n, dtype=bool)
        joined[1:] = (
            eligible[1:] & eligible[:-1] & ~boundary[1:] & (lo[1:] == lo[:-1]) & (hi[1:] == hi[:-1])
        )
        first = eligible & ~joined
        run = np.cumsum(first) - 1
        at = np.flatnonzero(eligible)
        run_start = np.flatnonzero(first)
        count = np.bincount(run[at], minlength=len(run_start))
        k = at - run_start[run[at]]
        size = count[run[at]]
        spread = lo[at] + (hi[at] - lo[at]) * (k + 1) / (size + 1)
        head = run_start[run[at]]
        after = lo[head] > ts[head]  # an earlier line of the file bounds the run
        before = hi[head] < ts[head] + res[head]  # a later one does
        base[at] = np.where(after & ~before, lo[at], np.where(before & ~after, hi[at], spread))
    # Lines before a group's first time take that group's first key.
    missing = np.isnan(base)
    if missing.any():
        rev = base[::-1]
        rb = np.empty(n, dtype=bool)
        rb[0] = True
        rb[1:] = boundary[::-1][:-1]
        idx = np.where(np.isnan(rev) & ~rb, 0, np.arange(n))
        np.maximum.accumulate(idx, out=idx)
        base = rev[idx][::-1].copy()
    keys = segmented(base, boundary, np.fmax, False)
    keys[np.isnan(keys)] = -_INF
    return keys


def _bounded(keys: F64, lower: F64, upper: F64, boundary: B) -> F64:
    """Rule 3 applied to the keys, each file's order kept."""
    lower = segmented(lower, boundary, np.fmax, False)
    upper = segmented(upper, boundary, np.fmin, True)
    out = np.maximum(np.minimum(keys, upper), lower)  # the send wins where bounds cross
    return segmented(out, boundary, np.fmax, False)


def _latest(table: Table, n_spans: int, res: F64) -> F64:
    """Per span: the latest its lines' times allow (a time to the second: its end)."""
    rows = table.rows
    span = rows["span"]
    ts = rows["ts"]
    timed = (span >= 0) & ~np.isnan(ts)
    last = np.full(n_spans, -_INF)
    np.maximum.at(last, span[timed], (ts + res)[timed])
    last[np.isinf(last)] = np.nan
    return last


def _bounds(
    table: Table,
    tree: Tree,
    clocks: dict[str, ClockModel] | None,
    groups: tuple[I64, B],
    keys: F64,
    ts: F64,
    res: F64,
) -> tuple[F64 | None, F64 | None]:
    """Per row of ``by_group`` (``groups``: the rows in group order, and
    where each group of a trace's file starts): the lowest and highest key
    its calls allow (a message's consumer: the lowest only, its producer's
    send)."""
    by_group, boundary = groups
    calls = find_calls(table, tree, hops=True)
    if not len(calls.callee):
        return None, None
    rows = table.rows
    n_spans = len(tree.parent)
    span = rows["span"]
    raw = rows["ts"]
    # Each span's last span record: its time is when the application returned.
    record = np.full(n_spans, -1, dtype=np.int64)
    rec_rows = np.flatnonzero((span >= 0) & ((rows["flags"] & SPAN_RECORD) != 0))
    np.maximum.at(record, span[rec_rows], rec_rows)
    has_record = record >= 0
    rec_end = np.where(has_record, raw[np.maximum(record, 0)], np.nan)
    answered = np.full(n_spans, np.nan)
    # A record a text format wrote names no times: as late, no more.
    written = text_records(table, calls.callee[~has_record[calls.callee]])[0]

    is_call = np.zeros(n_spans, dtype=bool)
    is_call[calls.callee] = True
    parent = tree.parent.astype(np.int64)
    depth = tree.depth.astype(np.int64)
    has_parent = parent >= 0
    linked = np.zeros(n_spans, dtype=bool)
    up = parent[has_parent]
    linked[has_parent] = tree.present[up] & (depth[up] == depth[has_parent] - 1)
    # The innermost call at or above each span, level by level.
    root = np.full(n_spans, -1, dtype=np.int64)
    by_depth = np.argsort(depth, kind="stable")
    levels = np.split(by_depth, np.flatnonzero(np.diff(depth[by_depth])) + 1)
    for level in levels:
        inherit = level[linked[level]]
        root[inherit] = root[parent[inherit]]
        own = level[is_call[level]]
        root[own] = own

    models = model_arrays(clocks or {}, table.services)
    p = calls.caller
    caller_svc = tree.service[p].astype(np.int64)
    # A caller's span record says when its span started and ended: the request
    # went out after the one and the answer came before the other (its latest
    # time). Its other lines say neither: a line may come before or after a
    # call, so without a record only its lines' times and rule 4 bound it.
    recorded = has_record[p]
    if tree.inferred is not None:  # a guessed caller's records bound nothing
        recorded = recorded & ~tree.inferred[calls.callee]
    send = correct_times(calls.send, caller_svc, models)
    receive = correct_times(_latest(table, n_spans, res)[p], caller_svc, models)
    lo_all = np.where(recorded, np.nextafter(send, _INF), -_INF)
    with np.errstate(invalid="ignore"):
        unknown = ~recorded | np.isnan(receive) | (receive <= send)
    hi_all = np.where(unknown, _INF, np.nextafter(receive, -_INF))
    # Rows in group order, each with its innermost call.
    g_span = span[by_group].astype(np.int64)
    row_root = np.where(g_span >= 0, root[np.maximum(g_span, 0)], -1)
    if (res[by_group] > 0).any():  # rule 4 is for coarse times only
        sent = np.full(n_spans, np.nan)  # a call's send, where its caller's record says it
        sent[calls.callee] = np.where(np.isinf(lo_all), np.nan, lo_all)
        floor = _written_after(table, clocks, by_group, g_span, row_root, ts, sent, boundary)
        given = (table, clocks, by_group, g_span, row_root, keys, ts, res, written, floor)
        caller_lines, call_lines = _bracket_lines(*given, answered)
        hung = np.where(linked, parent, -1)  # the parent the tree hangs each span under
        writer = bracket_writers(caller_lines, p, hung, tree.service.astype(np.int64))
        before, after = call_brackets(caller_lines, call_lines, n_spans, writer, calls.callee)
        # A callee that may work after it answered: where its lines up to
        # the answer are bracketed more tightly than all of them, and the
        # lines after it surely come after the caller's line that bounds
        # those, they are that work.
        answer_lines = last_line_but_one(table, n_spans, written)
        if (~np.isnan(answer_lines[calls.callee])).any():
            cut_before, cut_after = call_brackets(
                *_bracket_lines(*given, answer_lines), n_spans, writer, calls.callee
            )
            use = (cut_after < after) & (
                _first_after(by_group, row_root, ts, raw, answer_lines)[calls.callee] > cut_after
            )
            before[use], after[use] = cut_before[use], cut_after[use]
            answered[calls.callee[use]] = answer_lines[calls.callee[use]]
        lo_all = np.fmax(lo_all, np.nextafter(before, _INF))
        hi_all = np.fmin(hi_all, np.nextafter(after, -_INF))
    hi_all[calls.queued] = _INF
    low = np.full(n_spans, -_INF)
    high = np.full(n_spans, _INF)

    bounded_rows = np.flatnonzero(row_root >= 0)
    b_root = row_root[bounded_rows]
    b_raw = raw[by_group[bounded_rows]]
    with np.errstate(invalid="ignore"):
        after_return = has_record[b_root] & (b_raw >= rec_end[b_root])
        after_return |= b_raw >= written[b_root]
    b_depth = depth[b_root]
    lines = RowLines(table)
    try:
        callee = calls.callee
        c_depth = depth[callee]
        for d in np.unique(c_depth).tolist():
            at = np.flatnonzero(c_depth == d)
            x, px = callee[at], p[at]
            lo, hi = lo_all[at], hi_all[at]
            outer = np.where(linked[x], root[px], -1)
            nest = outer >= 0
            if nest.any():
                q, t = outer[nest], calls.send[at][nest]
                with np.errstate(invalid="ignore"):
                    free = (has_record[q] & (t >= rec_end[q])) | (t > answered[q])
                    free |= t >= written[q]
                # A message's consumer may run after the outer call's answer.
                free |= calls.queued[at][nest]
                o_lo, o_hi = low[q], np.where(free, _INF, high[q])
                lo[nest] = np.maximum(np.minimum(lo[nest], o_hi), o_lo)
                hi[nest] = np.maximum(np.minimum(hi[nest], o_hi), o_lo)
            low[x], high[x] = lo, hi
            # Calls whose lines would be moved before the answer: when was it complete?
            mine = np.flatnonzero(b_depth == d)
            if not len(mine):
                continue
            r = b_root[mine]
            with np.errstate(invalid="ignore"):
                moved = ~after_return[mine] & (keys[bounded_rows[mine]] > high[r])
            ask = np.unique(r[moved & has_record[r]])
            for s in ask.tolist():
                row = int(record[s])
                answered[s] = answered_at(lines(row), float(table.span_start[row]))
    finally:
        lines.close()

    lower = np.full(len(by_group), -_INF)
    upper = np.full(len(by_group), _INF)
    with np.errstate(invalid="ignore"):
        free = after_return | (b_raw > answered[b_root])
    lower[bounded_rows] = low[b_root]
    upper[bounded_rows] = np.where(free, _INF, high[b_root])
    return lower, upper


def _first_after(by_group: I64, row_root: I64, ts: F64, raw: F64, answer_lines: F64) -> F64:
    """Per span: the earliest corrected time of its call's lines after the
    (raw) time in ``answer_lines`` (NaN: none)."""
    first = np.full(len(answer_lines), _INF)
    mine = np.flatnonzero(row_root >= 0)
    with np.errstate(invalid="ignore"):
        later = mine[raw[by_group[mine]] > answer_lines[row_root[mine]]]
    later = later[~np.isnan(ts[later])]
    np.minimum.at(first, row_root[later], ts[later])
    first[np.isinf(first)] = np.nan
    return first


def _written_after(
    table: Table,
    clocks: dict[str, ClockModel] | None,
    by_group: I64,
    g_span: I64,
    row_root: I64,
    ts: F64,
    sent: F64,
    boundary: B,
) -> F64:
    """Per row in group order: the earliest it can have been written. Its
    time; the start of its span (the one its span records state, else its
    first time), the one its own span record states and the send of the
    call it is in (``sent``, per callee span), if later; and the earliest of
    an earlier line of its file and trace (``boundary`` starts each), if
    later."""
    rows = table.rows
    out = ts.copy()
    records = np.flatnonzero((rows["flags"][by_group] & SPAN_RECORD) != 0)
    stated = np.full(len(by_group), np.nan)
    if len(records):
        at = by_group[records]
        stated[records] = table.span_start[at]
        own_start = correct_rows(stated[records], rows["svc"][at], table.services, clocks)
        out[records] = np.fmax(out[records], own_start)
    spanned = np.flatnonzero(g_span >= 0)
    began = np.full(int(g_span.max(initial=-1)) + 1, np.nan)
    np.fmin.at(began, g_span[records], stated[records])  # where a record states it
    first = np.full(len(began), np.nan)
    np.fmin.at(first, g_span[spanned], rows["ts"][by_group[spanned]])
    began = np.where(np.isnan(began), first, began)
    at = by_group[spanned]
    began_at = correct_rows(began[g_span[spanned]], rows["svc"][at], table.services, clocks)
    out[spanned] = np.fmax(out[spanned], began_at)
    in_call = np.flatnonzero(row_root >= 0)
    out[in_call] = np.fmax(out[in_call], sent[row_root[in_call]])
    floor: F64 = segmented(out, boundary, np.fmax, False)
    return floor


def _bracket_lines(
    table: Table,
    clocks: dict[str, ClockModel] | None,
    by_group: I64,
    g_span: I64,
    row_root: I64,
    keys: F64,
    ts: F64,
    res: F64,
    written: F64,
    floor: F64,
    answered: F64,
) -> tuple[CallerLines, CallLines]:
    """What rule 4 reads: the spans' own lines (each no earlier than
    ``floor``: :func:`_written_after`), and every line of each call up to
    its answer (``answered``, where known). A span record a text format
    wrote (at ``written``) was written when the application returned, often
    after the caller heard back: it says nothing of when the call ended."""
    rows = table.rows
    timed = ~np.isnan(ts)
    g_res = res[by_group]
    record = (rows["flags"][by_group] & SPAN_RECORD) != 0
    own = (g_span >= 0) & ~record & timed
    caller_lines = CallerLines(g_span[own], ts[own], g_res[own], keys[own], floor[own])
    mine = np.flatnonzero((row_root >= 0) & timed)
    with np.errstate(invalid="ignore"):
        after = rows["ts"][by_group[mine]] > answered[row_root[mine]]
    mine = mine[~after]
    started_by = ts[mine] + g_res[mine]
    held = mine[record[mine]]
    if len(held):
        at = by_group[held]
        start = correct_rows(table.span_start[at], rows["svc"][at], table.services, clocks)
        started_by[record[mine]] = np.fmin(started_by[record[mine]], start)
    with np.errstate(invalid="ignore"):
        late = rows["ts"][by_group[mine]] >= written[row_root[mine]]
    ended_by = np.where(late, -_INF, ts[mine])
    call_lines = CallLines(row_root[mine], ended_by, started_by, g_res[mine] > 0)
    return caller_lines, call_lines
