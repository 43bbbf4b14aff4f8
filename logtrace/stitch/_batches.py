"""Lines that hold many records, each read as a line of its own.

The OpenTelemetry collector's file exporter (OTLP JSON) writes a batch per
line, ``resourceLogs[].scopeLogs[].logRecords[]``; a saved Elasticsearch or
OpenSearch search response holds its hits in ``hits.hits[]``; a page of
``aws logs filter-log-events`` or ``get-log-events`` holds ``events[]``.
:func:`line_records` gives each record's byte range within the line and
its fields, so that each becomes a row whose ``record`` is the record as
written; the line's number is shared by its records. A batch's resource
names the service of its records that name none.

Both scan paths ask for this only for lines that contain one of the
:data:`MARKERS`, so other lines pay three substring searches at most, and
only on the general path.
"""

from __future__ import annotations

import msgspec

from ._parse import Parsed, parse_line
from ._wrapped import otel_service

__all__ = ["MARKERS", "Records", "line_records", "may_hold_many"]

MARKERS = (b'"resourceLogs"', b'"hits"', b'"events"')
"""Keys of the shapes that hold many records (quoted, as in the line)."""

Records = list[tuple[int, int, Parsed]]
"""Per record: start within the line, length, fields."""


class _Scope(msgspec.Struct):
    logRecords: list[msgspec.Raw] = []


class _ResourceLogs(msgspec.Struct):
    resource: object = None
    scopeLogs: list[_Scope] = []


class _HitList(msgspec.Struct):
    hits: list[msgspec.Raw] = []


class _Batch(msgspec.Struct):
    resourceLogs: list[_ResourceLogs] | None = None
    hits: _HitList | None = None
    events: list[msgspec.Raw] | None = None


_decode_batch = msgspec.json.Decoder(_Batch).decode
_decode_any = msgspec.json.decode


def may_hold_many(raw: bytes) -> bool:
    """Whether a line that starts with ``{`` names one of the :data:`MARKERS`."""
    return MARKERS[0] in raw or MARKERS[1] in raw or MARKERS[2] in raw


def _all_have(items: list[msgspec.Raw], keys: tuple[str, ...]) -> bool:
    for item in items:
        try:
            value = _decode_any(item)
        except (msgspec.DecodeError, RecursionError):
            return False
        if not isinstance(value, dict) or any(key not in value for key in keys):
            return False
    return True


def line_records(raw: bytes) -> Records | None:
    """Each record of a line that holds many, or ``None`` for a line that does
    not (or holds none: it is then read as one record)."""
    try:
        batch = _decode_batch(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    items: list[tuple[msgspec.Raw, str | None]] = []
    if batch.resourceLogs:
        for resource_logs in batch.resourceLogs:
            service = otel_service(resource_logs.resource)
            for scope in resource_logs.scopeLogs:
                items.extend((record, service) for record in scope.logRecords)
    elif batch.hits is not None and batch.hits.hits:
        if _all_have(batch.hits.hits, ("_source",)):
            items = [(hit, None) for hit in batch.hits.hits]
    elif batch.events and _all_have(batch.events, ("timestamp", "message")):
        items = [(event, None) for event in batch.events]
    if not items:
        return None
    records: Records = []
    pos = 0
    for item, service in items:
        text = bytes(item)
        at = raw.find(text, pos)
        if at < 0:  # not as written (cannot happen with valid JSON)
            return None
        pos = at + len(text)
        fields = parse_line(text)
        if service is not None and fields[4] is None:
            trace, span, parent, ts, _, flags, reason, start = fields
            fields = (trace, span, parent, ts, service, flags, reason, start)
        records.append((at, len(text), fields))
    return records
