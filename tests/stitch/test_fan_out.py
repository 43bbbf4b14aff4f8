"""A fan-out in logs without parent IDs: one request's two calls to one service side by side.

``gateway`` (FastAPI) calls ``accounts`` (Django under uvicorn, ASGI,
traced by OpenTelemetry's Django instrumentation) twice at once
(``asyncio.gather``); each accounts request calls ``ledger`` (FastAPI).
Every service logs through OpenTelemetry's logging instrumentation (trace
and span IDs, no parent), all on one clock.

The two ledger spans run side by side, and in about half the traces each
fits inside both accounts requests' gaps between "calling ledger" and
"ledger answered". Chosen one callee at a time, both took the narrower gap,
and one accounts request was left with a call and no callee: 59 to 72
traces of 100 had a ledger span under the wrong request, or under the
other ledger span (a request seemed the other's own step). Matched one
call per gap, and a span in a gap of its own never taken for a step of
another, the tree is right in nearly all.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from _stitchutil import stitched_traces
from servers import run_uvicorn

pytest.importorskip("django")
pytest.importorskip("opentelemetry.instrumentation.django")
pytest.importorskip("opentelemetry.instrumentation.httpx")
pytest.importorskip("opentelemetry.instrumentation.fastapi")
pytest.importorskip("pythonjsonlogger")
pytestmark = pytest.mark.timeout(240)

LOGGING = textwrap.dedent(
    """
    import logging, os

    from opentelemetry import trace
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from pythonjsonlogger.json import JsonFormatter

    SERVICE = os.environ["FO_SERVICE"]
    trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": SERVICE})))
    LoggingInstrumentor().instrument(set_logging_format=False, inject_trace_context=True)
    handler = logging.FileHandler(os.environ["FO_LOG"])
    handler.setFormatter(JsonFormatter(
        "%(levelname)s %(message)s %(otelTraceID)s %(otelSpanID)s %(otelServiceName)s",
        timestamp=True,
    ))
    log = logging.getLogger(SERVICE)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    """
)

FASTAPI_APP = textwrap.dedent(
    """
    import asyncio, os, random

    import httpx
    from fastapi import FastAPI
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    from fo_logging import SERVICE, log

    HTTPXClientInstrumentor().instrument()
    api = FastAPI()
    client = httpx.AsyncClient(timeout=10)
    NEXT = os.environ.get("FO_NEXT", "")


    async def call(k):
        log.info("calling accounts #%d", k)
        (await client.get(NEXT + f"/balance?k={k}")).raise_for_status()
        log.info("accounts answered #%d", k)


    @api.get("/")
    async def serve(k: int = 1):
        if SERVICE == "gateway":
            log.info("gateway asked")
            await asyncio.sleep(random.uniform(0.001, 0.003))
            await asyncio.gather(call(1), call(2))
            log.info("gateway answers")
        else:
            log.info("ledger asked #%d", k)
            await asyncio.sleep(random.uniform(0.001, 0.003))
            log.info("ledger answers #%d", k)
        return {"ok": True}


    FastAPIInstrumentor.instrument_app(api)
    app = api
    """
)

DJANGO_APP = textwrap.dedent(
    """
    import asyncio, os, random

    import django
    import httpx
    from django.conf import settings
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    from fo_logging import log

    settings.configure(
        DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="x" * 50,
        MIDDLEWARE=[], INSTALLED_APPS=[],
    )
    DjangoInstrumentor().instrument()
    HTTPXClientInstrumentor().instrument()
    from django.core.asgi import get_asgi_application
    from django.http import JsonResponse
    from django.urls import path

    client = httpx.AsyncClient(timeout=10)
    NEXT = os.environ["FO_NEXT"]


    async def balance(request):
        k = int(request.GET["k"])
        log.info("accounts asked #%d", k)
        await asyncio.sleep(random.uniform(0.001, 0.003))
        log.info("calling ledger #%d", k)
        (await client.get(NEXT + f"/?k={k}")).raise_for_status()
        log.info("ledger answered #%d", k)
        await asyncio.sleep(random.uniform(0.001, 0.003))
        log.info("accounts answers #%d", k)
        return JsonResponse({"ok": True})


    urlpatterns = [path("balance", balance)]
    application = get_asgi_application()
    """
)

REQUESTS = 80


def _run(tmp_path: Path) -> Path:
    for name, text in (
        ("fo_logging", LOGGING),
        ("fo_fastapi", FASTAPI_APP),
        ("fo_django", DJANGO_APP),
    ):
        (tmp_path / f"{name}.py").write_text(text, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()

    def serve(app: str, service: str, after: str = "") -> Any:
        env = {"FO_SERVICE": service, "FO_LOG": str(logs / f"{service}.log"), "FO_NEXT": after}
        return run_uvicorn(app, app_dir=tmp_path, args=("--log-level", "warning"),
                           log_path=tmp_path / f"{service}.out", env=env)  # fmt: skip

    with (
        serve("fo_fastapi:app", "ledger") as ledger,
        serve("fo_django:application", "accounts", ledger.url) as accounts,
        serve("fo_fastapi:app", "gateway", accounts.url) as gateway,
        httpx.Client(timeout=10) as client,
    ):
        for _ in range(REQUESTS):
            assert client.get(gateway.url + "/").status_code == 200
    return logs


def test_each_call_of_a_fan_out_hangs_under_its_own_request(tmp_path: Path) -> None:
    logs = _run(tmp_path)
    summary, traces = stitched_traces(logs, tmp_path / "out.jsonl")
    assert set(summary.offsets_ms.values()) == {0.0}
    assert len(traces) == REQUESTS
    wrong = 0
    for trace in traces.values():
        span = {r["record"]["message"]: r["span_id"] for r in trace}
        parent = {r["record"]["message"]: r["parent_span_id"] for r in trace}
        for k in (1, 2):
            assert parent[f"accounts asked #{k}"] == span["gateway asked"]
        wrong += any(parent[f"ledger asked #{k}"] != span[f"accounts asked #{k}"] for k in (1, 2))
    # the documented limit: on a busy host a ledger span can fit a gap of
    # the gateway, or of the other request before its call, more narrowly
    # than its own call's gap (4 of 80 in one run of the suite; 59 to 72
    # of 100 before calls were matched one per caller span)
    assert wrong <= REQUESTS // 8, wrong


def test_a_captured_run_on_a_busy_host(tmp_path: Path) -> None:
    """A run of these services (gzipped) with the whole suite running: 10
    traces of 80 had a ledger span under the wrong caller, 8 of them both
    ledger spans under one accounts request (the second fitted the first
    request's gap after its own call more narrowly than its own call's
    gap). The request holding none takes one now. Left (the documented
    limit): 2 traces with a ledger span under the gateway, and 2 where a
    ledger span fits the other request's gap before its own call (4 ms
    wide): the narrowest pair of gaps swaps the two."""
    logs = Path(__file__).parent / "captured" / "fan_out_busy_host"
    _, traces = stitched_traces(logs, tmp_path / "out.jsonl")
    wrong = both_under_one = 0
    for trace in traces.values():
        span = {r["record"]["message"]: r["span_id"] for r in trace}
        parent = {r["record"]["message"]: r["parent_span_id"] for r in trace}
        ledger = [parent[f"ledger asked #{k}"] for k in (1, 2)]
        wrong += ledger != [span["accounts asked #1"], span["accounts asked #2"]]
        both_under_one += ledger[0] == ledger[1]
    assert both_under_one == 0
    assert wrong <= 4
