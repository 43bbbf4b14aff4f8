"""A span whose parent logs nothing: an OpenTelemetry client span calls a real
logtrace service; the callee's span is marked ``orphan`` alike in every
format, and the summary explains the mark once."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from _chain import INVENTORY
from _stitchutil import cli, run, stitch_jsonl
from opentelemetry import propagate
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from pythonjsonlogger.json import JsonFormatter
from servers import run_uvicorn
from test_render_html import parse, render


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The logs, the trace ID, and the OpenTelemetry client span's ID."""
    base = tmp_path_factory.mktemp("otel")
    directory = base / "logs"
    directory.mkdir()
    (base / "inventory_app.py").write_text(INVENTORY, encoding="utf-8")
    handler = logging.FileHandler(directory / "shop.jsonl", encoding="utf-8")
    handler.setFormatter(
        JsonFormatter("{levelname}{message}{otelTraceID}{otelSpanID}", style="{", timestamp=True)
    )
    logger = logging.getLogger("shop")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    instrumentor = LoggingInstrumentor()
    instrumentor.instrument(set_logging_format=False)
    tracer = TracerProvider().get_tracer("shop")
    try:
        with run_uvicorn(
            "inventory_app:app",
            app_dir=base,
            env={"LOG_FILE": str(directory / "inventory.jsonl")},
            log_path=base / "i.out",
        ) as inventory:
            with tracer.start_as_current_span("GET /buy", kind=SpanKind.SERVER) as server:
                logger.info("buying")
                # The client span writes no log line: it is the callee's parent.
                with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT) as client:
                    headers: dict[str, str] = {}
                    propagate.inject(headers)
                    answer = httpx.get(f"{inventory.url}/stock/1", headers=headers, timeout=10)
                logger.info("bought", extra={"status": answer.status_code})
            assert answer.status_code == 200
    finally:
        instrumentor.uninstrument()
        logger.removeHandler(handler)
        handler.close()
    trace_id = format(server.get_span_context().trace_id, "032x")
    return directory, trace_id, format(client.get_span_context().span_id, "016x")


def test_the_callee_names_a_parent_that_logged_nothing(logs: tuple[Path, str, str]) -> None:
    directory, trace_id, client = logs
    text = (directory / "inventory.jsonl").read_text(encoding="utf-8")
    inventory = [json.loads(line) for line in text.splitlines()]
    mine = [r for r in inventory if r.get("trace_id") == trace_id]
    assert mine and any(r.get("parent_span_id") == client for r in mine)
    assert client not in (directory / "shop.jsonl").read_text()


def test_text(logs: tuple[Path, str, str], tmp_path: Path) -> None:
    directory, trace_id, _ = logs
    out = tmp_path / "o.txt"
    assert run("stitch", "-q", "-o", str(out), str(directory))[0] == 0
    block = out.read_text().split(f"trace {trace_id}")[1]
    marked = [line for line in block.splitlines() if "[orphan]" in line]
    assert len(marked) == 1
    assert "inventory" in marked[0] and marked[0].rstrip().endswith("stock lookup [orphan]")


def test_jsonl(logs: tuple[Path, str, str], tmp_path: Path) -> None:
    directory, _, client = logs
    records = stitch_jsonl(tmp_path / "o.jsonl", str(directory))
    orphan = {r["span_id"] for r in records if r["parent_span_id"] == client}
    assert len(orphan) == 1
    for r in records:
        assert r.get("mark") == ("orphan" if r["span_id"] in orphan else None)


def test_html_and_chrome(logs: tuple[Path, str, str], tmp_path: Path) -> None:
    directory, _, client = logs
    doc = parse(render(tmp_path / "p.html", str(directory)))
    assert [t.content() for t in doc.find("span", "tag")] == ["[orphan]"]
    marks = doc.find("ul", "marks")[0].content()
    assert marks.count("[orphan] (1 span)") == 1
    out = tmp_path / "c.json"
    assert run("stitch", "-q", "--format", "chrome", "-o", str(out), str(directory))[0] == 0
    spans = [e for e in json.loads(out.read_text())["traceEvents"] if e.get("ph") == "X"]
    marked = [e for e in spans if e["args"].get("mark") == "orphan"]
    assert len(marked) == 1 and marked[0]["args"]["parent_span_id"] == client


def test_the_summary_explains_the_mark_once(logs: tuple[Path, str, str]) -> None:
    directory, _, _ = logs
    plain = cli("stitch", str(directory))
    assert plain.stderr.decode().count("[orphan] (1 span): ") == 1
    summary = cli("stitch", "--summary", str(directory))
    out = summary.stdout.decode()
    assert out.count("[orphan] (1 span): ") == 1 and "[orphan]" not in summary.stderr.decode()
    # The shop's request is the entry operation, though its span record is not in the logs.
    assert "1 trace: 1 ok, 0 failed, 0 recovered" in out
