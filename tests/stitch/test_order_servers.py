"""Order on real services: calls over HTTP on 127.0.0.1, one host clock.

``front`` (FastAPI under uvicorn, JSON lines to the microsecond) calls, for
every checkout: ``worker`` (FastAPI under uvicorn) on an endpoint that answers
and then runs a ``BackgroundTasks`` job, and on one that streams its body;
then, in parallel, ``legacy`` (Flask under gunicorn with a sync worker: its
JSON lines to the microsecond interleaved with gunicorn's own access lines,
to the second) and ``ledger`` (Starlette under uvicorn, logging's ``asctime``
text lines, to the millisecond); then the Django example project under
uvicorn (ASGI). Every trace of the stitch must be in causal
order, and ``logtrace grep`` must print each trace as the stitch does.
"""

from __future__ import annotations

import json
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from _stitchutil import REPO, cli, stitch_jsonl
from servers import run_gunicorn, run_uvicorn

from logtrace.stitch import grep
from logtrace.stitch._clocks import ClockModel
from logtrace.stitch._grep_order import order_matches
from logtrace.stitch._model import Source
from logtrace.stitch._timestamps import parse_timestamp

pytestmark = pytest.mark.timeout(180)

WORKER = """
import asyncio, logging, os, time
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware

configure_logging("worker", filename=os.environ["LOG_FILE"])
log = logging.getLogger("worker.jobs")
api = FastAPI()

def later(n: int) -> None:
    time.sleep(0.004)
    log.info("background job done", extra={"n": n})

@api.get("/job")
async def job(tasks: BackgroundTasks) -> dict[str, bool]:
    log.info("job accepted")
    tasks.add_task(later, 1)
    return {"accepted": True}

@api.get("/stream")
async def stream() -> StreamingResponse:
    log.info("stream opened")
    async def body():
        for i in range(3):
            log.info("chunk sent", extra={"i": i})
            yield b"x" * 64
            await asyncio.sleep(0.001)
    return StreamingResponse(body())

app = TraceMiddleware(api)
"""

LEGACY = """
import logging, sys
from flask import Flask
from logtrace import configure_logging
from logtrace.wsgi import WSGITraceMiddleware

# gunicorn keeps its own access lines (text, to the second); the app's go out as JSON.
configure_logging("legacy", stream=sys.stdout, server_loggers=("gunicorn.error",))
log = logging.getLogger("legacy.price")
flask_app = Flask("legacy")

@flask_app.get("/price")
def price() -> dict[str, float]:
    log.info("price asked")
    log.info("price computed")
    return {"price": 2.5}

app = WSGITraceMiddleware(flask_app)
"""

LEDGER = """
import asyncio, logging, os
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from logtrace.asgi import TraceMiddleware
from logtrace.stdlib import TraceContextFilter

handler = logging.FileHandler(os.environ["LOG_FILE"])
handler.addFilter(TraceContextFilter())
handler.setFormatter(logging.Formatter(
    "%(asctime)s %(levelname)s service=ledger trace_id=%(trace_id)s "
    "span_id=%(span_id)s parent_span_id=%(parent_span_id)s %(message)s"))
root = logging.getLogger()
root.handlers[:] = [handler]
root.setLevel(logging.INFO)
log = logging.getLogger("ledger")

async def entry(request):
    log.info("entry written")
    await asyncio.sleep(0.002)
    log.info("entry committed")
    return JSONResponse({"ok": True})

app = TraceMiddleware(Starlette(routes=[Route("/entry", entry)]))
"""

FRONT = """
import asyncio, logging, os
from fastapi import FastAPI
import logtrace.httpx
from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware

configure_logging("front", filename=os.environ["LOG_FILE"])
log = logging.getLogger("front.checkout")
api = FastAPI()

@api.post("/checkout")
async def checkout() -> dict[str, bool]:
    log.info("checkout start")
    async with logtrace.httpx.AsyncClient(timeout=10) as client:
        await client.get(os.environ["WORKER"] + "/job")
        log.info("job queued")
        async with client.stream("GET", os.environ["WORKER"] + "/stream") as r:
            await r.aread()
        log.info("stream read")
        await asyncio.gather(
            client.get(os.environ["LEGACY"] + "/price"),
            client.get(os.environ["LEDGER"] + "/entry"),
        )
        await client.get(os.environ["SHOP"] + "/items/7")
    log.info("checkout done")
    return {"ok": True}

app = TraceMiddleware(api)
"""

ACCESS_FORMAT = '%(h)s - - %(t)s "%(r)s" %(s)s traceparent=%({traceparent}i)s'
CHECKOUTS = 6


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("order_servers")
    for name, text in (
        ("worker", WORKER),
        ("legacy", LEGACY),
        ("ledger", LEDGER),
        ("front", FRONT),
    ):
        (root / f"{name}_app.py").write_text(textwrap.dedent(text))
    names = ("worker", "legacy", "ledger", "django-shop", "front")
    paths = {name: root / f"{name}.log" for name in names}
    with ExitStack() as stack:
        worker = stack.enter_context(
            run_uvicorn("worker_app:app", app_dir=root, log_path=root / "worker.out",
                        env={"LOG_FILE": str(paths["worker"])})
        )  # fmt: skip
        legacy = stack.enter_context(
            run_gunicorn("legacy_app:app", app_dir=root, log_path=paths["legacy"],
                         args=("--access-logformat", ACCESS_FORMAT))
        )  # fmt: skip
        ledger = stack.enter_context(
            run_uvicorn("ledger_app:app", app_dir=root, log_path=root / "ledger.out",
                        env={"LOG_FILE": str(paths["ledger"])})
        )  # fmt: skip
        shop = stack.enter_context(
            run_uvicorn("shop.asgi:application", app_dir=REPO / "examples" / "django_project",
                        log_path=paths["django-shop"])
        )  # fmt: skip
        front = stack.enter_context(
            run_uvicorn("front_app:app", app_dir=root, log_path=root / "front.out",
                        env={"LOG_FILE": str(paths["front"]), "WORKER": worker.url,
                             "LEGACY": legacy.url, "LEDGER": ledger.url,
                             "SHOP": shop.url})
        )  # fmt: skip
        for _ in range(CHECKOUTS):
            assert httpx.post(front.url + "/checkout", timeout=20).status_code == 200
        _wait_for(paths["worker"], "background job done", CHECKOUTS)
        legacy.wait_for_log("traceparent=00-", count=CHECKOUTS)
    return [str(p) for p in paths.values()]


