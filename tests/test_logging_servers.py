"""Real uvicorn and gunicorn servers: every line of a request carries its trace.

Each test starts a real server on 127.0.0.1 from an application module that
calls ``configure_logging`` at import, sends one good request and one that
fails, both with a ``traceparent``, and reads what the server wrote: the
handler's lines, the server's access line and its exception line carry the
request's IDs, and the exception is logged exactly once, with its traceback.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
from servers import Server, _run_subprocess, run_gunicorn, run_uvicorn

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"
HEADERS_OK = {"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"}
HEADERS_FAIL = {"traceparent": f"00-{OTHER_TRACE}-{CALLER_SPAN}-01"}

HANDLERS = """
import logging
import structlog

log = structlog.get_logger("app.handlers")
lib = logging.getLogger("app.lib")


def work():
    log.info("handling", user_id=42)
    lib.info("stdlib line")


def fail():
    log.info("about to fail")
    raise ValueError("boom in handler")
"""

STARLETTE_APP = """
from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import handlers

configure_logging("shop")


async def ok(request):
    handlers.work()
    return PlainTextResponse("ok")


async def fail(request):
    handlers.fail()


app = TraceMiddleware(Starlette(routes=[Route("/ok", ok), Route("/fail", fail)]))
"""

FASTAPI_APP = """
from fastapi import FastAPI
from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware

import handlers

configure_logging("shop")
app = FastAPI()
app.add_middleware(TraceMiddleware)


@app.get("/ok")
def ok():
    handlers.work()
    return "ok"


@app.get("/fail")
async def fail():
    handlers.fail()
"""

FLASK_APP = """
from flask import Flask
from logtrace import configure_logging
from logtrace.wsgi import WSGITraceMiddleware

import handlers

configure_logging("shop")
app = Flask("shop")
app.wsgi_app = WSGITraceMiddleware(app.wsgi_app)


@app.get("/ok")
def ok():
    handlers.work()
    return "ok"


@app.get("/fail")
def fail():
    handlers.fail()
"""

WSGI_APP = """
from logtrace import configure_logging
from logtrace.wsgi import WSGITraceMiddleware

import handlers

configure_logging("shop")


def plain(environ, start_response):
    if environ["PATH_INFO"] == "/fail":
        handlers.fail()
    handlers.work()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


app = WSGITraceMiddleware(plain)
"""

UVICORN_RUN_SCRIPT = """
import sys

import uvicorn
from logtrace import configure_logging

configure_logging("shop")

