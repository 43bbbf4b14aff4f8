"""Render for people: one block per trace, the span tree by indentation.

Log text is untrusted: control characters (escape sequences above all) are
shown escaped, never written to the terminal raw. Colour only when asked
(the command line asks when stdout is a terminal and ``NO_COLOR`` is unset).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

import numpy as np
import numpy.typing as npt

from ._decompress import LineReader
from ._marks import MARKS, span_marks
from ._model import ERROR, REASONS, Rendering
from ._record_exception import Raised
from ._record_text import SHORT_LEVELS, escape, record_parts
from ._timeline import relative_ms, shown_times

__all__ = ["write_text"]

F64 = npt.NDArray[np.float64]

_RESET, _RED, _DIM, _CYAN, _BOLD, _YELLOW = (
    "\x1b[0m",
    "\x1b[31m",
    "\x1b[2m",
    "\x1b[36m",
    "\x1b[1m",
    "\x1b[33m",
)


_CHUNK = 1 << 15
"""Rows whose columns are turned into Python values at a time."""

_MAX_EXCEPTION_LINES = 200
"""Lines of one exception's traceback shown under its line (the last ones)."""


def write_text(
    r: Rendering, out: IO[bytes], color: bool = False, untraced_heading: bool = True
) -> None:
    """Every selected trace as an indented block, then the unattributed lines
    (under a heading unless ``untraced_heading`` is false: a run written in
    parts has it once)."""
    table = r.table
    rows = table.rows
    ordered = r.order.rows
    readers: dict[int, LineReader] = {}

    def paint(code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    width = max((len(s) for s in table.services), default=8)
    services = [escape(s).ljust(width) for s in table.services]
    names = [escape(s.name) for s in table.sources]
    # The time column and each heading come from the same times (see ._timeline).
    shown, starts, ends = shown_times(r)
    trace_start = starts.tolist()
    marks = span_marks(r.tree)
    current = -2 if untraced_heading else -1
    marked: set[int] = set()
    lines: list[str] = []
    try:
        for lo in range(0, len(ordered), _CHUNK):
            idx = ordered[lo : lo + _CHUNK]
            sub = rows[idx]
            for off, length, trace, flags, svc, span, depth, ts, file, line, reason in zip(
                sub["off"].tolist(),
                sub["len"].tolist(),
                sub["trace"].tolist(),
                sub["flags"].tolist(),
                sub["svc"].tolist(),
                sub["span"].tolist(),
                r.tree.row_depth[idx].tolist(),
                shown[idx].tolist(),
                table.file[idx].tolist(),
                sub["line"].tolist(),
                sub["reason"].tolist(),
                strict=True,
            ):
                if trace != current:
                    current = trace
                    lines.append(_header(r, trace, starts, ends, paint))
                    if len(lines) > 2000:
                        out.write("".join(lines).encode())
                        lines.clear()
                reader = readers.get(file)
                if reader is None:
                    reader = readers[file] = LineReader(table.data_paths[file])
                level, message, fields, raised = record_parts(
                    reader.get(off, length), flags, as_written=trace < 0
                )
                if trace < 0:
                    where = f"{names[file]}:{line}"
                    lines.append(
                        f"  {paint(_DIM, where)} {paint(_YELLOW, REASONS[reason])}"
                        f"  {escape(message)}\n"
                    )
                    if raised is not None:  # the lines that continue it
                        lines.append(_exception_lines(raised, 0, paint))
                    continue
                rel = relative_ms(ts - trace_start[trace])
                tag = ""
                if span >= 0 and marks[span] and span not in marked:
                    marked.add(span)
                    tag = paint(_YELLOW, f" [{MARKS[marks[span]]}]")
                extra = " ".join(f"{k}={escape(str(v))}" for k, v in fields.items())
                text = escape(message) + (f"  {paint(_DIM, extra)}" if extra else "")
                upper = level.upper()
                lvl = escape(SHORT_LEVELS.get(upper, upper)[:5]).ljust(5)
                if flags & ERROR:
                    lvl, text = paint(_RED + _BOLD, lvl), paint(_RED, text)
                lines.append(
                    f"  {paint(_DIM, rel.rjust(11))} {'  ' * depth}"
                    f"{paint(_CYAN, services[svc])} {lvl} {text}{tag}\n"
                )
                if raised is not None:
                    lines.append(_exception_lines(raised, depth, paint))
        out.write("".join(lines).encode())
    finally:
        for reader in readers.values():
            reader.close()


def _exception_lines(raised: Raised, depth: int, paint: Callable[[str, str], str]) -> str:
    """The exception under its line, one level in from the line's service name."""
    text = raised.text().split("\n")
    if len(text) > _MAX_EXCEPTION_LINES:
        cut = len(text) - _MAX_EXCEPTION_LINES
        text = [f"... ({cut} lines before)", *text[cut:]]
    indent = " " * (16 + 2 * depth)
    return "".join(f"{indent}{paint(_DIM, ('| ' + escape(line)).rstrip())}\n" for line in text)


def _header(
    r: Rendering, trace: int, starts: F64, ends: F64, paint: Callable[[str, str], str]
) -> str:
    """A trace's ID, start and length: from its first to its last time shown."""
    if trace < 0:
        return "\n" + paint(_BOLD, "lines without a trace") + "\n"
    start, end = starts[trace], ends[trace]
    span = "" if np.isnan(start) or np.isnan(end) else f"  {(end - start) * 1e3:.3f} ms"
    when = ""
    if not np.isnan(start):
        when = "  " + str(np.datetime64(round(start * 1e6), "us")) + "Z"
    return "\n" + paint(_BOLD, f"trace {escape(r.table.traces[trace])}") + f"{when}{span}\n"
