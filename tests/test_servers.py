"""The middleware under real servers: uvicorn and gunicorn on 127.0.0.1.

The servers' own access and exception log lines must carry the request's
trace, the 500 after an unhandled exception must carry the trace headers, and
bad headers sent on raw sockets must never produce an error or an echo.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import (
    Server,
    raw_request,
    run_gunicorn,
    run_uvicorn,
    run_uvicorn_thread,
    run_wsgi_threaded,
)

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"

TRACE_FILTER = '''
import logging
from logtrace import current

class TraceFilter(logging.Filter):
    """Puts the current trace ID on every record as ``trace``."""

    def filter(self, record):
        ctx = current()
        record.trace = ctx.trace_id if ctx else "-"
        return True
'''

ASGI_APP = '''
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from logtrace import current
from logtrace.asgi import TraceMiddleware


async def ok(request):
    return PlainTextResponse(current().trace_id)


async def boom(request):
    raise RuntimeError("boom in endpoint")


def make():
    return Starlette(routes=[Route("/ok", ok), Route("/boom", boom)])


wrapped = TraceMiddleware(make())
added = make()
added.add_middleware(TraceMiddleware)


async def raw(scope, receive, send):
    raise RuntimeError("boom in a raw ASGI app")


raw = TraceMiddleware(raw)
variants = {"wrap": wrapped, "add": added, "raw": raw}


async def app(scope, receive, send):
    """Dispatch /<variant>/... to one way of installing the middleware."""
    if scope["type"] == "lifespan":
        return await wrapped(scope, receive, send)
    variant, _, rest = scope["path"][1:].partition("/")
    scope = dict(scope, path="/" + rest, raw_path=("/" + rest).encode())
    await variants[variant](scope, receive, send)
'''

WSGI_APP = """
from logtrace import current
from logtrace.wsgi import WSGITraceMiddleware


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom in app")
    start_response("200 OK", [("Content-Type", "text/plain")])
    if path == "/file":
        return environ["wsgi.file_wrapper"](open(__file__, "rb"))
    if path == "/boom-body":
        def body():
            yield b"part"
            raise RuntimeError("boom in body")
        return body()
    return [current().trace_id.encode()]


