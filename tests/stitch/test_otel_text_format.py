"""Logs in OpenTelemetry's own logging format, from real services.

``LoggingInstrumentor().instrument(set_logging_format=True)`` sets Python's
logging to its default format::

    2026-12-06 22:21:47,031 INFO [shop] [app.py:14] [trace_id=... span_id=...
    resource.service.name=storefront trace_sampled=True] - checkout asked

Text, whole milliseconds (``asctime``), no parent span ID, and the service
named only by ``resource.service.name``. Three uvicorn FastAPI services call
one another in a chain over HTTP (storefront -> stock -> warehouse), traced
by OpenTelemetry's FastAPI instrumentation, and log in that format:

- all into one file, as services sharing a host and a log collector do: the
  services come from the lines, not the file, and on one clock no offset
  is applied;
- each into its own file, stock's clock 30 ms ahead: the shift is found to
  within 1 ms.

Either way each service's span hangs under its caller's, marked inferred,
and its lines come between the caller's lines around the call. The same
holds for a Flask service under gunicorn (two sync workers) called by a
FastAPI one, its clock 30 ms ahead.
"""

from __future__ import annotations

import io
import itertools
import json
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import run_gunicorn, run_uvicorn

from logtrace.stitch import Options, stitch

pytest.importorskip("opentelemetry.instrumentation.fastapi")
pytest.importorskip("opentelemetry.instrumentation.logging")
pytestmark = pytest.mark.timeout(240)

LOG_HEAD = textwrap.dedent(
    """
    import logging, os

    from opentelemetry import trace
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.instrumentation.logging.constants import DEFAULT_LOGGING_FORMAT
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    SERVICE = os.environ["OT_SERVICE"]
    SHIFT = float(os.environ["OT_SHIFT_MS"]) / 1000
    trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": SERVICE})))
    LoggingInstrumentor().instrument(set_logging_format=True)


    class Shifted(logging.Filter):
        def filter(self, record):
            record.created += SHIFT
            record.msecs = (record.created % 1) * 1000
            return True


    handler = logging.FileHandler(os.environ["OT_LOG"])
    handler.setFormatter(logging.Formatter(DEFAULT_LOGGING_FORMAT))
    handler.addFilter(Shifted())
    log = logging.getLogger("shop")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    """
)
"""``ot_log``: the tracer and the logging every service of these tests sets up."""

APP = textwrap.dedent(
    """
    import asyncio, os, random

    import httpx
    from fastapi import FastAPI
    from opentelemetry import propagate
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    from ot_log import SERVICE, log

    NEXT = os.environ.get("OT_NEXT", "")
    api = FastAPI()
    client = httpx.AsyncClient()


    @api.get("/")
    async def serve() -> dict[str, bool]:
        log.info("%s asked", SERVICE)
        await asyncio.sleep(random.uniform(0.001, 0.003))
        if NEXT:
            headers: dict[str, str] = {}
            propagate.inject(headers)
            log.info("calling the next service")
            (await client.get(NEXT, headers=headers)).raise_for_status()
            log.info("the next service answered")
            await asyncio.sleep(random.uniform(0.001, 0.003))
        log.info("%s answers", SERVICE)
        return {"ok": True}


    FastAPIInstrumentor.instrument_app(api)
    app = api
    """
)
"""``ot_app``: a FastAPI service that calls ``OT_NEXT``, if set."""

FLASK_APP = textwrap.dedent(
    """
    import random, time

    from flask import Flask, request
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    from ot_log import SERVICE, log

    tracer = trace.get_tracer(SERVICE)
    app = Flask(__name__)


    @app.get("/")
    def serve():
        # No OpenTelemetry instrumentation for Flask here: the server span by hand.
        carrier = {k.lower(): v for k, v in request.headers.items()}
        with tracer.start_as_current_span(
            "GET /", context=propagate.extract(carrier), kind=SpanKind.SERVER
        ):
            log.info("%s asked", SERVICE)
            time.sleep(random.uniform(0.001, 0.003))
            log.info("%s answers", SERVICE)
            return "ok"
    """
)
"""``ot_flask``: a Flask service (under gunicorn, sync workers) that calls no other."""


CHAIN = ("storefront", "stock", "warehouse")
REQUESTS = 60


def _write_apps(app_dir: Path) -> None:
    for name, source in (("ot_log", LOG_HEAD), ("ot_app", APP), ("ot_flask", FLASK_APP)):
        (app_dir / f"{name}.py").write_text(source, encoding="utf-8")


def _env(service: str, shift_ms: float, log: Path, after: str = "") -> dict[str, str]:
    """The environment the apps read."""
    return {
        "OT_SERVICE": service,
        "OT_SHIFT_MS": str(shift_ms),
        "OT_LOG": str(log),
        "OT_NEXT": after,
    }


