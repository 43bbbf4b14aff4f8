"""Clock offsets and causal order on real servers that answer before they finish.

Five services on 127.0.0.1, each a real server in its own process, call each
other over real HTTP: ``gateway`` (FastAPI under uvicorn) calls ``catalog``
(FastAPI: a ``BackgroundTasks`` job and a ``StreamingResponse`` with a
background task, both running after the answer), ``orders`` (Flask under
gunicorn, sync worker) which calls ``stock`` (Django WSGI under gunicorn, with
a ``request_finished`` handler that runs after the body was written), and
``shop`` (Django ASGI under uvicorn, the same handler). Every service logs
through :func:`logtrace.configure_logging` to its own file; the files are
stitched.

- On one clock (one host): every offset applied is within 1 ms of zero.
- With some processes' clocks shifted by tens of milliseconds (``time.time``
  and ``time.time_ns`` moved before anything reads them, as a host whose clock
  is off would): each shift is recovered to within 1 ms.

Either way every trace comes out in causal order: each callee's lines after
the caller's line that made the call, and the lines its handler wrote before
answering ahead of the caller's line that got the answer (work after the
answer may come later: it did happen later).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import Server, run_gunicorn, run_uvicorn

from logtrace.stitch import Options, stitch

SKEW = """
import os
import sys
import time

_shift = float(os.environ.get("CLOCK_SHIFT_MS", "0")) / 1e3
if _shift and os.environ.get("CLOCK_SHIFT_HOW") == "records":
    # Only the time on log records: a record factory moves ``created``.
    import logging

    _make = logging.getLogRecordFactory()

    def _shifted(*args, **kwargs):
        record = _make(*args, **kwargs)
        record.created += _shift
        record.msecs = (record.created - int(record.created)) * 1000
        return record

    logging.setLogRecordFactory(_shifted)
elif _shift and os.environ.get("CLOCK_SHIFT_HOW") == "logging":
    # Only the function ``logging`` stamps records with, once logtrace is loaded.
    import logtrace.asgi, logtrace.httpx, logtrace.requests, logtrace.wsgi  # noqa: E401, F401

    if sys.version_info >= (3, 13):
        _time_ns, _shift_ns = time.time_ns, round(_shift * 1e9)
        time.time_ns = lambda: _time_ns() + _shift_ns
    else:
        _time = time.time
        time.time = lambda: _time() + _shift
elif _shift:
    _time, _time_ns, _shift_ns = time.time, time.time_ns, round(_shift * 1e9)
    time.time = lambda: _time() + _shift
    time.time_ns = lambda: _time_ns() + _shift_ns
"""

GATEWAY = """
import skewclock  # noqa: F401 (first: this process's clock, shifted if asked)
import logging
import os

from fastapi import FastAPI

from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware
from logtrace.httpx import AsyncClient

configure_logging("gateway", filename=os.environ["LOG_FILE"])
log = logging.getLogger("gateway")
app = FastAPI()
app.add_middleware(TraceMiddleware)
CALLS = (
    ("catalog items", os.environ["CATALOG"] + "/items/{n}"),
    ("catalog stream", os.environ["CATALOG"] + "/stream/{n}"),
    ("orders", os.environ["ORDERS"] + "/orders/{n}"),
    ("shop", os.environ["SHOP"] + "/shop/{n}/"),
)


@app.get("/checkout/{n}")
async def checkout(n: int) -> dict[str, int]:
    log.info("checkout start")
    async with AsyncClient() as client:
        for name, url in CALLS:
            log.info("calling %s", name)
            answer = await client.get(url.format(n=n))
            log.info("%s answered %s", name, answer.status_code)
    log.info("checkout done")
    return {"n": n}
"""

CATALOG = """
import skewclock  # noqa: F401
import asyncio
import logging
import os

from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware

configure_logging("catalog", filename=os.environ["LOG_FILE"])
log = logging.getLogger("catalog")
app = FastAPI()
app.add_middleware(TraceMiddleware)


async def refresh(n: int) -> None:
    await asyncio.sleep(0.015)
    log.info("background refresh done %s", n)


@app.get("/items/{n}")
async def item(n: int, tasks: BackgroundTasks) -> dict[str, int]:
    log.info("item lookup %s", n)
    tasks.add_task(refresh, n)
    return {"n": n}


@app.get("/stream/{n}")
async def stream(n: int) -> StreamingResponse:
    log.info("stream start %s", n)

    async def body():
        for i in range(3):
            yield f"chunk {i}\\n".encode()

    return StreamingResponse(body(), background=BackgroundTask(refresh, n))
