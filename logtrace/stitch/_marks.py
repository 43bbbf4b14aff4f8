"""Marks on spans whose place in the tree the logs do not state outright.

Every output format marks such a span with the same word:

- ``orphan``: the span names a parent span that is not in the logs (a
  caller that logged nothing, such as an OpenTelemetry client span, a
  service whose file is missing, a rotated-away file). It is shown under its
  trace's root, or at the top when the trace has none.
- ``inferred``: the logs name no parent for the span, or one that logged
  nothing; its parent was inferred (from containment in time over many
  traces), not read.

Text and HTML put ``[orphan]`` after the span's first line, JSON lines a
``"mark"`` on each line of the span, the Chrome trace a ``"mark"`` in the
span's ``args``. The run's summary explains each mark used, once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._model import Rendering, Tree

__all__ = [
    "MARKS",
    "MARK_MEANINGS",
    "count_marks",
    "mark_explanations",
    "span_mark",
    "span_marks",
]

MARKS = ("", "orphan", "inferred")
"""Mark names by code: 0 none, 1 orphan, 2 inferred."""

MARK_MEANINGS = {
    "orphan": "the span's parent span is not in the logs (a caller that logged nothing, "
    "such as an OpenTelemetry client span, or a missing file); "
    "it is shown under its trace's root",
    "inferred": "the logs name no parent for the span, or one that logged nothing; "
    "its parent was inferred from the timing of many traces",
}


def span_marks(tree: Tree) -> npt.NDArray[np.uint8]:
    """Per span: its mark's code in :data:`MARKS`."""
    marks = np.zeros(len(tree.orphan), dtype=np.uint8)
    marks[tree.orphan] = 1
    inferred = getattr(tree, "inferred", None)  # present once links can be inferred
    if inferred is not None:
        marks[np.asarray(inferred, dtype=bool) & ~tree.orphan] = 2
    return marks


def span_mark(tree: Tree, span: int) -> str:
    """The mark of one span (``""`` for none)."""
    if tree.orphan[span]:
        return MARKS[1]
    inferred = getattr(tree, "inferred", None)
    return MARKS[2] if inferred is not None and inferred[span] else ""


def count_marks(r: Rendering) -> dict[str, int]:
    """How many spans of the written traces carry each mark."""
    trace = r.table.rows["trace"][r.order.rows[: r.order.n_traced]]
    written = np.zeros(len(r.table.traces), dtype=bool)
    written[trace[trace >= 0]] = True
    mine = written[r.table.span_trace] & r.tree.present
    codes = np.bincount(span_marks(r.tree)[mine], minlength=len(MARKS))
    return {MARKS[k]: int(codes[k]) for k in range(1, len(MARKS)) if codes[k]}


def mark_explanations(counts: dict[str, int]) -> list[str]:
    """One sentence per mark used: ``[orphan] (3 spans): ...``."""
    return [
        f"[{name}] ({n} span{'s' if n != 1 else ''}): {MARK_MEANINGS[name]}"
        for name, n in counts.items()
        if n
    ]
