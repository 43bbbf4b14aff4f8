"""Render for people: one block per trace, the span tree by indentation.

Log text is untrusted: control characters (escape sequences above all) are
shown escaped, never written to the terminal raw. Colour only when asked
(the command line asks when stdout is a terminal and ``NO_COLOR`` is unset).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

import msgspec
import numpy as np

from ._model import Rendering
from ._parse import ERROR, JSON, LOGFMT, REASONS, parse_logfmt
from ._read import LineReader

__all__ = ["escape", "record_fields", "write_text"]

_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(32), 127, *range(0x80, 0xA0)]}
_ESCAPES.update({9: "\\t", 10: "\\n", 13: "\\r", 0x1B: "\\e"})
# Characters that reorder or hide the text around them on a terminal: bidirectional
# overrides and isolates, zero-width marks, line and paragraph separators, BOM.
_ESCAPES.update(
    {
        c: f"\\u{c:04x}"
        for c in (
            0x200B,
            0x200E,
            0x200F,
            *range(0x202A, 0x202F),
            *range(0x2066, 0x206A),
            0x2028,
            0x2029,
            0xFEFF,
        )
    }
)
_MESSAGE_KEYS = ("message", "msg", "event", "body")
_LEVEL_KEYS = ("level", "levelname", "severity", "severityText", "log.level")
_KEY_FIELDS = (
    "http.request.method",
    "http.route",
    "url.path",
    "url.full",
    "http.response.status_code",
    "duration_ms",
    "error.type",
    "exception.type",
    "request_id",
)
_decode = msgspec.json.decode
_SHORT_LEVELS = {"WARNING": "WARN", "CRITICAL": "CRIT"}

_RESET, _RED, _DIM, _CYAN, _BOLD, _YELLOW = (
    "\x1b[0m",
    "\x1b[31m",
    "\x1b[2m",
    "\x1b[36m",
    "\x1b[1m",
    "\x1b[33m",
)


def escape(text: str) -> str:
    """``text`` with every control and text-reordering character written as an escape."""
    if text.isascii() and text.isprintable():
        return text  # the common case, without building a copy
    return text.translate(_ESCAPES)


def record_fields(raw: bytes, flags: int) -> tuple[str, str, dict[str, Any]]:
    """Level, message and key fields of one line, for display."""
    obj: Any = None
    if flags & JSON:
        try:
            obj = _decode(raw)
        except (msgspec.DecodeError, RecursionError):
            obj = None
    elif flags & LOGFMT:
        obj = parse_logfmt(raw.decode(errors="replace"))
    if not isinstance(obj, dict):
        return "", raw.decode(errors="replace"), {}
    message = _first(obj, _MESSAGE_KEYS)
    level = _first(obj, _LEVEL_KEYS)
    if isinstance(level, dict):
        level = ""
    fields = {k: obj[k] for k in _KEY_FIELDS if k in obj}
    return str(level), message if isinstance(message, str) else str(message), fields


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return ""


_CHUNK = 1 << 15
"""Rows whose columns are turned into Python values at a time."""


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
    trace_start = r.order.trace_start.tolist()
    orphan = r.tree.orphan
    current = -2 if untraced_heading else -1
    seen_orphans: set[int] = set()
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
                r.corrected[idx].tolist(),
                table.file[idx].tolist(),
                sub["line"].tolist(),
                sub["reason"].tolist(),
                strict=True,
            ):
                if trace != current:
                    current = trace
                    lines.append(_header(r, trace, paint))
                    if len(lines) > 2000:
                        out.write("".join(lines).encode())
                        lines.clear()
                reader = readers.get(file)
                if reader is None:
                    reader = readers[file] = LineReader(table.data_paths[file])
                level, message, fields = record_fields(reader.get(off, length), flags)
                if trace < 0:
                    where = f"{names[file]}:{line}"
                    lines.append(
                        f"  {paint(_DIM, where)} {paint(_YELLOW, REASONS[reason])}"
                        f"  {escape(message)}\n"
                    )
                    continue
                start = trace_start[trace]
                rel = "" if ts != ts or start != start else f"+{(ts - start) * 1e3:.3f}ms"
                tag = ""
                if span >= 0 and orphan[span] and span not in seen_orphans:
                    seen_orphans.add(span)
                    tag = paint(_YELLOW, " [orphan: parent span not in the logs]")
                extra = " ".join(f"{k}={escape(str(v))}" for k, v in fields.items())
                text = escape(message) + (f"  {paint(_DIM, extra)}" if extra else "")
                upper = level.upper()
                lvl = escape(_SHORT_LEVELS.get(upper, upper)[:5]).ljust(5)
                if flags & ERROR:
                    lvl, text = paint(_RED + _BOLD, lvl), paint(_RED, text)
                lines.append(
                    f"  {paint(_DIM, rel.rjust(11))} {'  ' * depth}"
                    f"{paint(_CYAN, services[svc])} {lvl} {text}{tag}\n"
                )
        out.write("".join(lines).encode())
    finally:
        for reader in readers.values():
            reader.close()


def _header(r: Rendering, trace: int, paint: Callable[[str, str], str]) -> str:
    if trace < 0:
        return "\n" + paint(_BOLD, "lines without a trace") + "\n"
    start, end = r.order.trace_start[trace], r.order.trace_end[trace]
    span = "" if np.isnan(start) or np.isnan(end) else f"  {(end - start) * 1e3:.3f} ms"
    when = ""
    if not np.isnan(start):
        when = "  " + str(np.datetime64(round(start * 1e6), "us")) + "Z"
    return "\n" + paint(_BOLD, f"trace {escape(r.table.traces[trace])}") + f"{when}{span}\n"