"""

ORDERS = """
import skewclock  # noqa: F401
import logging
import os

from flask import Flask

from logtrace import configure_logging
from logtrace.requests import Session
from logtrace.wsgi import WSGITraceMiddleware

configure_logging("orders", filename=os.environ["LOG_FILE"])
log = logging.getLogger("orders")
app = Flask("orders")
app.wsgi_app = WSGITraceMiddleware(app.wsgi_app)
session = Session()


@app.route("/orders/<int:n>")
def order(n: int) -> dict[str, int]:
    log.info("order placed %s", n)
    log.info("calling stock")
    answer = session.get(os.environ["STOCK"] + f"/stock/{n}/")
    log.info("stock answered %s", answer.status_code)
    return {"n": n}
"""

DJANGO = """
import skewclock  # noqa: F401
import logging
import os
import time

import django
from django.conf import settings
from django.core.signals import request_finished
from django.http import JsonResponse
from django.urls import path

from logtrace import configure_logging

NAME = os.environ["SERVICE"]
log = logging.getLogger(NAME)


def lookup(request, n):
    log.info("%s lookup %s", NAME, n)
    return JsonResponse({"n": n})


def finished(sender, **kwargs):
    time.sleep(0.005)  # closing connections, flushing caches: after the body went out
    log.info("request finished")


urlpatterns = [path("shop/<int:n>/", lookup), path("stock/<int:n>/", lookup)]
settings.configure(
    DEBUG=False,
    SECRET_KEY="logtrace-tests",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    LOGGING_CONFIG=None,
    USE_TZ=True,
)
django.setup()
request_finished.connect(finished)
configure_logging(NAME, filename=os.environ["LOG_FILE"])

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

from logtrace.asgi import TraceMiddleware  # noqa: E402
from logtrace.wsgi import WSGITraceMiddleware  # noqa: E402

asgi = TraceMiddleware(get_asgi_application())
wsgi = WSGITraceMiddleware(get_wsgi_application())
"""

APP_LOGGERS = {"gateway", "catalog", "orders", "stock", "shop"}
AFTER_ANSWER = ("background", "request finished")
"""What the apps log once the caller may already have its answer."""
CHECKOUTS = 25


def serve(tmp: Path, shifts: dict[str, float], how: str = "process") -> dict[str, Path]:
    """Run the five services, send the checkouts, return each service's log file.

    ``how``: ``"process"`` shifts every clock function of a shifted service
    before anything reads one; ``"logging"`` only the one :mod:`logging`
    reads, after logtrace is imported."""
    for name, text in (
        ("skewclock", SKEW),
        ("gateway", GATEWAY),
        ("catalog", CATALOG),
        ("orders", ORDERS),
        ("djapp", DJANGO),
    ):
        (tmp / f"{name}.py").write_text(text, encoding="utf-8")
    logs = {name: tmp / f"{name}.jsonl" for name in APP_LOGGERS}

    def env(name: str, **more: str) -> dict[str, str]:
        return {
            "LOG_FILE": str(logs[name]),
            "SERVICE": name,
            "CLOCK_SHIFT_MS": str(shifts.get(name, 0.0)),
            "CLOCK_SHIFT_HOW": how,
            **more,
        }

    with ExitStack() as stack:

        def start(server: Iterator[Server]) -> str:
            return stack.enter_context(server).url  # type: ignore[arg-type]

        quiet = ("--log-level", "warning", "--no-access-log")
        stock = start(run_gunicorn("djapp:wsgi", app_dir=tmp, env=env("stock"), access_log=False))
        orders = start(
            run_gunicorn(
                "orders:app", app_dir=tmp, env=env("orders", STOCK=stock), access_log=False
            )
        )
        catalog = start(run_uvicorn("catalog:app", app_dir=tmp, env=env("catalog"), args=quiet))
        shop = start(run_uvicorn("djapp:asgi", app_dir=tmp, env=env("shop"), args=quiet))
        urls = {"CATALOG": catalog, "ORDERS": orders, "SHOP": shop}
        gateway = start(
            run_uvicorn("gateway:app", app_dir=tmp, env=env("gateway", **urls), args=quiet)
        )
        with httpx.Client(timeout=10) as client:
            for n in range(CHECKOUTS):
                assert client.get(f"{gateway}/checkout/{n}").status_code == 200
        time.sleep(0.3)  # the last background jobs
    return logs


def stitched(logs: dict[str, Path]) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    out = io.BytesIO()
    summary = stitch([str(p) for p in logs.values()], out, Options(format="jsonl"))
    traces: dict[str, list[dict[str, Any]]] = {}
    for line in out.getvalue().splitlines():
        obj = json.loads(line)
        if obj.get("trace_id"):
            traces.setdefault(obj["trace_id"], []).append(obj)
    return summary, traces


def causal_errors(lines: list[dict[str, Any]]) -> list[str]:
    """Callee lines before the caller's call, or handler lines after its answer."""
    records = [o.get("record") or {} for o in lines]
    children: dict[str, list[str]] = {}
    for o in lines:
        if o.get("parent_span_id"):
            children.setdefault(o["parent_span_id"], [])
            if o["span_id"] not in children[o["parent_span_id"]]:
                children[o["parent_span_id"]].append(o["span_id"])

    def subtree(span: str) -> set[str]:
        found, todo = set(), [span]
        while todo:
            s = todo.pop()
            if s not in found:
                found.add(s)
                todo.extend(children.get(s, []))
        return found

    errors = []
    for rec, o in zip(records, lines, strict=True):
        if rec.get("span.kind") != "client":
            continue
        url = rec.get("url.full", "")
        caller = o["parent_span_id"]
        name = next(
            n for key, n in (("/items/", "catalog items"), ("/stream/", "catalog stream"),
                             ("/orders/", "orders"), ("/shop/", "shop"), ("/stock/", "stock"))
            if key in url
        )  # fmt: skip
        at = {
            message: i
            for i, (r, x) in enumerate(zip(records, lines, strict=True))
            if x.get("span_id") == caller
            for message in [r.get("message")]
            if message in (f"calling {name}", f"{name} answered 200")
        }
        call, answer = at[f"calling {name}"], at[f"{name} answered 200"]
        inside = subtree(o["span_id"]) - {o["span_id"]}
        for i, (r, x) in enumerate(zip(records, lines, strict=True)):
            if x.get("span_id") not in inside:
                continue
            message = str(r.get("message"))
            if i < call:
                errors.append(f"{message!r} before 'calling {name}'")
            handler = r.get("logger") in APP_LOGGERS and not message.startswith(AFTER_ANSWER)
            if handler and i > answer:
                errors.append(f"{message!r} after '{name} answered'")
    return errors


