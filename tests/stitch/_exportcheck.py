"""Each export checked against its format's definition.

- OTLP JSON: every line parsed into opentelemetry-proto's protobuf messages
  (``ExportTraceServiceRequest``, ``ExportLogsServiceRequest``) with
  ``google.protobuf.json_format``. OTLP/JSON differs from the protobuf JSON
  mapping in one place: trace and span IDs are hex, not base64. The IDs are
  checked as hex, then turned into base64 for the parser.
- Zipkin: a JSON Schema written from the v2 API's definition of ``Span``
  (openzipkin/zipkin-api, ``zipkin2-api.yaml``), validated with jsonschema.
- Jaeger: what the Jaeger UI's upload reads (``readJsonFile`` then
  ``transformTraceData``): ``{"data": [trace]}``; a trace needs ``traceID``,
  ``spans`` and ``processes``; a span needs ``traceID`` (its parent
  reference is looked up in the same trace), ``spanID`` (unique),
  ``processID`` naming a process, ``operationName``, microsecond
  ``startTime`` (0 or missing is "no time") and ``duration``; tags and log
  fields are key/value pairs; references are ``CHILD_OF`` or
  ``FOLLOWS_FROM``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import jsonschema
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")

# -- OTLP ------------------------------------------------------------------------


def _b64(hex_id: str, pattern: re.Pattern[str]) -> str:
    assert pattern.fullmatch(hex_id), f"not an OTLP/JSON hex ID: {hex_id!r}"
    assert hex_id.strip("0"), "an all-zero ID is invalid"
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def _proto_ids(obj: Any) -> Any:
    """A copy of an OTLP/JSON object with its hex IDs in base64 (checked on the way)."""
    if isinstance(obj, list):
        return [_proto_ids(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        if key == "traceId":
            out[key] = _b64(value, HEX32)
        elif key in ("spanId", "parentSpanId"):
            out[key] = _b64(value, HEX16)
        else:
            out[key] = _proto_ids(value)
    return out


def parse_otlp(
    data: bytes,
) -> tuple[list[ExportTraceServiceRequest], list[ExportLogsServiceRequest]]:
    """Every line of an OTLP JSON lines file, as the protobuf messages."""
    traces, logs = [], []
    assert data.endswith(b"\n")
    for line in data.split(b"\n")[:-1]:
        obj = json.loads(line)
        assert set(obj) in ({"resourceSpans"}, {"resourceLogs"}), set(obj)
        converted = json.dumps(_proto_ids(obj))
        if "resourceSpans" in obj:
            traces.append(json_format.Parse(converted, ExportTraceServiceRequest()))
        else:
            logs.append(json_format.Parse(converted, ExportLogsServiceRequest()))
    return traces, logs


def otlp_spans(traces: list[ExportTraceServiceRequest]) -> list[tuple[str, Any]]:
    """(service name, Span message) for every span."""
    out = []
    for request in traces:
        for rs in request.resource_spans:
            names = [
                a.value.string_value for a in rs.resource.attributes if a.key == "service.name"
            ]
            assert len(names) == 1
            for ss in rs.scope_spans:
                assert ss.scope.name == "logtrace.stitch"
                out.extend((names[0], span) for span in ss.spans)
    return out


def attributes(kvs: Any) -> dict[str, Any]:
    """OTLP key/values as plain Python values."""
    return {kv.key: json_format.MessageToDict(kv.value) for kv in kvs}


# -- Zipkin ----------------------------------------------------------------------

_ENDPOINT = {
    "type": "object",
    "properties": {
        "serviceName": {"type": "string"},
        "ipv4": {"type": "string"},
        "ipv6": {"type": "string"},
        "port": {"type": "integer"},
    },
}

ZIPKIN_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "ListOfSpans: a list of spans with possibly different trace IDs",
    "type": "array",
    "items": {
        "type": "object",
        "required": ["traceId", "id"],
        "properties": {
            # 16 or 32 lowercase hex characters (64 or 128 bits).
            "traceId": {"type": "string", "pattern": "^([0-9a-f]{16}|[0-9a-f]{32})$"},
            "name": {"type": "string"},
            # Absent for a root span.
            "parentId": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            # Absent for a local span.
            "kind": {"enum": ["CLIENT", "SERVER", "PRODUCER", "CONSUMER"]},
            # Epoch microseconds.
            "timestamp": {"type": "integer", "minimum": 1},
            # Microseconds; durations of less than one are rounded up.
            "duration": {"type": "integer", "minimum": 1},
            "debug": {"type": "boolean"},
            "shared": {"type": "boolean"},
            "localEndpoint": _ENDPOINT,
            "remoteEndpoint": _ENDPOINT,
            "annotations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "timestamp": {"type": "integer", "minimum": 1},
                        "value": {"type": "string"},
                    },
                },
            },
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
}


def check_zipkin(doc: Any) -> None:
    jsonschema.Draft7Validator.check_schema(ZIPKIN_SCHEMA)
    jsonschema.validate(doc, ZIPKIN_SCHEMA, cls=jsonschema.Draft7Validator)
    ids = [(s["traceId"], s["id"]) for s in doc]
    assert len(ids) == len(set(ids)), "a span ID twice in one trace"


# -- Jaeger ----------------------------------------------------------------------

_TAG_TYPES = {"string": str, "bool": bool, "int64": int, "float64": float}


def _check_kv(kv: Any) -> None:
    assert isinstance(kv, dict) and isinstance(kv.get("key"), str), kv
    assert "value" in kv, kv
    kind = kv.get("type", "string")
    assert kind in _TAG_TYPES, kv
    value = kv["value"]
    if kind == "int64":
        assert isinstance(value, int) and not isinstance(value, bool), kv
        assert -(1 << 63) <= value < 1 << 63
    elif kind == "float64":
        assert isinstance(value, int | float) and not isinstance(value, bool), kv
    else:
        assert isinstance(value, _TAG_TYPES[kind]), kv


def check_jaeger(doc: Any) -> None:
    """What the Jaeger UI's JSON upload needs of a file."""
    assert isinstance(doc, dict) and isinstance(doc.get("data"), list), "needs {'data': [...]}"
    for trace in doc["data"]:
        trace_id = trace.get("traceID")
        assert isinstance(trace_id, str) and trace_id, "a trace needs its traceID"
        assert trace_id == trace_id.lower()
        processes = trace.get("processes")
        assert isinstance(processes, dict) and processes
        for process in processes.values():
            assert isinstance(process.get("serviceName"), str) and process["serviceName"]
            for kv in process.get("tags", []):
                _check_kv(kv)
        spans = trace.get("spans")
        assert isinstance(spans, list) and spans
        ids = [s.get("spanID") for s in spans]
        assert all(isinstance(i, str) and i for i in ids)
        assert len(set(ids)) == len(ids), "span IDs must be unique in a trace"
        for span in spans:
            assert span.get("traceID") == trace_id, "a span's parent is looked up by its traceID"
            assert span.get("processID") in processes
            assert isinstance(span.get("operationName"), str)
            start, duration = span.get("startTime"), span.get("duration")
            assert isinstance(start, int) and start > 0, "startTime: epoch microseconds"
            assert isinstance(duration, int) and duration >= 0
            for kv in span.get("tags", []):
                _check_kv(kv)
            for log in span.get("logs", []):
                assert isinstance(log.get("timestamp"), int) and log["timestamp"] > 0
                for kv in log.get("fields", []):
                    _check_kv(kv)
            for ref in span.get("references", []):
                assert ref.get("refType") in ("CHILD_OF", "FOLLOWS_FROM"), ref
                assert isinstance(ref.get("spanID"), str) and ref.get("traceID") == trace_id
        _check_tree(spans)


def _check_tree(spans: list[dict[str, Any]]) -> None:
    """References to spans of the file form no cycle, and an absent parent is flagged."""
    parent = {}
    ids = {s["spanID"] for s in spans}
    for s in spans:
        refs = [r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF"]
        if refs:
            parent[s["spanID"]] = refs[0]
            if refs[0] not in ids:
                tags = {t["key"]: t["value"] for t in s["tags"]}
                assert tags.get("logtrace.orphan") is True, s["spanID"]
    for start in parent:
        seen = {start}
        node = start
        while node in parent:
            node = parent[node]
            assert node not in seen, "a cycle of references"
            seen.add(node)


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span["tags"]}
