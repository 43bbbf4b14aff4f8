"""How a span opens: the form of its first line, read back for the spans
that follow a span of their own service in their trace.

A service's later span in a trace (:func:`._span_pairs.after_own_service`)
is a second call, or the service's own work after it answered (a
background task traced as a span of its own). Timing alone cannot always
tell the two apart: a caller that works a while before its call leaves a
gap that the request fits at a wrong offset, with the work after the answer
in the call's gap, as densely as two calls in a row would; and a second
call, quicker to get in than the first, fits the first call's place more
snugly than its own (:func:`._evidence.without_stray_later`). What the
span writes can: a second call runs the request's path again and opens with
the line the first one opened with, numbers and IDs aside.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from ._group import RowLines
from ._model import Table

__all__ = ["line_form", "opens_alike"]

I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

_VARYING = re.compile(rb"\b(?:\w*\d[\w.]*|[0-9A-Fa-f]{8,})")
"""What differs between two lines of one logging call: numbers, times, IDs."""


def line_form(raw: bytes) -> bytes:
    """``raw`` with every word holding a digit (a number with its decimals,
    a time, an ID) and every run of 8 or more hexadecimal letters replaced
    by ``#``: what two lines written by one logging call share."""
    return _VARYING.sub(b"#", raw)


def opens_alike(table: Table, follows: I64) -> B:
    """Per span: whether it opens with a line of the form the span it
    ``follows`` (an index, -1 for none) opened with."""
    out = np.zeros(len(follows), dtype=bool)
    later = np.flatnonzero(follows >= 0)
    if not len(later):
        return out
    wanted = np.zeros(len(follows), dtype=bool)
    wanted[later] = True
    wanted[follows[later]] = True
    rows = table.rows
    span_col = rows["span"]
    usable = np.flatnonzero((span_col >= 0) & ~np.isnan(rows["ts"]))
    usable = usable[wanted[span_col[usable]]]
    span = span_col[usable].astype(np.int64)
    perm = np.lexsort((usable, rows["ts"][usable], span))
    usable, span = usable[perm], span[perm]
    first = np.flatnonzero(np.r_[True, span[1:] != span[:-1]])
    line = RowLines(table)
    try:
        form = {
            s: line_form(line(r))
            for s, r in zip(span[first].tolist(), usable[first].tolist(), strict=True)
        }
    finally:
        line.close()
    for s in later.tolist():
        mine = form.get(s)
        out[s] = mine is not None and mine == form.get(int(follows[s]))
    return out
