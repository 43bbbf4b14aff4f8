"""Which inferred calls are in doubt: a call hung under the wrong caller
would bound its clocks against the wrong caller's records, far too tight
on one side, so a call whose caller is in doubt bounds no clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from ._calls import overlapping
from ._containment_evidence import spans_resolution
from ._correct import span_shift
from ._link_rules import Callers, rule_arrays
from ._model import Table, Tree
from ._record_gaps import without_last_line
from ._span_extras import answered_ends
from ._span_pairs import span_pairs, unlinked_spans

__all__ = ["ambiguous"]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]
F64 = npt.NDArray[np.float64]


def ambiguous(
    table: Table,
    tree: Tree,
    linked: Tree,
    callers: Callers,
    corrected: F64,
    doubt: float,
) -> B:
    """Per span, whether its inferred parent is in doubt: a span of a linked
    caller service could contain it too (on ``corrected`` clocks off by up
    to ``doubt`` seconds) and is not an ancestor of the parent chosen in
    ``linked``. A span of a parallel branch (another call running at the
    same time) may contain it as well as the true caller does, and whichever
    is taken, a call hung under the wrong one would bound its clocks against
    the wrong caller's records, far too tight on one side: it bounds none."""
    out = np.zeros(len(tree.parent), dtype=bool)
    if linked.inferred is None or not linked.inferred.any():
        return out
    tolerance, trim, n = rule_arrays(table, callers)
    allowed = ~np.isnan(tolerance)
    tree = answered_ends(table, tree, unlinked_spans(table, tree))
    shift = span_shift(table, tree, corrected)
    res = spans_resolution(table, tree)
    start, end = tree.start - shift, tree.end - shift
    cut = without_last_line(table, tree).end - shift if trim.any() else end
    holders: list[I64] = []
    held: list[I64] = []
    for a, b in span_pairs(table, tree):
        link = tree.service[a].astype(np.int64) * n + tree.service[b]
        keep = allowed[link]
        end_b = np.where(trim[link], cut[b], end[b])
        inside = keep & (start[a] <= start[b] + res[b]) & (end[a] + res[a] >= end_b)
        holders.append(a[inside])
        held.append(b[inside])
        keep &= linked.inferred[b] & (linked.parent[b] >= 0)
        a, b, end_b = a[keep], b[keep], end_b[keep]
        p = linked.parent[b].astype(np.int64)
        could = (p != a) & (start[a] <= start[b] + res[b] + doubt)
        could &= end[a] + res[a] >= end_b - doubt
        a, b, p = a[could], b[could], p[could]
        above = np.zeros(len(a), dtype=bool)
        for live, up in _ancestors(linked.parent, p):
            above |= live & (up == a)
        out[b[~above]] = True
    if holders:
        out |= _busy_parent(
            tree, linked, allowed, n, np.concatenate(holders), np.concatenate(held), start, end
        )
    return out


def _busy_parent(
    tree: Tree, linked: Tree, allowed: B, n: int, holder: I64, held: I64, start: F64, end: F64
) -> B:
    """Per span, whether its inferred parent had another call under way while
    it ran and an ancestor could have made the call instead.

    A caller waits for a call. A parent with another span it could have
    called (of a linked service, inside it) overlapping this one in time was
    busy: it may be a parallel branch that merely contains this span while
    the ancestor made the call (and the span it was busy with may itself be
    hung under the wrong parent)."""
    out = np.zeros(len(tree.parent), dtype=bool)
    if not len(held):
        return out
    # Among each holder's spans it could have called, those another overlaps.
    beside = overlapping(holder, start[held], end[held])
    inferred = linked.inferred if linked.inferred is not None else np.zeros(len(out), dtype=bool)
    mine = beside & (linked.parent[held] == holder) & inferred[held]
    b, p = held[mine], holder[mine].astype(np.int64)
    callee = tree.service[b].astype(np.int64)
    alternative = np.zeros(len(b), dtype=bool)
    for live, up in _ancestors(linked.parent, p):
        svc = tree.service[up].astype(np.int64)
        alternative |= live & (svc >= 0) & allowed[np.maximum(svc, 0) * n + callee]
    out[b[alternative]] = True
    return out


_MAX_DEPTH = 64
"""Ancestors :func:`ambiguous` looks through."""


def _ancestors(parent: npt.NDArray[np.integer[Any]], spans: I64) -> Iterator[tuple[B, I64]]:
    """Level by level above ``spans``: which still have an ancestor there, and
    that ancestor (0 where none: mask with the first)."""
    up = parent[spans].astype(np.int64)
    for _ in range(_MAX_DEPTH):
        live = up >= 0
        if not live.any():
            return
        yield live, np.maximum(up, 0)
        up = np.where(live, parent[np.maximum(up, 0)], -1)
