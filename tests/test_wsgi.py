"""WSGITraceMiddleware in process, with Flask and Django."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from wsgiref.util import FileWrapper, setup_testing_defaults

import pytest
from _asgi import http_scope
from _echo import capture_spans
from hypothesis import given, settings
from hypothesis import strategies as st

from logtrace import TraceContext, current
from logtrace._context import CURRENT
from logtrace.asgi import TraceMiddleware
from logtrace.propagation import Propagator
from logtrace.wsgi import WSGITraceMiddleware

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class Boom(Exception):
    pass


def environ(path: str = "/", **headers: str) -> dict[str, Any]:
    env: dict[str, Any] = {"PATH_INFO": path, "HTTP_HOST": "example.test:8080"}
    for name, value in headers.items():
        env["HTTP_" + name.upper()] = value
    setup_testing_defaults(env)
    return env


class Result:
    status: str = ""
    headers: list[tuple[str, str]]
    body: bytes = b""
    error: BaseException | None = None
    after: TraceContext | None = None

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]


def serve(app: Any, env: dict[str, Any]) -> Result:
    """What a WSGI server does: call, iterate, close; close inside ``except`` on errors."""
    result = Result()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        result.status, result.headers = status, headers
        return lambda data: None

    try:
        body = app(env, start_response)
    except BaseException as exc:
        result.error = exc
        result.after = current()
        return result
    try:
        result.body = b"".join(body)
    except BaseException as exc:
        result.error = exc
        if hasattr(body, "close"):
            body.close()
    else:
        if hasattr(body, "close"):
            body.close()
    result.after = current()
    return result


def hello(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    ctx = current()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [(ctx.span_id if ctx else "none").encode()]


class TestMiddleware:
    def test_request_runs_in_a_child_span_and_the_response_carries_it(self) -> None:
        result = serve(WSGITraceMiddleware(hello), environ(traceparent=TRACEPARENT))
        span_id = result.body.decode()
        assert result.header("traceresponse") == [f"00-{TRACE_ID}-{span_id}-01"]
        assert span_id != PARENT_ID and len(span_id) == 16

    def test_context_is_reset_when_the_server_closes_the_response(self) -> None:
        closed_with: list[TraceContext | None] = []

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                yield b"x"

            def close(self) -> None:
                closed_with.append(current())

        def app(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            start_response("200 OK", [])
            return Body()

        result = serve(WSGITraceMiddleware(app), environ(traceparent=TRACEPARENT))
        assert closed_with[0] is not None and closed_with[0].trace_id == TRACE_ID
        assert result.after is None

    def test_context_is_set_until_close_for_the_access_log(self) -> None:
        middleware = WSGITraceMiddleware(hello)
        body = middleware(environ(traceparent=TRACEPARENT), lambda s, h, e=None: None)
        list(body)
        ctx = current()  # where gunicorn and wsgiref write their access line
        assert ctx is not None and ctx.trace_id == TRACE_ID
        body.close()  # type: ignore[attr-defined]
        assert current() is None

    def test_app_exception_leaves_the_context_for_the_servers_log(self) -> None:
        def app(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            raise Boom

        result = serve(WSGITraceMiddleware(app), environ(traceparent=TRACEPARENT))
        assert isinstance(result.error, Boom)
        assert result.after is not None and result.after.trace_id == TRACE_ID

    def test_body_exception_leaves_the_context_for_the_servers_log(self) -> None:
        def app(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            start_response("200 OK", [])

            def body() -> Iterator[bytes]:
                yield b"part"
                raise Boom

            return body()

        result = serve(WSGITraceMiddleware(app), environ(traceparent=TRACEPARENT))
        assert isinstance(result.error, Boom)
        assert result.after is not None and result.after.trace_id == TRACE_ID

    def test_app_headers_list_is_not_modified(self) -> None:
        shared = [("Content-Type", "text/plain")]

        def app(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            start_response("200 OK", shared)
            return [b"x"]

        for _ in range(2):
            result = serve(WSGITraceMiddleware(app), environ())
            assert len(result.header("traceresponse")) == 1
        assert shared == [("Content-Type", "text/plain")]

    def test_start_response_with_exc_info_is_forwarded(self) -> None:
        got: list[Any] = []

        def app(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            try:
                raise Boom
            except Boom:
                start_response("500 Internal Server Error", [], sys.exc_info())
            return [b"failed"]

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            got.append((status, exc_info))
            return lambda data: None

        body = WSGITraceMiddleware(app)(environ(), start_response)
        list(body)
        body.close()  # type: ignore[attr-defined]
        assert got[0][0].startswith("500") and got[0][1][0] is Boom

    def test_servers_file_wrapper_is_handed_back_and_closing_it_ends_the_span(
        self, tmp_path: Path, span_records: list[logging.LogRecord]
    ) -> None:
        path = tmp_path / "data.bin"
        path.write_bytes(b"0123456789" * 1000)
        files: list[Any] = []

        def app(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            files.append(path.open("rb"))
            wrapped: Iterable[bytes] = env["wsgi.file_wrapper"](files[0], 4096)
            return wrapped

        env = environ("/file", traceparent=TRACEPARENT)
        env["wsgi.file_wrapper"] = FileWrapper
        body = WSGITraceMiddleware(app)(env, lambda s, h, e=None: None)
        assert type(body) is FileWrapper  # the server may still use sendfile()
        assert b"".join(body) == path.read_bytes()
        ctx = current()
        assert ctx is not None and ctx.trace_id == TRACE_ID
        assert span_records == []
        body.close()  # type: ignore[attr-defined]
        assert current() is None
        assert files[0].closed
        assert vars(span_records[0])["http.response.status_code"] == 200

    def test_untrusted_incoming_context_starts_a_new_trace(self) -> None:
        result = serve(
            WSGITraceMiddleware(hello, trust_incoming=False), environ(traceparent=TRACEPARENT)
        )
        (tp,) = result.header("traceresponse")
        assert TRACE_ID not in tp

    def test_options_are_validated_once(self) -> None:
        with pytest.raises(TypeError, match="either"):
            WSGITraceMiddleware(hello, propagator=Propagator(), response=())
        with pytest.raises(ValueError):
            WSGITraceMiddleware(hello, response=["nope"])

    @pytest.mark.parametrize(
        "headers",
        [
            {"traceparent": "00-zz"},
            {"traceparent": f"{TRACEPARENT},{TRACEPARENT}"},
            {"traceparent": "0" * 20000},
            {"traceparent": "00-\u00e9\u00e9"},
            {"x_request_id": "abc\r\nSet-Cookie: a=1"},
            {"tracestate": "a=1\nb=2", "traceparent": "00-"},
        ],
        ids=["malformed", "duplicated", "oversized", "non-ascii", "crlf-request-id", "lf-state"],
    )
    def test_bad_headers_get_a_fresh_context_and_no_echo(self, headers: dict[str, str]) -> None:
        result = serve(WSGITraceMiddleware(hello), environ(**headers))
        assert result.status == "200 OK" and result.error is None
        for _name, value in result.headers:
            assert "\r" not in value and "\n" not in value
            assert value not in headers.values()
        (tp,) = result.header("traceresponse")
        assert len(tp) == 55 and PARENT_ID not in tp


class TestSpanRecords:
    def test_record_after_close_with_semconv_attributes(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        env = environ("/users/7", traceparent=TRACEPARENT)
        env["logtrace.route"] = "/users/<int:user_id>"
        body = WSGITraceMiddleware(hello)(env, lambda s, h, e=None: None)
        list(body)
        assert span_records == []  # the span lasts until the server closes the body
        body.close()  # type: ignore[attr-defined]
        (record,) = span_records
        f = vars(record)
        assert f["span.name"] == "GET /users/<int:user_id>"
        assert f["http.route"] == "/users/<int:user_id>"
        assert (f["trace_id"], f["parent_span_id"]) == (TRACE_ID, PARENT_ID)
        assert f["url.path"] == "/users/7" and f["url.scheme"] == "http"
        assert f["http.response.status_code"] == 200
        assert (f["server.address"], f["server.port"]) == ("example.test", 8080)
        assert f["network.protocol.version"] == "1.0"

    def test_the_stated_answer_is_never_after_the_body_was_written(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        """The span's start is put back from its end, so both clocks are read
        together: work between the two reads (here an environ that takes 30 ms
        to give its protocol, as a thread switch on a busy host would) must
        not move ``span.start + response_ms`` past when the server wrote."""

        class SlowEnviron(dict[str, Any]):
            def get(self, key: str, default: Any = None) -> Any:
                if key == "SERVER_PROTOCOL":
                    time.sleep(0.03)
                return super().get(key, default)

        env = SlowEnviron(environ("/users/7"))
        body = WSGITraceMiddleware(hello)(env, lambda s, h, e=None: None)
        writing = time.time_ns()
        list(body)
        body.close()  # type: ignore[attr-defined]
        (record,) = span_records
        f = vars(record)
        start = datetime.fromisoformat(f["span.start"]).timestamp() * 1e9
        assert start + f["response_ms"] * 1e6 <= writing + 5_000  # to the microsecond

    def test_failed_request_record(self, span_records: list[logging.LogRecord]) -> None:
        def app(env: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            raise Boom

        serve(WSGITraceMiddleware(app), environ("/x\x1bz"))
        (record,) = span_records
        f = vars(record)
        assert f["error.type"] == "Boom" and f["span.name"] == "GET"
        assert f["url.path"] == "/x\\x1bz"
        assert record.exc_info is None


@pytest.fixture(scope="module")
def flask_app() -> Any:
    from flask import Flask, request

    app = Flask("logtrace-test")

    @app.before_request
    def store_route() -> None:  # the recipe of docs/frameworks.md
        if request.url_rule is not None:
            request.environ["logtrace.route"] = request.url_rule.rule

    @app.route("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, Any]:
        ctx = current()
        assert ctx is not None
        return {"user": user_id, **ctx._asdict()}

    @app.route("/boom")
    def boom() -> str:
        raise Boom

    app.wsgi_app = WSGITraceMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


class TestFlask:
    def test_view_sees_the_context_and_the_response_carries_it(self, flask_app: Any) -> None:
        response = flask_app.test_client().get("/users/3", headers={"traceparent": TRACEPARENT})
        body = response.get_json()
        assert body["trace_id"] == TRACE_ID and body["parent_span_id"] == PARENT_ID
        assert response.headers["traceresponse"] == f"00-{TRACE_ID}-{body['span_id']}-01"

    def test_500_from_flasks_error_handling_carries_the_headers(
        self, flask_app: Any, span_records: list[logging.LogRecord]
    ) -> None:
        response = flask_app.test_client().get("/boom", headers={"traceparent": TRACEPARENT})
        response.close()  # as a server does: the span ends here
        assert response.status_code == 500
        assert response.headers["traceresponse"].startswith(f"00-{TRACE_ID}-")
        server = [r for r in span_records if vars(r).get("span.kind") == "server"]
        assert vars(server[0])["http.response.status_code"] == 500
        assert vars(server[0])["error.type"] == "500"

    def test_route_template_in_the_span_record(
        self, flask_app: Any, span_records: list[logging.LogRecord]
    ) -> None:
        flask_app.test_client().get("/users/5").close()
        assert vars(span_records[-1])["span.name"] == "GET /users/<int:user_id>"


class TestDjango:
    def test_wsgi_application(
        self, django_urls: ModuleType, span_records: list[logging.LogRecord]
    ) -> None:
        from django.core.wsgi import get_wsgi_application

        application = WSGITraceMiddleware(get_wsgi_application())
        result = serve(application, environ("/users/9/", traceparent=TRACEPARENT))
        assert result.status.startswith("200")
        import json

        body = json.loads(result.body)
        assert body["trace_id"] == TRACE_ID and body["parent_span_id"] == PARENT_ID
        assert result.header("traceresponse") == [f"00-{TRACE_ID}-{body['span_id']}-01"]
        server = [vars(r) for r in span_records if vars(r).get("span.kind") == "server"]
        assert server[-1]["span.name"] == "GET /users/<int:user_id>/"

    def test_wsgi_500_carries_the_headers(self, django_urls: ModuleType) -> None:
        from django.core.wsgi import get_wsgi_application

        application = WSGITraceMiddleware(get_wsgi_application())
        logging.getLogger("django.request").disabled = True
        try:
            result = serve(application, environ("/boom/", traceparent=TRACEPARENT))
        finally:
            logging.getLogger("django.request").disabled = False
        assert result.status.startswith("500")
        assert result.header("traceresponse")[0].startswith(f"00-{TRACE_ID}-")

    def test_asgi_application(
        self, django_urls: ModuleType, span_records: list[logging.LogRecord]
    ) -> None:
        from django.core.asgi import get_asgi_application

        application = TraceMiddleware(get_asgi_application())
        sent: list[dict[str, Any]] = []
        scope = http_scope("/users/4/", [(b"traceparent", TRACEPARENT.encode())])

        inbox = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if inbox:
                return inbox.pop()
            await asyncio.sleep(3600)  # no disconnect: Django cancels this when done
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)

        asyncio.run(application(scope, receive, send))
        start = sent[0]
        assert start["status"] == 200
        import json

        body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
        assert body["trace_id"] == TRACE_ID and body["parent_span_id"] == PARENT_ID
        (tp,) = [v for k, v in start["headers"] if k == b"traceresponse"]
        assert tp == f"00-{TRACE_ID}-{body['span_id']}-01".encode()
        server = [vars(r) for r in span_records if vars(r).get("span.kind") == "server"]
        assert server[-1]["span.name"] == "GET /users/<int:user_id>/"


_KEYS = st.sampled_from(
    [
        "HTTP_TRACEPARENT",
        "HTTP_TRACESTATE",
        "HTTP_X_REQUEST_ID",
        "HTTP_B3",
        "HTTP_X_B3_TRACEID",
        "HTTP_X_AMZN_TRACE_ID",
        "HTTP_HOST",
        "PATH_INFO",
        "REQUEST_METHOD",
        "SERVER_PORT",
    ]
)
# WSGI servers hand header bytes over decoded as latin-1.
_VALUES = st.binary(max_size=200).map(lambda raw: raw.decode("latin-1")) | st.from_regex(
    r"\A00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}[\r\n,]?\Z"
)
_VALID_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class TestAnyEnviron:
    @settings(max_examples=100, deadline=None)
    @given(st.dictionaries(_KEYS, _VALUES, max_size=8))
    def test_any_headers_give_one_valid_context_and_a_clean_response(
        self, given_environ: dict[str, str]
    ) -> None:
        env = environ()
        env.update(given_environ)
        try:
            with capture_spans() as spans:
                result = serve(WSGITraceMiddleware(hello), env)
        finally:
            CURRENT.set(None)
        keep = spans.records
        assert result.error is None and result.status == "200 OK"
        (tp,) = result.header("traceresponse")
        assert _VALID_TRACEPARENT.fullmatch(tp) and tp[36:52] == result.body.decode()
        for _, value in result.headers:
            assert value.isascii() and value.isprintable()
        (record,) = keep
        for key in ("url.path", "http.request.method", "server.address"):
            assert str(vars(record)[key]).isprintable()
