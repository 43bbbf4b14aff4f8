"""Select: which traces a run writes and which lines go with them.

The filters (``--trace``, ``--errors``, ``--service``, ``--since``,
``--until``) pick whole traces; a line without a trace is kept only when a
time window alone selects, and it is inside the window. Every partition
selects alone: a trace is in one partition. A one-page format (HTML,
Chrome) of a run of many partitions gathers the traces chosen in every
partition from the scans into one partition (:func:`gather_chosen`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._clocks import ClockModel
from ._correct import correct_rows
from ._id_forms import norm_trace_id
from ._memory import take_rows
from ._model import ERROR, FileScan, Options, Order, Table
from ._partition import Partitions, compact
from ._spool import drop_spilled, load_spilled

__all__ = [
    "filtered",
    "gather_chosen",
    "in_window",
    "keep_rows",
    "keeps_untraced",
    "narrow",
    "select_traces",
]


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


def gather_chosen(
    parts: Partitions,
    spilled: list[str | None],
    chosen: set[str],
    clocks: dict[str, ClockModel],
    options: Options,
) -> list[tuple[int, FileScan]]:
    """The rows of the ``chosen`` traces (and the lines without a trace that
    ``options`` keep), taken from the scans' spool files in the scans' order:
    the pieces of one partition of just them. Removes the spool files."""
    service_index = {name: k for k, name in enumerate(parts.services)}
    pieces: list[tuple[int, FileScan]] = []
    for i, path in enumerate(spilled):
        if path is None:
            continue
        mapped, traces, spans = load_spilled(path)
        rows = np.asarray(mapped)
        trace = rows["trace"]
        wanted = np.fromiter(map(chosen.__contains__, traces), dtype=bool, count=len(traces))
        keep = np.zeros(len(rows), dtype=bool)
        traced = trace >= 0
        keep[traced] = wanted[trace[traced]]
        if keeps_untraced(options):
            # As in one partition: lines without a trace are kept inside the window.
            stub = parts.scans[i]
            svc = np.array([service_index[v] for v in stub.services], dtype=np.int64)
            untraced = np.flatnonzero(~traced)
            ts = correct_rows(
                rows["ts"][untraced], svc[rows["svc"][untraced]], parts.services, clocks
            )
            keep[untraced[in_window(ts, options)]] = True
        if keep.any():
            kept = take_rows(rows, np.flatnonzero(keep))
            pieces.append((i, compact(i, parts.scans[i], kept, traces, spans)[1]))
        del mapped, rows
        drop_spilled(path)
    return pieces
