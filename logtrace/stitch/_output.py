"""What a run writes: the traces its filters select, the lines kept with
them, written in the chosen format. Shared by whole and sharded runs."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ._group import Table
from ._id_forms import norm_trace_id
from ._order import Order
from ._parse import ERROR
from ._render import Rendering
from ._render_jsonl import write_jsonl
from ._render_text import write_text

if TYPE_CHECKING:
    from ._pipeline import Options

__all__ = [
    "filtered",
    "in_window",
    "keep_rows",
    "keeps_untraced",
    "narrow",
    "select_traces",
    "write_table",
]


def write_table(r: Rendering, out: IO[bytes], options: Options, spool: str) -> int:
    """Write the traces ``options`` select (and the lines kept with them) in
    its format; returns how many traces were selected."""
    selected = narrow(r.table, r.corrected, r.order, options)
    if options.format == "jsonl":
        write_jsonl(r, out, options.jobs, spool)
    elif options.format in ("html", "chrome"):
        from ._render_chrome import write_chrome
        from ._render_html import write_html

        (write_html if options.format == "html" else write_chrome)(r, out)
    else:
        write_text(r, out, color=options.color)
    out.flush()
    return len(r.table.traces) if selected is None else int(np.count_nonzero(selected))


def narrow(
    table: Table, corrected: npt.NDArray[np.float64], ordered: Order, options: Options
) -> npt.NDArray[np.bool_] | None:
    """Keep in ``ordered`` only the lines ``options`` select; returns the
    selected traces, or ``None`` for all of them."""
    selected = select_traces(table, corrected, ordered.trace_start, options)
    if selected is not None:
        ordered.rows = ordered.rows[keep_rows(table, corrected, ordered.rows, selected, options)]
        ordered.n_traced = int(np.count_nonzero(table.rows["trace"][ordered.rows] >= 0))
    return selected


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
    if not filtered(options):
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
    return selected & in_window(start, options)


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
    if keeps_untraced(options):
        keep |= ~traced & in_window(corrected[ordered], options)
    return keep


def keeps_untraced(options: Options) -> bool:
    """Whether lines without a trace can be kept: only a time window selects,
    and they are kept when inside it."""
    return not (options.traces or options.errors_only or options.services)


def in_window(times: npt.NDArray[np.float64], options: Options) -> npt.NDArray[np.bool_]:
    """Which ``times`` are inside ``--since``/``--until``; a missing one (NaN) is."""
    inside = np.ones(len(times), dtype=bool)
    if options.since is not None:
        inside &= ~(times < options.since)
    if options.until is not None:
        inside &= ~(times > options.until)
    return inside
