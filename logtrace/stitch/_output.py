"""What a run writes: the traces its filters select, the lines kept with
them, written in the chosen format. Shared by whole and sharded runs."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ._group import Table
from ._ids import norm_trace_id
from ._parse import ERROR
from ._render import Rendering, write_jsonl
from ._text import write_text

if TYPE_CHECKING:
    from ._pipeline import Options

__all__ = ["filtered", "keep_rows", "select_traces", "write_table"]


def write_table(r: Rendering, out: IO[bytes], options: Options, spool: str) -> int:
    """Write the traces ``options`` select (and the lines kept with them) in
    its format; returns how many traces were selected."""
    table, ordered = r.table, r.order
    selected = select_traces(table, r.corrected, ordered.trace_start, options)
    if selected is not None:
        kept = keep_rows(table, r.corrected, ordered.rows, selected, options)
        ordered.rows = ordered.rows[kept]
        ordered.n_traced = int(np.count_nonzero(table.rows["trace"][ordered.rows] >= 0))
    if options.format == "jsonl":
        write_jsonl(r, out, options.jobs, spool)
    elif options.format in ("html", "chrome"):
        from ._render_chrome import write_chrome
        from ._render_html import write_html

        (write_html if options.format == "html" else write_chrome)(r, out)
    else:
        write_text(r, out, color=options.color)
    out.flush()
    return len(table.traces) if selected is None else int(np.count_nonzero(selected))


def filtered(options: Options) -> bool:
    """Whether ``options`` select some traces, not all of them."""
    return bool(
        options.traces
        or options.errors_only
        or options.services
        or options.since is not None
        or options.until is not None
    )


def select_traces(
    table: Table,
    corrected: npt.NDArray[np.float64],
    start: npt.NDArray[np.float64],
    options: Options,
) -> npt.NDArray[np.bool_] | None:
    """Which traces to write, or ``None`` for all of them (and every other line)."""
    filtered = options.traces or options.errors_only or options.services
    if not filtered and options.since is None and options.until is None:
        return None
    n = len(table.traces)
    selected = np.ones(n, dtype=bool)
    rows = table.rows
    trace = rows["trace"]
    if options.traces:
        wanted = {norm_trace_id(t) or t for t in options.traces}
        mask = np.zeros(n, dtype=bool)
        for i, tid in enumerate(table.traces):
            if tid in wanted:
                mask[i] = True
        selected &= mask
    if options.errors_only:
        mask = np.zeros(n, dtype=bool)
        mask[trace[((rows["flags"] & ERROR) != 0) & (trace >= 0)]] = True
        selected &= mask
    if options.services:
        names = set(options.services)
        svc_mask = np.array([s in names for s in table.services] or [False], dtype=bool)
        mask = np.zeros(n, dtype=bool)
        mask[trace[svc_mask[rows["svc"]] & (trace >= 0)]] = True
        selected &= mask
    if options.since is not None:
        selected &= ~(start < options.since)
    if options.until is not None:
        selected &= ~(start > options.until)
    return selected


def keep_rows(
    table: Table,
    corrected: npt.NDArray[np.float64],
    ordered: npt.NDArray[np.int64],
    selected: npt.NDArray[np.bool_],
    options: Options,
) -> npt.NDArray[np.bool_]:
    trace = table.rows["trace"][ordered]
    keep = np.zeros(len(ordered), dtype=bool)
    traced = trace >= 0
    keep[traced] = selected[trace[traced]]
    if not (options.traces or options.errors_only or options.services):
        # Only a time window: lines without a trace are kept when inside it.
        ts = corrected[ordered]
        inside = ~traced
        if options.since is not None:
            inside &= ~(ts < options.since)
        if options.until is not None:
            inside &= ~(ts > options.until)
        keep |= inside
    return keep