def _wait_for(path: Path, text: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while path.read_text().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times"
        time.sleep(0.05)


def _time(record: dict[str, Any]) -> float | None:
    raw = record["record"]
    value = raw.get("timestamp") if isinstance(raw, dict) else None
    return None if value is None else parse_timestamp(value)


def _by_trace(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    traces: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("trace_id"):
            traces.setdefault(r["trace_id"], []).append(r)
    return traces


def test_every_trace_is_in_causal_order(logs: list[str], tmp_path: Path) -> None:
    records = stitch_jsonl(tmp_path / "o.jsonl", "-q", *logs)
    traces = _by_trace(records)
    checked = 0
    for rows in traces.values():
        assert {r["service"] for r in rows} >= {
            "front",
            "worker",
            "legacy",
            "ledger",
            "django-shop",
        }
        for n, client in enumerate(rows):
            rec = client["record"]
            if not isinstance(rec, dict) or rec.get("span.kind") != "client":
                continue
            send = parse_timestamp(rec["span.start"])
            assert send is not None
            callee = [r for r in rows if r["parent_span_id"] == client["span_id"]]
            server = [
                r
                for r in callee
                if isinstance(r["record"], dict) and r["record"].get("span.kind") == "server"
            ]
            returned = _time(server[0]) if server else None
            answered = None
            if server and "response_ms" in server[0]["record"]:
                start = parse_timestamp(server[0]["record"]["span.start"])
                assert start is not None
                answered = start + server[0]["record"]["response_ms"] / 1000
            for r in callee:
                t = _time(r)
                position = rows.index(r)
                # A callee's lines never come before the caller's lines written before the call ...
                caller_before = [
                    i for i, c in enumerate(rows)
                    if c["service"] == "front" and (ct := _time(c)) is not None and ct < send
                ]  # fmt: skip
                assert position > max(caller_before)
                # ... nor after the record of the answer, unless written after the answer.
                late = t is not None and (
                    (returned is not None and t >= returned)
                    or (answered is not None and t > answered)
                )
                # The job runs after the answer by construction (BackgroundTasks).
                late = late or r["record"].get("message") == "background job done"
                if not late:
                    assert position < n, (r["record"], client["record"])
                checked += 1
    assert checked >= CHECKOUTS * 6


def test_access_lines_to_the_second_follow_their_request(logs: list[str], tmp_path: Path) -> None:
    records = stitch_jsonl(tmp_path / "o.jsonl", "-q", *logs)
    for rows in _by_trace(records).values():
        access = [i for i, r in enumerate(rows) if "traceparent=00-" in json.dumps(r["record"])]
        assert len(access) == 1
        start = next(i for i, r in enumerate(rows) if "checkout start" in json.dumps(r["record"]))
        asked = next(i for i, r in enumerate(rows) if "price asked" in json.dumps(r["record"]))
        assert start < asked < access[0]


def test_grep_orders_every_trace_as_stitch_does(logs: list[str], tmp_path: Path) -> None:
    """The same rules on the same clocks: grep's order of each trace is the stitch's."""
    records = stitch_jsonl(tmp_path / "o.jsonl", "-q", *logs)
    offsets = {r["service"]: r["offset_ms"] for r in records if r.get("trace_id")}
    clocks = {svc: ClockModel(offset_s=ms / 1000) for svc, ms in offsets.items()}
    sources = [Source(p, p) for p in logs]
    for trace, rows in _by_trace(records).items():
        matches = grep([trace], sources, [])
        got = [(logs[m.file], m.line) for m in order_matches(matches, logs, logs, clocks)]
        assert got == [(r["file"], r["line"]) for r in rows]


def test_grep_prints_every_trace_as_stitch_does(logs: list[str], tmp_path: Path) -> None:
    """``logtrace grep`` end to end. grep estimates clocks from one trace's
    calls, stitch from every trace's: the two agree when the logs show one
    clock, which is what this host has. Under load a service that writes its
    span record late on many calls can look a little off to the stitch's
    estimate; both then run without skew correction, the rules alone."""
    records = stitch_jsonl(tmp_path / "o.jsonl", "-q", *logs)
    applied = {r["service"]: r["offset_ms"] for r in records if r.get("trace_id")}
    flags: tuple[str, ...] = ()
    if any(abs(ms) > 0 for ms in applied.values()):
        flags = ("--no-skew-correction",)
        records = stitch_jsonl(tmp_path / "raw.jsonl", "-q", *flags, *logs)
    for trace, rows in _by_trace(records).items():
        proc = cli("grep", *flags, "-H", "-n", trace, *logs)
        assert proc.returncode == 0
        got = []
        for raw in proc.stdout.splitlines():
            name, number, _ = raw.split(b":", 2)
            got.append((name.decode(), int(number)))
        assert got == [(r["file"], r["line"]) for r in rows]