application = WSGITraceMiddleware(app)
"""


def logging_config(loggers: list[str]) -> dict[str, Any]:
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "filters": ["trace"],
        "formatter": "plain",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"trace": {"()": "tracefilter.TraceFilter"}},
        "formatters": {"plain": {"format": "%(levelname)s %(name)s trace=%(trace)s %(message)s"}},
        "handlers": {"out": handler},
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {
            name: {"handlers": ["out"], "level": "INFO", "propagate": False} for name in loggers
        },
    }


def write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(textwrap.dedent(text), encoding="utf-8")


def traceparent(trace_id: str) -> str:
    return f"00-{trace_id}-{PARENT_ID}-01"


def trace_id_for(n: int) -> str:
    return f"{n:032x}"


@pytest.fixture(scope="module")
def uvicorn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("uvicorn")
    write(directory, "tracefilter.py", TRACE_FILTER)
    write(directory, "app_asgi.py", ASGI_APP)
    config = logging_config(["uvicorn", "uvicorn.access", "logtrace.span"])
    (directory / "logging.json").write_text(json.dumps(config))
    args = ("--log-config", str(directory / "logging.json"), "--no-server-header")
    with run_uvicorn("app_asgi:app", app_dir=directory, args=args) as server:
        yield server


class TestUvicorn:
    def test_access_line_carries_the_trace(self, uvicorn_server: Server) -> None:
        trace_id = trace_id_for(1)
        response = httpx.get(
            uvicorn_server.url + "/wrap/ok", headers={"traceparent": traceparent(trace_id)}
        )
        assert response.text == trace_id
        assert response.headers["traceresponse"].startswith(f"00-{trace_id}-")
        logs = uvicorn_server.wait_for_log("server GET /ok")
        assert re.search(f"INFO uvicorn.access trace={trace_id} .*GET /wrap/ok", logs)

    @pytest.mark.parametrize(("variant", "n"), [("wrap", 2), ("add", 3), ("raw", 4)])
    def test_500_has_headers_and_both_log_lines_carry_the_trace(
        self, uvicorn_server: Server, variant: str, n: int
    ) -> None:
        trace_id = trace_id_for(n)
        response = httpx.get(
            f"{uvicorn_server.url}/{variant}/boom", headers={"traceparent": traceparent(trace_id)}
        )
        assert response.status_code == 500
        assert response.headers["traceresponse"].startswith(f"00-{trace_id}-")
        logs = uvicorn_server.wait_for_log(f"ERROR uvicorn.error trace={trace_id}")
        assert re.search(f'trace={trace_id} .*GET /{variant}/boom HTTP/1.1" 500', logs)
        # Logged once, by the server, with its traceback; the span record names the type.
        lines = [line for line in logs.splitlines() if trace_id in line]
        assert [line.split(" trace=")[0] for line in lines].count("ERROR uvicorn.error") == 1
        assert any(line.startswith("INFO logtrace.span") and "server GET" in line for line in lines)

    def test_each_traceback_is_logged_once(self, uvicorn_server: Server) -> None:
        for n in (5, 6, 7):
            variant = ("wrap", "add", "raw")[n - 5]
            httpx.get(
                f"{uvicorn_server.url}/{variant}/boom",
                headers={"traceparent": traceparent(trace_id_for(n))},
            )
        logs = uvicorn_server.wait_for_log("Exception in ASGI application", count=6)
        for n in (5, 6, 7):
            assert logs.count(f"ERROR uvicorn.error trace={trace_id_for(n)}") == 1
        assert logs.count("Traceback (most recent call last)") == logs.count(
            "Exception in ASGI application"
        )


@pytest.fixture(scope="module", params=["sync", "gthread"])
def gunicorn_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("gunicorn")
    write(directory, "tracefilter.py", TRACE_FILTER)
    write(directory, "app_wsgi.py", WSGI_APP)
    config = logging_config(["gunicorn.error", "gunicorn.access", "logtrace.span"])
    write(directory, "gunicorn_conf.py", f"logconfig_dict = {config!r}\n")
    args = ["--config", str(directory / "gunicorn_conf.py"), "--worker-class", request.param]
    if request.param == "gthread":
        args += ["--threads", "4"]
    with run_gunicorn(
        "app_wsgi:application", app_dir=directory, args=args, access_log=False
    ) as server:
        yield server


class TestGunicorn:
    def test_access_line_carries_the_trace(self, gunicorn_server: Server) -> None:
        trace_id = trace_id_for(11)
        response = httpx.get(
            gunicorn_server.url + "/ok", headers={"traceparent": traceparent(trace_id)}
        )
        assert response.text == trace_id
        assert response.headers["traceresponse"].startswith(f"00-{trace_id}-")
        logs = gunicorn_server.wait_for_log(f"INFO gunicorn.access trace={trace_id}")
        assert re.search(f"gunicorn.access trace={trace_id} .*GET /ok", logs)

    def test_file_response_keeps_the_trace_on_the_access_line(
        self, gunicorn_server: Server
    ) -> None:
        trace_id = trace_id_for(16)
        response = httpx.get(
            gunicorn_server.url + "/file", headers={"traceparent": traceparent(trace_id)}
        )
        assert b"WSGITraceMiddleware(app)" in response.content
        assert response.headers["traceresponse"].startswith(f"00-{trace_id}-")
        # The span ends in close(), after the access line: wait for both.
        gunicorn_server.wait_for_log(f"INFO gunicorn.access trace={trace_id}")
        logs = gunicorn_server.wait_for_log(f"logtrace.span trace={trace_id} server GET")
        assert re.search(f"gunicorn.access trace={trace_id} .*GET /file", logs)

    def test_exception_line_carries_the_trace(self, gunicorn_server: Server) -> None:
        trace_id = trace_id_for(12)
        response = httpx.get(
            gunicorn_server.url + "/boom", headers={"traceparent": traceparent(trace_id)}
        )
        assert response.status_code == 500
        logs = gunicorn_server.wait_for_log(f"ERROR gunicorn.error trace={trace_id}")
        assert logs.count(f"ERROR gunicorn.error trace={trace_id}") == 1

    def test_exception_in_the_body_access_and_exception_lines_carry_the_trace(
        self, gunicorn_server: Server
    ) -> None:
        trace_id = trace_id_for(13)
        with pytest.raises(httpx.HTTPError):
            httpx.get(
                gunicorn_server.url + "/boom-body", headers={"traceparent": traceparent(trace_id)}
            )
        logs = gunicorn_server.wait_for_log(f"ERROR gunicorn.error trace={trace_id}")
        assert re.search(f"gunicorn.access trace={trace_id} .*GET /boom-body", logs)

    def test_context_does_not_leak_into_the_next_request(self, gunicorn_server: Server) -> None:
        first, second = trace_id_for(14), trace_id_for(15)
        httpx.get(gunicorn_server.url + "/boom", headers={"traceparent": traceparent(first)})
        response = httpx.get(gunicorn_server.url + "/ok")
        assert response.text not in (first, second) and len(response.text) == 32
        logs = gunicorn_server.wait_for_log(f"trace={response.text}")
        assert re.search(f"gunicorn.access trace={response.text} .*GET /ok", logs)


@pytest.fixture(scope="module")
def plain_uvicorn() -> Iterator[Server]:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from logtrace import current
    from logtrace.asgi import TraceMiddleware

    async def seen(request: Request) -> JSONResponse:
        ctx = current()
        assert ctx is not None
        return JSONResponse(ctx._asdict())

    app = TraceMiddleware(Starlette(routes=[Route("/", seen)]))
    with run_uvicorn_thread(app, access_log=False) as server:
        yield server


def request_bytes(*header_lines: bytes) -> bytes:
    lines = [b"GET / HTTP/1.1", b"Host: 127.0.0.1", *header_lines, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


GOOD = traceparent(TRACE_ID).encode()
RAW_BAD = [
    pytest.param([b"traceparent: 00-xyz-" + b"q" * 16 + b"-01"], id="malformed"),
    pytest.param([b"traceparent: " + GOOD, b"traceparent: " + GOOD], id="duplicated"),
    pytest.param([b"traceparent: " + GOOD + b"0" * 8000], id="oversized"),
    pytest.param([b"traceparent: 00-\xc3\xa9" + GOOD[5:]], id="non-ascii"),
    pytest.param([b"x-request-id: \xff\xfe" + b"a" * 30], id="binary-request-id"),
    pytest.param([b"x-request-id: " + b"r" * 5000], id="oversized-request-id"),
    pytest.param([b"x-request-id: a b\tc"], id="whitespace-request-id"),
    pytest.param([b"tracestate: a=1,,,,b=\xe2\x80\x8b", b"traceparent: 00-"], id="bad-state"),
    pytest.param([b"b3: " + b"f" * 300], id="oversized-b3"),
    pytest.param([b"X-Amzn-Trace-Id: Root=1-zz-zz;Parent=1"], id="bad-xray"),
]


class TestBadHeadersThroughUvicorn:
    @pytest.mark.parametrize("lines", RAW_BAD)
    def test_fresh_context_no_error_no_echo(
        self, plain_uvicorn: Server, lines: list[bytes]
    ) -> None:
        answer = raw_request(plain_uvicorn.port, request_bytes(*lines))
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.split(b"\r\n")
        assert status_line == b"HTTP/1.1 200 OK"
        headers = [line.split(b": ", 1) for line in header_lines]
        for line in lines:
            value = line.split(b": ", 1)[1]
            assert all(v != value for _, v in headers)
        (tp,) = [v for k, v in headers if k.lower() == b"traceresponse"]
        ctx = json.loads(body)
        assert tp.startswith(f"00-{ctx['trace_id']}-{ctx['span_id']}-".encode())
        assert ctx["parent_span_id"] is None
        assert ctx["request_id"] is None

    def test_cr_lf_cannot_smuggle_a_header_through(self, plain_uvicorn: Server) -> None:
        # The CR/LF ends the X-Request-ID line: what follows is a header of its own,
        # and the request ID that remains is valid but never joined with it.
        answer = raw_request(
            plain_uvicorn.port, request_bytes(b"x-request-id: abc\r\nset-cookie: evil=1")
        )
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"set-cookie" not in head.lower()
        assert json.loads(body)["request_id"] == "abc"

    def test_bare_control_characters_are_refused_by_the_server_itself(
        self, plain_uvicorn: Server
    ) -> None:
        answer = raw_request(plain_uvicorn.port, request_bytes(b"x-request-id: a\rb\x00c"))
        assert answer.startswith(b"HTTP/1.1 400")
        assert b"traceresponse" not in answer


def get_both(
    base_url: str, ok_path: str, failing_path: str
) -> tuple[httpx.Response, httpx.Response]:
    """Responses to one request that succeeds and one that fails, both in trace TRACE_ID."""
    headers = {"traceparent": traceparent(TRACE_ID)}
    return (
        httpx.get(base_url + ok_path, headers=headers),
        httpx.get(base_url + failing_path, headers=headers),
    )


def check_both(ok: httpx.Response, failed: httpx.Response) -> dict[str, Any]:
    """Both responses continue trace TRACE_ID, the failed one as a 500; the good body."""
    body: dict[str, Any] = ok.json()
    assert (body["trace_id"], body["parent_span_id"]) == (TRACE_ID, PARENT_ID)
    assert ok.headers["traceresponse"] == f"00-{TRACE_ID}-{body['span_id']}-01"
    assert failed.status_code == 500
    assert failed.headers["traceresponse"].startswith(f"00-{TRACE_ID}-")
    return body


class TestFrameworksOverHTTP:
    """Flask, Django (WSGI and ASGI) and FastAPI behind real servers on 127.0.0.1."""

    def test_flask_in_a_threaded_wsgi_server(self) -> None:
        from flask import Flask

        from logtrace import current
        from logtrace.wsgi import WSGITraceMiddleware

        app = Flask("logtrace-http-test")

        @app.route("/users/<int:user_id>")
        def user(user_id: int) -> dict[str, Any]:
            ctx = current()
            assert ctx is not None
            return ctx._asdict()

        @app.route("/boom")
        def boom() -> str:
            raise RuntimeError("boom in a Flask view")

        app.logger.disabled = True
        app.wsgi_app = WSGITraceMiddleware(app.wsgi_app)  # type: ignore[method-assign]
        with run_wsgi_threaded(app) as server:
            ok, failed = get_both(server.url, "/users/1", "/boom")
        check_both(ok, failed)

    def test_django_wsgi_in_a_threaded_wsgi_server(self, django_urls: Any) -> None:
        import logging

        from django.core.wsgi import get_wsgi_application

        from logtrace.wsgi import WSGITraceMiddleware

        logging.getLogger("django.request").disabled = True
        try:
            with run_wsgi_threaded(WSGITraceMiddleware(get_wsgi_application())) as server:
                ok, failed = get_both(server.url, "/users/2/", "/boom/")
        finally:
            logging.getLogger("django.request").disabled = False
        check_both(ok, failed)

    def test_django_asgi_under_uvicorn(self, django_urls: Any) -> None:
        import logging

        from django.core.asgi import get_asgi_application

        from logtrace.asgi import TraceMiddleware

        logging.getLogger("django.request").disabled = True
        try:
            app = TraceMiddleware(get_asgi_application())
            with run_uvicorn_thread(app, access_log=False) as server:
                ok, failed = get_both(server.url, "/users/3/", "/boom/")
        finally:
            logging.getLogger("django.request").disabled = False
        check_both(ok, failed)

    def test_fastapi_under_uvicorn(self) -> None:
        from fastapi import FastAPI

        from logtrace import current
        from logtrace.asgi import TraceMiddleware

        app = FastAPI()
        noted: list[Any] = []

        def note() -> None:
            noted.append(current())

        @app.get("/items/{item_id}")
        async def item(item_id: int) -> Any:
            from starlette.background import BackgroundTask
            from starlette.responses import JSONResponse

            ctx = current()
            assert ctx is not None
            return JSONResponse(ctx._asdict(), background=BackgroundTask(note))

        @app.get("/boom")
        async def boom() -> None:
            raise RuntimeError("boom in a FastAPI endpoint")

        app.add_middleware(TraceMiddleware)
        with run_uvicorn_thread(app, access_log=False) as server:
            ok, failed = get_both(server.url, "/items/4", "/boom")
        body = check_both(ok, failed)
        assert [c.span_id for c in noted] == [body["span_id"]]
