"""Logs of services traced by Datadog's tracer (ddtrace) with log injection.

Three services in a chain on 127.0.0.1, each under the real tracer
(``import ddtrace.auto``, ``DD_LOGS_INJECTION``; its agent's address is a
closed local port, so nothing leaves the host): ``gateway`` (FastAPI)
calls ``orders`` (Flask under gunicorn, two sync workers) over httpx, which
calls ``stock`` (FastAPI) over requests. The tracer puts ``dd.trace_id``,
``dd.span_id`` and ``dd.service`` on every record, no parent span.

- JSON lines (python-json-logger, microseconds) where the gateway propagates
  Datadog's headers alone and drops the tag that carries the high half of
  its 128-bit trace ID: it logs the 128-bit ID in hex, orders and stock log
  the low 64 bits in decimal. Each request is one trace all the same, and
  the shifted clocks are found.
- Datadog's documented text format for Python's logging (whole
  milliseconds), on one clock: nothing corrected.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from _stitchutil import stitched_traces
from servers import free_port, run_gunicorn, run_uvicorn

pytest.importorskip("ddtrace")
pytest.importorskip("pythonjsonlogger")
pytestmark = pytest.mark.timeout(300)

LOGGING = textwrap.dedent(
    """
    import logging, os

    SERVICE = os.environ["DD_SERVICE"]
    SHIFT = float(os.environ["DT_SHIFT_MS"]) / 1000
    TEXT = (
        "%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] "
        "[dd.service=%(dd.service)s dd.env=%(dd.env)s dd.version=%(dd.version)s "
        "dd.trace_id=%(dd.trace_id)s dd.span_id=%(dd.span_id)s] - %(message)s"
    )


    class Shifted(logging.Filter):
        def filter(self, record):
            record.created += SHIFT
            record.msecs = (record.created % 1) * 1000
            return True


    handler = logging.FileHandler(os.environ["DT_LOG"])
    if os.environ["DT_STYLE"] == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter(
            "%(levelname)s %(name)s %(message)s %(dd.trace_id)s %(dd.span_id)s %(dd.service)s",
            timestamp=True,
        ))
    else:
        handler.setFormatter(logging.Formatter(TEXT))
    handler.addFilter(Shifted())
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    for quiet in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(quiet).setLevel(logging.WARNING)
    log = logging.getLogger(SERVICE)
    """
)

ASGI_APP = textwrap.dedent(
    """
    import ddtrace.auto  # noqa: F401  (first: it patches what follows)

    import asyncio, os, random

    import httpx
    from fastapi import FastAPI

    from dt_logging import log

    app = FastAPI()
    client = httpx.AsyncClient(timeout=10)
    ORDERS = os.environ.get("DT_ORDERS", "")


    @app.get("/checkout")
    async def checkout():
        log.info("checkout asked")
        log.info("calling orders")
        (await client.get(ORDERS + "/orders")).raise_for_status()
        log.info("orders answered")
        log.info("checkout answered")
        return {"ok": True}


    @app.get("/stock")
    async def stock():
        log.info("stock asked")
        await asyncio.sleep(random.uniform(0.001, 0.003))
        log.info("stock answered")
        return {"ok": True}
    """
)

FLASK_APP = textwrap.dedent(
    """
    import ddtrace.auto  # noqa: F401  (first: it patches what follows)

    import os, random, time

    import requests
    from flask import Flask

    from dt_logging import log

    app = Flask(__name__)
    session = requests.Session()
    STOCK = os.environ["DT_STOCK"]


    @app.get("/orders")
    def orders():
        log.info("orders asked")
        time.sleep(random.uniform(0.0005, 0.0015))
        log.info("calling stock")
        session.get(STOCK + "/stock", timeout=10).raise_for_status()
        log.info("stock answered the order")
        log.info("orders answered the checkout")
        return {"ok": True}
    """
)

QUIET = {
    "DD_LOGS_INJECTION": "true",
    "DD_ENV": "test",
    "DD_VERSION": "1.0",
    "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
    "DD_REMOTE_CONFIGURATION_ENABLED": "false",
    "DD_PROFILING_ENABLED": "false",
    "DD_RUNTIME_METRICS_ENABLED": "false",
    "DD_DATA_STREAMS_ENABLED": "false",
    "DD_APPSEC_ENABLED": "false",
    "DD_IAST_ENABLED": "false",
    "DD_CRASHTRACKING_ENABLED": "false",
    "DD_DYNAMIC_INSTRUMENTATION_ENABLED": "false",
    "DD_EXCEPTION_REPLAY_ENABLED": "false",
    "DD_SYMBOL_DATABASE_UPLOAD_ENABLED": "false",
    "DD_TRACE_STATS_COMPUTATION_ENABLED": "false",
}
"""The tracer with log injection and nothing else it would start."""
LOW_HALF_ONLY = {"DD_TRACE_PROPAGATION_STYLE": "datadog", "DD_TRACE_X_DATADOG_TAGS_MAX_LENGTH": "0"}
"""The gateway sends ``x-datadog-trace-id`` (the low 64 bits) without the tag
holding the high half: its callees start their traces with the low half."""
REQUESTS = 80
SERVICES = ("gateway", "orders", "stock")
SAID = [
    "checkout asked",
    "calling orders",
    "orders asked",
    "calling stock",
    "stock asked",
    "stock answered",
    "stock answered the order",
    "orders answered the checkout",
    "orders answered",
    "checkout answered",
]


def _run(tmp_path: Path, style: str, shifts: dict[str, float], gateway: dict[str, str]) -> Path:
    (tmp_path / "dt_logging.py").write_text(LOGGING, encoding="utf-8")
    (tmp_path / "dt_asgi.py").write_text(ASGI_APP, encoding="utf-8")
    (tmp_path / "dt_flask.py").write_text(FLASK_APP, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()
    agent = free_port()  # nothing listens there: the tracer's writes fail, locally

    def env(service: str, **more: str) -> dict[str, str]:
        return {
            **QUIET,
            "DD_SERVICE": service,
            "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{agent}",
            "DD_DOGSTATSD_URL": f"udp://127.0.0.1:{agent}",
            "DT_SHIFT_MS": str(shifts[service]),
            "DT_LOG": str(logs / f"{service}.log"),
            "DT_STYLE": style,
            **more,
        }

    quiet = ("--log-level", "warning")
    with (
        run_uvicorn("dt_asgi:app", app_dir=tmp_path, args=quiet,
                    log_path=tmp_path / "stock.out", env=env("stock")) as stock,
        run_gunicorn("dt_flask:app", app_dir=tmp_path, args=("--workers", "2"),
                     log_path=tmp_path / "orders.out",
                     env=env("orders", DT_STOCK=stock.url)) as orders,
        run_uvicorn("dt_asgi:app", app_dir=tmp_path, args=quiet, log_path=tmp_path / "gateway.out",
                    env=env("gateway", DT_ORDERS=orders.url, **gateway)) as gw,
        httpx.Client(timeout=30) as client,
    ):  # fmt: skip
        for _ in range(REQUESTS):
            assert client.get(gw.url + "/checkout").status_code == 200
    return logs


def _message(row: dict[str, Any]) -> str:
    text = row["record"]["message"]
    said = re.search(r"\] - (.*)$", text)  # a text line's record is the whole line
    return said[1] if said else text


def _assert_story(logs: Path, out: Path) -> Any:
    """Every line kept; each request one trace, in causal order, each
    request's span under its caller's."""
    summary, traces = stitched_traces(logs, out)
    assert len(traces) == REQUESTS
    for trace in traces.values():
        said = [_message(r) for r in trace]
        assert said == SAID, said
        span = {_message(r): r["span_id"] for r in trace}
        parent = {_message(r): r["parent_span_id"] for r in trace}
        assert parent["orders asked"] == span["calling orders"]
        assert parent["stock asked"] == span["calling stock"]
    return summary


SHIFTS = {"gateway": 0.0, "orders": 30.4, "stock": -29.7}


def test_ids_in_either_form_make_one_trace_and_shifted_clocks_are_found(tmp_path: Path) -> None:
    """The gateway's 128-bit IDs and its callees' 64-bit ones join. Orders'
    clock found within 1 ms; stock's, two calls down, within 2 ms: under the
    tracer a request takes longer to get in than its answer to get out, and
    the middle of each call's interval leans by half the difference, adding
    up along the chain (see the docs' limits)."""
    logs = _run(tmp_path, "json", SHIFTS, LOW_HALF_ONLY)
    head = json.loads((logs / "gateway.log").read_text().splitlines()[0])
    tail = json.loads((logs / "orders.log").read_text().splitlines()[0])
    assert len(head["dd.trace_id"]) == 32 and tail["dd.trace_id"].isdigit(), (head, tail)
    summary = _assert_story(logs, tmp_path / "out.jsonl")
    offsets = summary.offsets_ms
    within = {"gateway": 1.0, "orders": 1.0, "stock": 2.0}
    for service, shift in SHIFTS.items():
        assert abs(offsets[service] - offsets["gateway"] - shift) < within[service], offsets


def test_datadog_text_format_on_one_clock(tmp_path: Path) -> None:
    logs = _run(tmp_path, "text", dict.fromkeys(SERVICES, 0.0), {})
    summary = _assert_story(logs, tmp_path / "out.jsonl")
    assert summary.offsets_ms == dict.fromkeys(SERVICES, 0.0)