def _run(tmp_path: Path, shifts_ms: dict[str, float], one_file: bool) -> Path:
    _write_apps(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()

    def serve(service: str, after: str) -> Any:
        log = logs / ("app.log" if one_file else f"{service}-out.log")
        env = _env(service, shifts_ms.get(service, 0.0), log, after)
        return run_uvicorn("ot_app:app", app_dir=tmp_path, args=("--log-level", "warning"),
                           log_path=tmp_path / f"{service}.out", env=env)  # fmt: skip

    with (
        serve("warehouse", "") as warehouse,
        serve("stock", warehouse.url + "/") as stock,
        serve("storefront", stock.url + "/") as storefront,
        httpx.Client(timeout=10) as client,
    ):
        for _ in range(REQUESTS):
            assert client.get(storefront.url + "/").status_code == 200
    return logs


def _stitched(logs: Path) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    out = Path(str(logs) + ".jsonl")
    with open(out, "wb") as fh:
        summary = stitch([str(logs)], fh, Options(format="jsonl"))
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in out.read_bytes().splitlines():
        rec = json.loads(line)
        if rec["trace_id"] is not None:
            traces[rec["trace_id"]].append(rec)
    return summary, traces


def _assert_chain(traces: dict[str, list[dict[str, Any]]]) -> None:
    """Each trace the chain, in causal order: every callee's lines between
    its caller's call and answer, its span under the caller's, inferred."""
    assert len(traces) == REQUESTS
    for rows in traces.values():
        said = [(r["service"], r["record"]["message"][-30:]) for r in rows]
        assert [r["service"] for r in rows] == [
            "storefront", "storefront", "stock", "stock", "warehouse", "warehouse",
            "stock", "stock", "storefront", "storefront",
        ], said  # fmt: skip
        span = {r["service"]: r["span_id"] for r in rows}
        for caller, callee in itertools.pairwise(CHAIN):
            for r in rows:
                if r["service"] == callee:
                    assert r["parent_span_id"] == span[caller], said
                    assert r["parent_inferred"] is True, r
        assert rows[0]["parent_span_id"] is None


def test_services_sharing_one_file_are_told_apart(tmp_path: Path) -> None:
    logs = _run(tmp_path, {}, one_file=True)
    assert [p.name for p in logs.iterdir()] == ["app.log"]
    text = (logs / "app.log").read_text()
    assert "resource.service.name=stock" in text and "parent" not in text
    summary, traces = _stitched(logs)
    assert set(summary.offsets_ms) == set(CHAIN)
    for service in CHAIN:
        assert abs(summary.offsets_ms[service]) < 1.0, summary.offsets_ms
    _assert_chain(traces)
    # The IDs a line names are shown in the trace's heading, not again in its message.
    text = io.BytesIO()
    stitch([str(logs)], text, Options(format="text"))
    shown = [line for line in text.getvalue().decode().splitlines() if "storefront asked" in line]
    assert len(shown) == REQUESTS
    assert all("trace_id=" not in line and "span_id=" not in line for line in shown), shown[0]
    assert "[resource.service.name=storefront trace_sampled=True] - storefront asked" in shown[0]


def test_a_shifted_clock_is_found(tmp_path: Path) -> None:
    logs = _run(tmp_path, {"stock": 30.0}, one_file=False)
    summary, traces = _stitched(logs)
    offsets = summary.offsets_ms
    assert set(offsets) == set(CHAIN)
    # Within 1 ms: times to the millisecond put the estimates on a half-millisecond
    # grid, and each hop leans the same way (the request takes longer to reach its
    # callee's first line than the answer takes back), so warehouse, two hops
    # down, can come out at exactly 1.0 on a loaded host.
    assert abs(offsets["stock"] - offsets["storefront"] - 30.0) <= 1.0, offsets
    assert abs(offsets["warehouse"] - offsets["storefront"]) <= 1.0, offsets
    _assert_chain(traces)


def test_a_flask_service_under_gunicorn(tmp_path: Path) -> None:
    """storefront (FastAPI under uvicorn) calls stock (Flask under gunicorn,
    two sync workers, its server span opened by hand), both in
    OpenTelemetry's format; stock's clock 30 ms ahead."""
    _write_apps(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    with (
        run_gunicorn("ot_flask:app", app_dir=tmp_path, args=("--workers", "2"),
                     log_path=tmp_path / "stock.out",
                     env=_env("stock", 30.0, logs / "stock-out.log")) as stock,
        run_uvicorn("ot_app:app", app_dir=tmp_path, args=("--log-level", "warning"),
                    log_path=tmp_path / "storefront.out",
                    env=_env("storefront", 0.0, logs / "storefront-out.log", stock.url + "/"))
        as storefront,
        httpx.Client(timeout=10) as client,
    ):  # fmt: skip
        for _ in range(REQUESTS):
            assert client.get(storefront.url + "/").status_code == 200
    summary, traces = _stitched(logs)
    offsets = summary.offsets_ms
    # Whole milliseconds bound the pair to whole milliseconds, and the
    # offset is the middle of that interval: a multiple of half a
    # millisecond, leaning by half the difference between the quickest
    # request in and answer out (gunicorn takes longer on the way in).
    low, high = summary.offset_bounds_ms["stock"]
    assert low <= 30.0 <= high, summary.offset_bounds_ms
    assert abs(offsets["stock"] - offsets["storefront"] - 30.0) <= 1.0, offsets
    assert len(traces) == REQUESTS
    for rows in traces.values():
        said = [r["record"]["message"].rsplit(" - ", 1)[-1] for r in rows]
        assert said == [
            "storefront asked", "calling the next service", "stock asked", "stock answers",
            "the next service answered", "storefront answers",
        ], said  # fmt: skip
        assert rows[2]["parent_span_id"] == rows[0]["span_id"], rows[2]
        assert rows[2]["parent_inferred"] is True
