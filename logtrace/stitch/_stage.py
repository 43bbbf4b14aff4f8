"""The per-partition stage: group, span tree, correct, order, select.

A partition is read back (:func:`open_partition`: grouped into a table, its
span tree built), then, once the run's clocks are known, its times are
corrected, its rows ordered and the traces the filters want selected
(:func:`stage`). In and out is plain data (:class:`Partitions`, dataclasses
of numpy arrays, a dict of clock models), so that any executor can run a
partition: this process, a process pool, a cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import compress

import numpy as np
import numpy.typing as npt

from ._clocks import ClockModel
from ._correct import apply_clocks
from ._group import group
from ._inferred_calls import TOLERANCE, infer_parents
from ._link_rules import Rule
from ._model import FileScan, Options, Rendering, Table, Tree, clock_note, outward_ms
from ._order import order
from ._partition import Partitions, load_pieces
from ._select import narrow, select_traces
from ._tree import build_tree

__all__ = ["Grouped", "Staged", "choose", "open_partition", "open_table", "stage", "table_of"]

I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class Grouped:
    """A partition's table and span tree."""

    table: Table
    tree: Tree
    first: I64
    """Per trace: where it appears first in the run (:func:`._partition.first_keys`)."""


@dataclass(slots=True)
class Staged:
    """A partition ready to write: what the renderers read, and its counts."""

    rendering: Rendering
    first: I64
    traces: int
    selected: int
    """Traces the filters selected (all of them without a filter)."""


def table_of(parts: Partitions, pieces: Iterable[tuple[int, FileScan]]) -> Table:
    """One table of ``pieces`` (scan index, rows of that scan). Every other
    scan takes part without rows, so that services and line numbers are the run's."""
    scans = list(parts.scans)
    for index, piece in pieces:
        scans[index] = piece
    return group(parts.sources, scans)


def open_table(parts: Partitions, s: int) -> Table:
    """Partition ``s``'s rows as a table of their own (read back from its file)."""
    return table_of(parts, ((index, piece) for index, piece, _ in load_pieces(parts.paths[s])))


def open_partition(parts: Partitions, s: int, memory: int) -> Grouped:
    """Partition ``s`` as a table with its span tree and where each of its
    traces first appears.

    A run of one partition is grouped from the scans in memory (which then
    belong to the table: ``parts`` lets go of them), its columns in spill
    files only if they would not fit ``memory``.
    """
    if parts.count == 1:
        scans, parts.scans = parts.scans, []
        table = group(parts.sources, scans, parts.spool, memory)
        del scans
        first = np.arange(len(table.traces), dtype=np.int64)
        return Grouped(table, build_tree(table), first)
    pieces = list(load_pieces(parts.paths[s]))
    table = table_of(parts, ((index, piece) for index, piece, _ in pieces))
    # group() numbers traces by first appearance over the scans in order, so
    # the earliest key seen for a trace is where it first appears in the run.
    number = {t: k for k, t in enumerate(table.traces)}
    number.update((short, number[long]) for short, long in table.joined.items())
    first = np.full(len(table.traces), np.iinfo(np.int64).max, dtype=np.int64)
    for _, piece, keys in pieces:
        at = np.fromiter(map(number.__getitem__, piece.traces), np.int64, len(piece.traces))
        np.minimum.at(first, at, keys)
    del number, pieces
    return Grouped(table, build_tree(table), first)


def stage(grouped: Grouped, clocks: dict[str, ClockModel], options: Options) -> Staged:
    """Correct, order and select a partition."""
    table = grouped.table
    corrected = apply_clocks(table, clocks)
    tree = grouped.tree
    # Spans whose logs name no parent: parents from containment (internal
    # spans inside their own service's, whatever the links).
    callers = {k: Rule(TOLERANCE, k in options.trimmed) for k in options.callers}
    tree = infer_parents(table, tree, callers, corrected)
    ordered = order(table, corrected, tree, clocks)
    selected = narrow(table, corrected, ordered, options)
    traces = len(table.traces)
    chosen = traces if selected is None else int(np.count_nonzero(selected))
    notes = {
        name: clock_note(round(m.offset_s * 1e3, 3), *outward_ms(m.low_s, m.high_s))
        for name, m in clocks.items()
    }
    rendering = Rendering(table, tree, corrected, ordered, notes)
    return Staged(rendering, grouped.first, traces, chosen)


def choose(table: Table, clocks: dict[str, ClockModel], options: Options) -> list[str]:
    """The IDs of the traces of ``table`` the filters select (a filtered run
    only): what a one-page format gathers from every partition."""
    corrected = apply_clocks(table, clocks)
    ordered = order(table, corrected, None, clocks)
    selected = select_traces(table, corrected, ordered.trace_start, options)
    assert selected is not None  # only filtered runs choose
    return list(compress(table.traces, selected.tolist()))
