"""How the calls of each linked pair of services are inferred.

:mod:`._containment` decides which service calls which (its links); each
link's :class:`Rule` says how its calls are then inferred, per partition
(:mod:`._inferred_calls`, :mod:`._call_doubt`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ._model import Table, Tree
from ._record_gaps import without_last_line

__all__ = ["Callers", "Rule", "rule_arrays", "trimmed_callees"]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]


class Rule(NamedTuple):
    """How a linked (caller, callee) pair's calls are inferred."""

    tolerance: float
    """How far (seconds) a callee may stick out of its caller's span
    (negative: how far inside it must lie)."""
    trimmed: bool = False
    """The callee works after it answered: its span without its last line
    must fit (see :func:`._record_gaps.without_last_line`)."""


Callers = Mapping[tuple[str, str], Rule]
"""Per linked (caller, callee) services: how its calls are inferred."""


def rule_arrays(table: Table, callers: Callers) -> tuple[F64, B, int]:
    """Per (caller, callee) service pair, at caller index times ``n`` plus
    callee index: the tolerance of its link's rule (NaN: not linked), and
    whether its callees are trimmed; and ``n``."""
    index = {name: i for i, name in enumerate(table.services)}
    n = len(table.services) + 1
    tolerance = np.full(n * n, np.nan)
    trim = np.zeros(n * n, dtype=bool)
    for (caller, callee), rule in callers.items():
        i, j = index.get(caller), index.get(callee)
        if i is not None and j is not None:
            tolerance[i * n + j], trim[i * n + j] = rule.tolerance, rule.trimmed
    return tolerance, trim, n


def trimmed_callees(table: Table, linked: Tree, callers: Callers) -> Tree:
    """``linked`` with the callees of the links whose callees work after
    they answered ending at their last line but one: their last line
    bounds nothing of the call."""
    _, trim, n = rule_arrays(table, callers)
    if not trim.any() or linked.inferred is None:
        return linked
    b = np.flatnonzero(linked.inferred & (linked.parent >= 0))
    link = linked.service[linked.parent[b]].astype(np.int64) * n + linked.service[b]
    b = b[trim[link]]
    if not len(b):
        return linked
    end = linked.end.copy()
    end[b] = without_last_line(table, linked).end[b]
    return replace(linked, end=end)
