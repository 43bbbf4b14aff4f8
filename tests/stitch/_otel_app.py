"""The head of a FastAPI service traced by OpenTelemetry, as a source text.

Tests write it, followed by their own routes, to a module that uvicorn runs.
The service logs through OpenTelemetry's logging instrumentation to a
python-json-logger file (trace and span IDs, no parent), its logging clock
shifted by a given number of milliseconds; the head defines ``SERVICE``,
``log``, ``api`` (the FastAPI app) and ``client`` (an ``httpx.AsyncClient``),
and imports ``asyncio``, ``os``, ``random``, ``propagate`` and
``BackgroundTasks``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

__all__ = ["HEAD", "app_env"]

HEAD = textwrap.dedent(
    """
    import asyncio, logging, os, random

    import httpx
    from fastapi import BackgroundTasks, FastAPI
    from opentelemetry import propagate, trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.logging import LoggingInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from pythonjsonlogger.json import JsonFormatter

    SERVICE = os.environ["APP_SERVICE"]
    SHIFT = float(os.environ["APP_SHIFT_MS"]) / 1000
    trace.set_tracer_provider(TracerProvider(resource=Resource.create({"service.name": SERVICE})))
    LoggingInstrumentor().instrument(set_logging_format=False, inject_trace_context=True)


    class Shifted(logging.Filter):
        def filter(self, record):
            record.created += SHIFT
            record.msecs = (record.created % 1) * 1000  # for asctime
            return True


    handler = logging.FileHandler(os.environ["APP_LOG"])
    handler.setFormatter(JsonFormatter(
        "%(levelname)s %(message)s %(otelTraceID)s %(otelSpanID)s %(otelServiceName)s",
        timestamp=True,
    ))
    handler.addFilter(Shifted())
    log = logging.getLogger(SERVICE)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    api = FastAPI()
    client = httpx.AsyncClient()
    """
)


def app_env(service: str, shift_ms: float, log: Path) -> dict[str, str]:
    """The environment :data:`HEAD` reads."""
    return {"APP_SERVICE": service, "APP_SHIFT_MS": str(shift_ms), "APP_LOG": str(log)}
