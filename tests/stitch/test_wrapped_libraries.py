"""Real libraries' records, as collectors and backends hand them back.

The records come from the OpenTelemetry SDK, structlog, python-json-logger
and ecs-logging, logging inside a real span; the wrappers are the documented
shapes (Docker json-file, CRI node files, journald, Loki, Cloud Logging,
CloudWatch, Elasticsearch, the collector's OTLP JSON file exporter built with
opentelemetry-proto's own JSON mapping). Every stitch joins one trace.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import stitch_jsonl

from logtrace.stitch._parse import PARTIALS

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.instrumentation.logging.handler")

from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    ConsoleLogRecordExporter,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


@contextmanager
def _otel_logger(service: str, exporter: Any) -> Iterator[tuple[logging.Logger, TracerProvider]]:
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    log = logging.getLogger(f"test.wrapped.{service}")
    handler = LoggingHandler(logger_provider=provider)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    try:
        yield log, TracerProvider()
    finally:
        log.removeHandler(handler)
        provider.shutdown()


def _ids(tracer_provider: TracerProvider, name: str) -> Any:
    return tracer_provider.get_tracer("test").start_as_current_span(name)


def test_sdk_console_exporter_records(tmp_path: Path) -> None:
    out = io.StringIO()
    exporter = ConsoleLogRecordExporter(out=out, formatter=lambda r: r.to_json(indent=None) + "\n")
    with _otel_logger("checkout", exporter) as (log, tracers), _ids(tracers, "pay") as span:
        log.info("charging card")
        log.error("card declined")
        trace = f"{span.get_span_context().trace_id:032x}"
    path = tmp_path / "console.jsonl"
    path.write_text(out.getvalue())
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    assert [r["trace_id"] for r in records] == [trace, trace]
    assert {r["service"] for r in records} == {"checkout"}  # from the resource
    lines = out.getvalue().splitlines()
    assert [r["record"] for r in records] == [json.loads(line) for line in lines]


def _any_value(value: object) -> dict[str, Any]:
    return {"stringValue": str(value)} if not isinstance(value, int) else {"intValue": str(value)}


def _otlp_json_line(exported: list[tuple[str, Any]]) -> bytes:
    """One line as the collector's file exporter writes it: the OTLP protobuf
    JSON mapping (opentelemetry-proto, protobuf's json_format), with trace and
    span IDs in hex as OTLP/JSON asks instead of protobuf's base64."""
    from google.protobuf import json_format
    from opentelemetry.proto.logs.v1 import logs_pb2

    data = logs_pb2.LogsData()
    for service, records in exported:
        resource_logs = data.resource_logs.add()
        attr = resource_logs.resource.attributes.add()
        attr.key = "service.name"
        attr.value.string_value = service
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.name = "test"
        for readable in records:
            r = readable.log_record
            out = scope_logs.log_records.add()
            out.time_unix_nano = r.timestamp
            out.observed_time_unix_nano = r.observed_timestamp
            out.severity_number = r.severity_number.value
            out.severity_text = r.severity_text
            out.body.string_value = str(r.body)
            out.trace_id = r.trace_id.to_bytes(16, "big")
            out.span_id = r.span_id.to_bytes(8, "big")
            out.flags = int(r.trace_flags)
            for key, value in (r.attributes or {}).items():
                kv = out.attributes.add()
                kv.key = key
                json_format.ParseDict(_any_value(value), kv.value)
    obj = json_format.MessageToDict(data)
    for resource_logs in obj["resourceLogs"]:
        for scope_logs in resource_logs["scopeLogs"]:
            for record in scope_logs["logRecords"]:
                for key in ("traceId", "spanId"):
                    record[key] = base64.b64decode(record[key]).hex()
    return json.dumps(obj, separators=(",", ":")).encode()


def test_otlp_json_file_exporter_batches(tmp_path: Path) -> None:
    exported: list[tuple[str, Any]] = []
    tracers = TracerProvider()
    with _ids(tracers, "checkout") as span:
        trace = f"{span.get_span_context().trace_id:032x}"
        for service, messages in (
            ("checkout", ["order placed", "calling payments"]),
            ("payments", ["card declined"]),
        ):
            memory = InMemoryLogRecordExporter()
            with _otel_logger(service, memory) as (log, _):
                for message in messages:
                    (log.error if "declined" in message else log.info)(message)
            exported.append((service, memory.get_finished_logs()))
    line = _otlp_json_line(exported)
    path = tmp_path / "otel-collector.jsonl"
    path.write_bytes(line + b"\n")
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    assert [r["trace_id"] for r in records] == [trace] * 3
    assert [r["line"] for r in records] == [1, 1, 1]
    by_body = {r["record"]["body"]["stringValue"]: r for r in records}
    assert by_body["card declined"]["service"] == "payments"
    assert by_body["order placed"]["service"] == "checkout"
    assert by_body["card declined"]["record"]["severityText"] == "ERROR"


def _structlog_line(trace: str, span: str) -> str:
    structlog = pytest.importorskip("structlog")
    stream = io.StringIO()
    log = structlog.wrap_logger(
        structlog.PrintLogger(stream),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
    )
    log.error("card declined", service="checkout", trace_id=trace, span_id=span)
    return stream.getvalue().strip()


def _json_logger_line(trace: str, span: str) -> str:
    jsonlogger = pytest.importorskip("pythonjsonlogger.json")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(jsonlogger.JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log = logging.getLogger("test.wrapped.jsonlogger")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error(
            "charge failed", extra={"trace_id": trace, "span_id": span, "service": "payments"}
        )
    finally:
        log.removeHandler(handler)
    return stream.getvalue().strip()


def _ecs_source(trace: str, span: str) -> dict[str, Any]:
    ecs_logging = pytest.importorskip("ecs_logging")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ecs_logging.StdlibFormatter())
    log = logging.getLogger("test.wrapped.ecs")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.error(
            "ledger write failed",
            extra={"trace.id": trace, "span.id": span, "service.name": "ledger"},
        )
    finally:
        log.removeHandler(handler)
    source: dict[str, Any] = json.loads(stream.getvalue())
    return source


def _rfc3339_nano() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def test_library_records_inside_every_wrapper(tmp_path: Path) -> None:
    trace = "5d0f3a2b7c1e4f6a8b9c0d1e2f3a4b5c"
    span = "a1b2c3d4e5f60718"
    structlog_line = _structlog_line(trace, span)
    json_logger_line = _json_logger_line(trace, span)
    ecs = _ecs_source(trace, span)
    now = _rfc3339_nano()
    cut = len(structlog_line) // 2
    files = {
        "docker.log": [json.dumps({"log": structlog_line + "\n", "stream": "stderr", "time": now})],
        "checkout_prod_web-1_0123.log": [
            f"{now} stdout P {structlog_line[:cut]}",
            f"{now} stderr F unrelated",
            f"{now} stdout F {structlog_line[cut:]}",
        ],
        "journal.json": [
            json.dumps(
                {
                    "__REALTIME_TIMESTAMP": "1796378400250000",
                    "PRIORITY": "3",
                    "_SYSTEMD_UNIT": "payments.service",
                    "MESSAGE": json_logger_line,
                }
            )
        ],
        "loki.jsonl": [
            json.dumps({"labels": {"app": "checkout"}, "line": structlog_line, "timestamp": now})
        ],
        "cloud-logging.json": [
            json.dumps(
                {
                    "jsonPayload": json.loads(json_logger_line),
                    "resource": {"type": "k8s_container", "labels": {"container_name": "pay"}},
                    "timestamp": now,
                    "severity": "ERROR",
                }
            )
        ],
        "cloudwatch.json": [
            json.dumps(
                {
                    "timestamp": 1796378400250,
                    "message": json_logger_line,
                    "ingestionTime": 1796378401000,
                    "logStreamName": "payments/web/1",
                    "eventId": "1",
                }
            )
        ],
        "es-hits.json": [json.dumps({"_index": "logs", "_id": "1", "_source": ecs})],
        "es-search.json": [
            json.dumps({"took": 1, "hits": {"hits": [{"_index": "logs", "_source": ecs}] * 2}})
        ],
    }
    paths = []
    for name, lines in files.items():
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        paths.append(str(path))
    PARTIALS.clear()
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", *paths)
    joined = [r for r in records if r["trace_id"] == trace]
    others = [r for r in records if r["trace_id"] != trace]
    assert len(joined) == 10
    assert [r["record"] for r in others] == [{"message": f"{now} stderr F unrelated"}]
    services = {Path(r["file"]).name: r["service"] for r in joined}
    assert services["docker.log"] == "checkout"
    assert services["journal.json"] == "payments"
    assert services["es-hits.json"] == "ledger"
    # The runtime's first piece names the span ID cut short: it takes none, not half of one.
    assert {r["span_id"] for r in joined if "stdout P" not in json.dumps(r["record"])} == {span}
    assert [r["span_id"] for r in joined if "stdout P" in json.dumps(r["record"])] == [None]
