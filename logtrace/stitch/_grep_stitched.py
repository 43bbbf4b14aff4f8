"""``logtrace grep`` on small inputs: the matches in the order the stitch writes them.

The stitch estimates clocks from every trace's calls and infers the calls
of spans whose logs name no parent; grep, from the matches alone, can do
neither as well. Where the inputs are small (:data:`._grep.SMALL_INPUT`
bytes in all), the stitch itself runs on them, for the traces the matches belong to,
and the matches come out in its order: exactly ``stitch --trace``'s. Matches
the stitch does not write (lines of no trace that hold the ID) follow, in
grep's own order.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

from ._grep_search import Match
from ._model import Options
from ._parse import parse_line
from ._pipeline import stitch
from ._source import Source

__all__ = ["stitched_order"]


def stitched_order(
    matches: Sequence[Match], sources: Sequence[Source]
) -> tuple[list[Match], list[Match]] | None:
    """``matches`` the stitch writes, in its order, and the others (in the
    order given); ``None`` if no match belongs to a trace. ``matches`` must
    carry their line numbers."""
    traces = sorted({t for m in matches if (t := parse_line(m.raw)[0]) is not None})
    if not traces:
        return None
    paths = [s.path for s in sources]
    out = io.BytesIO()
    stitch(paths, out, Options(format="jsonl", traces=tuple(traces)))
    at = {path: i for i, path in enumerate(paths)}
    position: dict[tuple[int, int], int] = {}
    for n, line in enumerate(out.getvalue().splitlines()):
        row = json.loads(line)
        where = at.get(row.get("file"))
        if where is not None and isinstance(row.get("line"), int):
            position.setdefault((where, row["line"]), n)
    known = [m for m in matches if (m.file, m.line) in position]
    known.sort(key=lambda m: position[(m.file, m.line)])
    rest = [m for m in matches if (m.file, m.line) not in position]
    return known, rest