def check(logs: dict[str, Path], shifts: dict[str, float]) -> Any:
    summary, traces = stitched(logs)
    assert len(traces) == CHECKOUTS
    for name in APP_LOGGERS:
        want = shifts.get(name, 0.0) - shifts.get("gateway", 0.0)
        assert summary.offsets_ms[name] == pytest.approx(want, abs=1.0), (name, summary)
        low, high = summary.offset_bounds_ms[name]
        assert low <= summary.offsets_ms[name] <= high, (name, summary)
    assert summary.uncorrected == []
    for trace, lines in traces.items():
        assert causal_errors(lines) == [], trace
    return summary


def test_one_clock_applies_no_offset(tmp_path: Path) -> None:
    logs = serve(tmp_path, {})
    raw = [json.loads(line) for line in logs["catalog"].read_text().splitlines()]
    served = [r for r in raw if r.get("span.kind") == "server"]
    # The span records say when the answer went out, before the background job ended.
    assert served and all(0 < r["response_ms"] < r["duration_ms"] for r in served)
    assert all(r["host.name"] for r in served)
    summary = check(logs, {})
    assert all(summary.offsets_ms[name] == 0.0 for name in APP_LOGGERS)


def test_shifted_clocks_are_corrected(tmp_path: Path) -> None:
    shifts = {"catalog": 30.0, "orders": -30.0, "shop": 27.0}
    check(serve(tmp_path, shifts), shifts)


def test_a_shifted_logging_clock_moves_span_records_too(tmp_path: Path) -> None:
    """Span records read the clock the service's lines are stamped with, however
    the process's clock was moved, so the stitcher sees one clock per service."""
    shifts = {"catalog": -30.0, "orders": 30.0, "shop": -28.0}
    check(serve(tmp_path, shifts, how="logging"), shifts)


def test_log_records_moved_alone_are_corrected(tmp_path: Path) -> None:
    shifts = {"catalog": 30.0, "orders": -30.0, "shop": 27.0}
    check(serve(tmp_path, shifts, how="records"), shifts)