from app import app  # noqa: E402

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None)
"""


def write_app(tmp_path: Path, source: str) -> Path:
    (tmp_path / "handlers.py").write_text(textwrap.dedent(HANDLERS))
    (tmp_path / "app.py").write_text(textwrap.dedent(source))
    return tmp_path


def exercise(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ok = client.get("/ok", headers=HEADERS_OK)
        assert ok.status_code == 200
        assert ok.text.strip('"') == "ok"
        fail = client.get("/fail", headers=HEADERS_FAIL)
        assert fail.status_code == 500


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def check(text: str, *, access_logger: str, exception_logger: str) -> None:
    """Handler, access and exception lines carry the IDs; one traceback only."""
    lines = json_lines(text)
    assert lines, text
    assert all(line["service"] == "shop" for line in lines)

    ok = [line for line in lines if line.get("trace_id") == TRACE_ID]
    messages = {line["message"]: line for line in ok}
    span = messages["handling"]["span_id"]
    assert messages["handling"]["parent_span_id"] == CALLER_SPAN
    assert messages["handling"]["user_id"] == 42
    assert messages["stdlib line"]["span_id"] == span
    access = [line for line in ok if line["logger"] == access_logger]
    assert len(access) == 1, ok
    assert access[0]["span_id"] == span
    assert "/ok" in access[0]["message"]
    (record,) = [line for line in ok if line["logger"] == "logtrace.span"]
    assert record["span_id"] == span
    assert record["span.kind"] == "server"
    assert record["http.response.status_code"] == 200
    assert record["parent_span_id"] == CALLER_SPAN

    failed = [line for line in lines if line.get("trace_id") == OTHER_TRACE]
    assert "about to fail" in {line["message"] for line in failed}
    (error,) = [line for line in failed if "exc_info" in line]
    assert error["logger"] == exception_logger
    assert error["level"] == "ERROR"
    assert "Traceback (most recent call last)" in error["exc_info"]
    assert "ValueError: boom in handler" in error["exc_info"]
    (fail_access,) = [line for line in failed if line["logger"] == access_logger]
    assert "/fail" in fail_access["message"]
    (fail_record,) = [line for line in failed if line["logger"] == "logtrace.span"]
    assert fail_record["http.response.status_code"] == 500
    assert fail_record["error.type"] in ("ValueError", "500")
    assert error["span_id"] == fail_record["span_id"]
    assert text.count("Traceback (most recent call last)") == 1, text
    assert text.count("ValueError: boom in handler") == 1, text


class TestUvicorn:
    def test_command_line_with_starlette(self, tmp_path: Path) -> None:
        with run_uvicorn("app:app", app_dir=write_app(tmp_path, STARLETTE_APP)) as server:
            exercise(server)
        check(server.logs(), access_logger="uvicorn.access", exception_logger="uvicorn.error")

    def test_command_line_with_fastapi_add_middleware(self, tmp_path: Path) -> None:
        with run_uvicorn("app:app", app_dir=write_app(tmp_path, FASTAPI_APP)) as server:
            exercise(server)
        check(server.logs(), access_logger="uvicorn.access", exception_logger="uvicorn.error")

    def test_uvicorn_run_with_log_config_none(self, tmp_path: Path) -> None:
        app_dir = write_app(tmp_path, STARLETTE_APP)
        script = app_dir / "serve.py"
        script.write_text(textwrap.dedent(UVICORN_RUN_SCRIPT))
        command = [sys.executable, str(script), "{port}"]
        with _run_subprocess(command, 2, app_dir / "run.log", None) as server:
            exercise(server)
        text = server.logs()
        check(text, access_logger="uvicorn.access", exception_logger="uvicorn.error")
        assert any("Uvicorn running" in line["message"] for line in json_lines(text))


class TestGunicorn:
    def test_sync_worker_with_flask(self, tmp_path: Path) -> None:
        with run_gunicorn("app:app", app_dir=write_app(tmp_path, FLASK_APP)) as server:
            exercise(server)
        # Flask handles the exception itself and logs it on the app's logger.
        check(server.logs(), access_logger="gunicorn.access", exception_logger="shop")

    def test_sync_worker_with_a_plain_wsgi_app(self, tmp_path: Path) -> None:
        with run_gunicorn("app:app", app_dir=write_app(tmp_path, WSGI_APP)) as server:
            exercise(server)
        check(server.logs(), access_logger="gunicorn.access", exception_logger="gunicorn.error")

    def test_uvicorn_worker_with_starlette(self, tmp_path: Path) -> None:
        # The worker moved to the uvicorn-worker package; uvicorn still ships
        # the deprecated original.
        worker = (
            "uvicorn_worker.UvicornWorker"
            if importlib.util.find_spec("uvicorn_worker")
            else "uvicorn.workers.UvicornWorker"
        )
        app_dir = write_app(tmp_path, STARLETTE_APP)
        args = ("--worker-class", worker)
        with run_gunicorn("app:app", app_dir=app_dir, args=args) as server:
            exercise(server)
        check(server.logs(), access_logger="uvicorn.access", exception_logger="uvicorn.error")

    def test_preload_configures_in_the_master_before_forking(self, tmp_path: Path) -> None:
        app_dir = write_app(tmp_path, FLASK_APP)
        with run_gunicorn("app:app", app_dir=app_dir, args=("--preload",)) as server:
            exercise(server)
        check(server.logs(), access_logger="gunicorn.access", exception_logger="shop")
