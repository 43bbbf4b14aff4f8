"""Spans rebuilt from the logs, for the exports to trace viewers.

A span with a span record (``logtrace.span`` lines, or another tool's
records with ``span.kind`` and ``duration_ms``) takes its name, kind,
status and attributes from it; a span without one gets its extent from its
own lines. Every line of a trace becomes an event of its span. Times are on
the corrected clock (:mod:`._timeline`); the raw ones are kept as
attributes. What the logs do not say outright is flagged:

- ``logtrace.orphan``: the span's parent is named but wrote no line;
- ``logtrace.inferred``: a span made up to hold a trace's lines that carry
  no span ID (one per service); its parent link is inferred too;
- ``logtrace.parent.inferred``: the parent link was inferred, not read
  (the ``inferred`` array given to :func:`trace_spans`);
- ``logtrace.extent_from_lines``: no span record; start and end are those
  of the span's first and last lines.

Viewers want fixed-width hex IDs: a trace or span ID of another form gets
one derived from it (a hash), the original kept as
``logtrace.trace_id.original`` / ``logtrace.span_id.original``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from .._schema import DURATION_MS, EXCEPTION_TYPE, SPAN_KIND, SPAN_NAME, SPAN_START
from .._schema import ERROR_TYPE as ERROR_TYPE_KEY
from ._decompress import LineReader
from ._model import ERROR, SPAN_RECORD, Rendering
from ._record_text import record_json
from ._timeline import timeline

__all__ = ["Event", "Span", "TraceSpans", "export_id", "iso", "trace_spans", "untraced_events"]

B = npt.NDArray[np.bool_]

MAX_VALUE = 10_000
"""Characters of a string value kept (the rest is cut, and says so)."""

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_MESSAGE_KEYS = ("message", "msg", "event", "body")
_LEVEL_KEYS = ("level", "levelname", "severity", "severityText", "log.level")
_ID_KEYS = frozenset(
    {"trace_id", "span_id", "parent_span_id", "traceId", "spanId", "parentSpanId", "timestamp"}
)
_EVENT_SKIP = _ID_KEYS | {"service", _MESSAGE_KEYS[0], _LEVEL_KEYS[0]}
"""Fields an event does not repeat: IDs and time (its own), service (its span's), message, level."""
_RECORD_KEYS = frozenset({SPAN_KIND, SPAN_NAME, SPAN_START, DURATION_MS, "span.start_ns"})
_ATTRIBUTE_PREFIX = "span.attributes."
_decode = msgspec.json.Decoder()


@dataclass(slots=True)
class Event:
    """One log line: a span event, and an OTLP log record."""

    time: float
    """Corrected epoch seconds (NaN if the line has no time)."""
    raw_time: float
    level: str
    message: str
    error: bool
    attributes: dict[str, Any]
    service: str
    span_id: str | None
    """The export ID of the span it belongs to (``None`` for lines without a trace)."""


@dataclass(slots=True)
class Span:
    span_id: str
    parent_id: str | None
    service: str
    name: str
    kind: str
    """``server``, ``client``, ``producer``, ``consumer`` or ``internal``."""
    start: float
    end: float
    error: bool
    status_message: str
    attributes: dict[str, Any]
    events: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class TraceSpans:
    trace: int
    """The trace's index in the table."""
    trace_id: str
    """32 lowercase hex digits."""
    attributes: dict[str, Any]
    """What every span of the trace carries (the original trace ID, when it was not hex)."""
    spans: list[Span]
    """In start order; every one has a start and an end."""
    events: list[Event]
    """Every line of the trace, in stitched order."""


def export_id(text: str, width: int) -> str:
    """``text`` if it is ``width`` lowercase hex digits (not all zero), else
    ``width`` hex digits derived from it."""
    pattern = _HEX32 if width == 32 else _HEX16
    if len(text) == width and pattern.fullmatch(text) and text.strip("0"):
        return text
    digest = hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=width // 2)
    return digest.hexdigest()


_SECONDS: dict[int, str] = {}


def iso(seconds: float) -> str:
    """ISO 8601 UTC with microseconds; ``""`` for NaN."""
    if math.isnan(seconds):
        return ""
    whole, us = divmod(round(seconds * 1e6), 1_000_000)
    head = _SECONDS.get(whole)
    if head is None:
        if len(_SECONDS) > 100_000:
            _SECONDS.clear()
        head = _SECONDS[whole] = str(np.datetime64(whole, "s"))
    return f"{head}.{us:06d}Z"


def clip(value: Any) -> Any:
    if type(value) is str and len(value) > MAX_VALUE:
        return f"{value[:MAX_VALUE]}… ({len(value) - MAX_VALUE} more characters)"
    return value


def _first(obj: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in obj:
            return obj[key]
    return ""


def _fields(raw: bytes, flags: int) -> dict[str, Any]:
    """The line's fields: its JSON object (or logfmt pairs), else its text as the message."""
    text = record_json(raw, flags)
    try:
        obj = _decode.decode(text)
    except (msgspec.DecodeError, RecursionError):
        obj = _lenient(text)  # numbers beyond 64 bits or doubles, lone surrogates
    return obj if isinstance(obj, dict) else {"message": raw.decode(errors="replace")}


def _lenient(text: bytes) -> Any:
    """``text`` read by the standard library's parser, which takes any number, with
    lone surrogates replaced (no encoder writes them)."""
    try:
        return _clean(json.loads(text.decode("utf-8", "replace")))
    except (ValueError, RecursionError):
        return None


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    return value


class _Lines:
    """Reads rows back as :class:`Event` s (and their fields, for span records)."""

    def __init__(self, r: Rendering) -> None:
        self.r = r
        self.readers: dict[int, LineReader] = {}
        self.files = [source.name for source in r.table.sources]

    def read(self, block: list[int]) -> list[tuple[Event, dict[str, Any]]]:
        """``block``'s rows, in that order; their events belong to no span yet."""
        r = self.r
        table = r.table
        idx = np.asarray(block, dtype=np.int64)
        sub = table.rows[idx]
        services = table.services
        out = []
        for off, length, flags, raw, svc, number, file, time in zip(
            sub["off"].tolist(),
            sub["len"].tolist(),
            sub["flags"].tolist(),
            sub["ts"].tolist(),
            sub["svc"].tolist(),
            sub["line"].tolist(),
            table.file[idx].tolist(),
            r.corrected[idx].tolist(),
            strict=True,
        ):
            reader = self.readers.get(file)
            if reader is None:
                reader = self.readers[file] = LineReader(table.data_paths[file])
            obj = _fields(reader.get(off, length), flags)
            message = _first(obj, _MESSAGE_KEYS)
            level = _first(obj, _LEVEL_KEYS)
            attributes = {
                k: v if type(v) is not str or len(v) <= MAX_VALUE else clip(v)
                for k, v in obj.items()
                if k not in _EVENT_SKIP
            }
            if raw == raw:
                attributes["logtrace.raw_time"] = iso(raw)
            attributes["log.file.name"] = self.files[file]
            attributes["logtrace.line"] = number
            event = Event(
                time=time,
                raw_time=raw,
                level=level if type(level) is str else str(level),
                message=clip(message if type(message) is str else str(message)),
                error=bool(flags & ERROR),
                attributes=attributes,
                service=services[svc],
                span_id=None,
            )
            out.append((event, obj))
        return out

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        self.readers.clear()


def trace_spans(r: Rendering, inferred: B | None = None) -> Iterator[TraceSpans]:
    """The selected traces' spans, a trace at a time, in output order.

    ``inferred`` (per span, optional) marks spans whose parent link was
    inferred rather than read from the logs."""
    table = r.table
    rows = table.rows
    traced = r.order.rows[: r.order.n_traced]
    if not len(traced):
        return
    tl = timeline(r)
    trace_col = rows["trace"][traced]
    bounds = (np.flatnonzero(trace_col[1:] != trace_col[:-1]) + 1).tolist()
    lines = _Lines(r)
    try:
        for lo, hi in zip([0, *bounds], [*bounds, len(traced)], strict=True):
            block = traced[lo:hi].tolist()
            yield _trace(r, tl.span_start, tl.span_end, block, lines, inferred)
    finally:
        lines.close()


def untraced_events(r: Rendering) -> Iterator[Event]:
    """The selected lines without a trace, as events of no span."""
    rest = r.order.rows[r.order.n_traced :].tolist()
    if not rest:
        return
    lines = _Lines(r)
    try:
        for lo in range(0, len(rest), 4096):
            for event, _ in lines.read(rest[lo : lo + 4096]):
                yield event
    finally:
        lines.close()


def _trace(
    r: Rendering,
    span_start: npt.NDArray[np.float64],
    span_end: npt.NDArray[np.float64],
    block: list[int],
    lines: _Lines,
    inferred: B | None,
) -> TraceSpans:
    table = r.table
    rows = table.rows
    trace = int(rows["trace"][block[0]])
    original = table.traces[trace]
    trace_id = export_id(original, 32)
    common: dict[str, Any] = {}
    if trace_id != original:
        common["logtrace.trace_id.original"] = original
    times = r.corrected[block]
    known = times[~np.isnan(times)]
    fallback = float(known.min()) if len(known) else math.nan

    span_ids: dict[int, str] = {}

    def sid(span: int) -> str:
        got = span_ids.get(span)
        if got is None:
            got = span_ids[span] = export_id(table.spans[span], 16)
        return got

    spans: dict[int, Span] = {}
    recorded: set[int] = set()  # spans whose record was read
    loose: dict[str, Span] = {}  # per service: the made-up span of lines without a span ID
    events: list[Event] = []
    read = lines.read(block)
    idx = np.asarray(block, dtype=np.int64)
    for span, flags, (event, obj) in zip(
        rows["span"][idx].tolist(), rows["flags"][idx].tolist(), read, strict=True
    ):
        events.append(event)
        if span < 0:
            holder = loose.get(event.service)
            if holder is None:
                holder = loose[event.service] = _made_up(trace_id, event.service, common)
            event.span_id = holder.span_id
            holder.events.append(event)
            continue
        s = spans.get(span)
        if s is None:
            s = spans[span] = _from_tree(r, span, sid, span_start, span_end, fallback, common)
            if inferred is not None and inferred[span]:
                s.attributes["logtrace.parent.inferred"] = True
        event.span_id = s.span_id
        if flags & SPAN_RECORD and span not in recorded:
            _read_record(s, obj, bool(flags & ERROR))
            recorded.add(span)
            continue  # the record is the span itself: a log record, not an event
        s.events.append(event)
    out = []
    for span, s in spans.items():
        if span not in recorded:
            s.attributes["logtrace.extent_from_lines"] = True
            failed = next((e for e in s.events if e.error), None)
            if failed is not None:
                s.error, s.status_message = True, failed.message[:200]
        out.append(s)
    by_service_start = sorted(out, key=lambda s: s.start)
    for service, holder in loose.items():
        _extent(holder, fallback)
        home = next((s for s in by_service_start if s.service == service), None)
        home = home or next((s for s in by_service_start if s.parent_id is None), None)
        if home is not None:
            holder.parent_id = home.span_id
            holder.attributes["logtrace.parent.inferred"] = True
        out.append(holder)
    out.sort(key=lambda s: (s.start, -s.end))
    return TraceSpans(trace, trace_id, common, out, events)


def _from_tree(
    r: Rendering,
    span: int,
    sid: Any,
    span_start: npt.NDArray[np.float64],
    span_end: npt.NDArray[np.float64],
    fallback: float,
    common: dict[str, Any],
) -> Span:
    table = r.table
    tree = r.tree
    original = table.spans[span]
    attributes: dict[str, Any] = dict(common)
    span_id = sid(span)
    if span_id != original:
        attributes["logtrace.span_id.original"] = original
    parent = int(tree.parent[span])
    parent_id = sid(parent) if parent >= 0 else None
    if bool(tree.orphan[span]):
        attributes["logtrace.orphan"] = True
    start, end = float(span_start[span]), float(span_end[span])
    if math.isnan(start) or math.isnan(end):
        start = end = fallback
        attributes["logtrace.no_time"] = True
    raw_start, raw_end = float(tree.start[span]), float(tree.end[span])
    if not math.isnan(raw_start):
        attributes["logtrace.raw_start"] = iso(raw_start)
    if not math.isnan(raw_end):
        attributes["logtrace.raw_end"] = iso(raw_end)
    service_index = int(tree.service[span])
    service = table.services[service_index] if service_index >= 0 else "unknown"
    return Span(
        span_id=span_id,
        parent_id=parent_id,
        service=service,
        name=f"span {original[:16]}",
        kind="internal",
        start=start,
        end=end,
        error=False,
        status_message="",
        attributes=attributes,
    )


def _read_record(s: Span, obj: dict[str, Any], error: bool) -> None:
    """Name, kind, status and attributes from the span's record."""
    name = obj.get(SPAN_NAME)
    kind = obj.get(SPAN_KIND)
    message = obj.get("message")
    if isinstance(name, str) and name:
        s.name = clip(name)[:200]
    elif isinstance(message, str) and message:
        s.name = message[:200]
    if isinstance(kind, str) and kind.lower() in ("server", "client", "producer", "consumer"):
        s.kind = kind.lower()
    for key, value in obj.items():
        if key in _RECORD_KEYS or key in _ID_KEYS or key in ("message", "level", "service"):
            continue
        s.attributes[key.removeprefix(_ATTRIBUTE_PREFIX)] = clip(value)
    if error:
        s.error = True
        reason = obj.get(ERROR_TYPE_KEY) or obj.get(EXCEPTION_TYPE) or "error"
        s.status_message = str(reason)[:200]


def _made_up(trace_id: str, service: str, common: dict[str, Any]) -> Span:
    span_id = export_id(f"{trace_id} {service} lines without a span", 16)
    attributes = {**common, "logtrace.inferred": True, "logtrace.extent_from_lines": True}
    return Span(
        span_id=span_id,
        parent_id=None,
        service=service,
        name=f"{service} (lines without a span ID)",
        kind="internal",
        start=math.nan,
        end=math.nan,
        error=False,
        status_message="",
        attributes=attributes,
    )


def _extent(s: Span, fallback: float) -> None:
    times = [e.time for e in s.events if not math.isnan(e.time)]
    s.start, s.end = (min(times), max(times)) if times else (fallback, fallback)
    failed = next((e for e in s.events if e.error), None)
    if failed is not None:
        s.error, s.status_message = True, failed.message[:200]
