"""TraceMiddleware in process: scopes, response headers, errors, context, span records."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Iterable
from datetime import datetime
from typing import Any

import httpx
import pytest
from _asgi import http_scope
from _echo import capture_spans
from fastapi import BackgroundTasks, Depends, FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from logtrace import TraceContext, current
from logtrace.asgi import ASGIApp, Message, Receive, Scope, Send, TraceMiddleware
from logtrace.propagation import Propagator

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


class Boom(Exception):
    pass


async def call(
    app: Any, scope: Scope, inbox: Iterable[Message] = ()
) -> tuple[list[Message], BaseException | None]:
    """Run one request through ``app``; return what it sent and what it raised."""
    pending = list(inbox) or [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    try:
        await app(scope, receive, send)
    except BaseException as exc:
        return sent, exc
    return sent, None


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def header(message: Message, name: bytes) -> list[bytes]:
    return [v for k, v in message.get("headers", ()) if k == name]


def starts(sent: list[Message]) -> list[Message]:
    return [m for m in sent if m["type"] == "http.response.start"]


async def seen(request: Request) -> JSONResponse:
    ctx = current()
    assert ctx is not None
    return JSONResponse(ctx._asdict())


async def boom(request: Request) -> Response:
    raise Boom("endpoint failed")


async def not_found(request: Request) -> Response:
    raise HTTPException(404)


def make_app(**kwargs: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/seen", seen),
            Route("/users/{user_id:int}", seen),
            Route("/boom", boom),
            Route("/missing", not_found),
            Mount("/api", routes=[Route("/items/{item_id}", seen)]),
        ],
        **kwargs,
    )


def get(app: Any, path: str, **headers: str) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path, headers=headers)

    result: httpx.Response = run(go())
    return result


def traceresponse(response: httpx.Response) -> tuple[str, str, str]:
    version, trace_id, span_id, _flags = response.headers["traceresponse"].split("-")
    assert version == "00"
    return trace_id, span_id, _flags


class TestScopes:
    @pytest.mark.parametrize("scope_type", ["lifespan", "something-else"])
    def test_other_scope_types_pass_through_with_the_same_objects(self, scope_type: str) -> None:
        got: list[Any] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            got.extend([scope, receive, send, current()])

        async def receive() -> Message:
            return {"type": "lifespan.startup"}

        async def send(message: Message) -> None:
            pass

        scope: Scope = {"type": scope_type, "asgi": {"version": "3.0"}}
        run(TraceMiddleware(app)(scope, receive, send))
        assert got[0] is scope and got[1] is receive and got[2] is send
        assert got[3] is None
        assert scope == {"type": scope_type, "asgi": {"version": "3.0"}}

    def test_http_request_runs_in_a_child_span_of_the_caller(self) -> None:
        body = get(TraceMiddleware(make_app()), "/seen", traceparent=TRACEPARENT).json()
        assert body["trace_id"] == TRACE_ID
        assert body["parent_span_id"] == PARENT_ID
        assert len(body["span_id"]) == 16 and body["span_id"] != PARENT_ID

    def test_request_without_trace_headers_starts_a_new_trace(self) -> None:
        body = get(TraceMiddleware(make_app()), "/seen").json()
        assert len(body["trace_id"]) == 32 and body["parent_span_id"] is None

    def test_websocket_runs_in_a_span_and_accept_carries_the_headers(self) -> None:
        inside: list[TraceContext | None] = []

        async def ws(websocket: WebSocket) -> None:
            await websocket.accept(headers=[(b"x-app", b"1")])
            inside.append(current())
            await websocket.send_text("hi")
            await websocket.close()

        app = TraceMiddleware(Starlette(routes=[WebSocketRoute("/ws", ws)]))
        scope = http_scope("/ws", [(b"traceparent", TRACEPARENT.encode())], scope_type="websocket")
        sent, error = run(call(app, scope, [{"type": "websocket.connect"}]))
        assert error is None
        accept = sent[0]
        assert accept["type"] == "websocket.accept"
        assert header(accept, b"x-app") == [b"1"]
        ctx = inside[0]
        assert ctx is not None and ctx.trace_id == TRACE_ID and ctx.parent_span_id == PARENT_ID
        assert header(accept, b"traceresponse") == [ctx.traceparent.encode()]
        assert [m["type"] for m in sent] == [
            "websocket.accept",
            "websocket.send",
            "websocket.close",
        ]


class TestResponseHeaders:
    def test_response_carries_the_server_span(self) -> None:
        response = get(TraceMiddleware(make_app()), "/seen", traceparent=TRACEPARENT)
        body = response.json()
        trace_id, span_id, flags = traceresponse(response)
        assert (trace_id, span_id, flags) == (TRACE_ID, body["span_id"], "01")

    def test_app_headers_are_kept_and_a_reused_response_does_not_pile_up(self) -> None:
        shared = PlainTextResponse("same object every time", headers={"x-app": "1"})

        async def reused(request: Request) -> Response:
            return shared

        app = TraceMiddleware(Starlette(routes=[Route("/", reused)]))
        first = get(app, "/")
        second = get(app, "/")
        assert second.headers["x-app"] == "1"
        assert len(second.headers.get_list("traceresponse")) == 1
        assert traceresponse(first)[0] != traceresponse(second)[0]
        assert b"traceresponse" not in dict(shared.raw_headers)

    def test_http_exception_response_carries_the_headers(self) -> None:
        response = get(TraceMiddleware(make_app()), "/missing", traceparent=TRACEPARENT)
        assert response.status_code == 404
        assert traceresponse(response)[0] == TRACE_ID

    def test_unknown_route_404_carries_the_headers(self) -> None:
        response = get(TraceMiddleware(make_app()), "/nowhere", traceparent=TRACEPARENT)
        assert response.status_code == 404
        assert traceresponse(response)[0] == TRACE_ID


class TestUnhandledException:
    """The 500 after an unhandled exception carries the headers; it is sent once."""

    def test_wrapping_the_whole_app_headers_on_starlettes_500(self) -> None:
        app = TraceMiddleware(make_app())
        sent, error = run(call(app, http_scope("/boom", [(b"traceparent", TRACEPARENT.encode())])))
        assert isinstance(error, Boom)
        (start,) = starts(sent)
        assert start["status"] == 500
        assert header(start, b"traceresponse")[0].startswith(f"00-{TRACE_ID}-".encode())
        assert header(start, b"content-type") == [b"text/plain; charset=utf-8"]

    def test_add_middleware_sends_its_own_500_with_headers_and_reraises(self) -> None:
        app = make_app()
        app.add_middleware(TraceMiddleware)
        sent, error = run(call(app, http_scope("/boom", [(b"traceparent", TRACEPARENT.encode())])))
        assert isinstance(error, Boom)
        (start,) = starts(sent)
        assert start["status"] == 500
        assert header(start, b"traceresponse")[0].startswith(f"00-{TRACE_ID}-".encode())
        bodies = [m for m in sent if m["type"] == "http.response.body"]
        assert b"".join(m.get("body", b"") for m in bodies) == b"Internal Server Error"

    def test_add_middleware_custom_500_handler_runs_but_our_500_was_sent(self) -> None:
        handled: list[str] = []

        async def on_error(request: Request, exc: Exception) -> Response:
            ctx = current()
            handled.append(ctx.trace_id if ctx else "none")
            return PlainTextResponse("custom", status_code=503)

        app = make_app(exception_handlers={500: on_error})
        app.add_middleware(TraceMiddleware)
        sent, error = run(call(app, http_scope("/boom", [(b"traceparent", TRACEPARENT.encode())])))
        assert isinstance(error, Boom)
        assert handled == [TRACE_ID]  # the handler ran, in the request's context
        (start,) = starts(sent)
        assert start["status"] == 500

    def test_wrapping_the_whole_app_keeps_a_custom_500_handlers_response(self) -> None:
        async def on_error(request: Request, exc: Exception) -> Response:
            return PlainTextResponse("custom", status_code=503)

        app = TraceMiddleware(make_app(exception_handlers={500: on_error}))
        response = get(app, "/boom", traceparent=TRACEPARENT)
        assert response.status_code == 503 and response.text == "custom"
        assert traceresponse(response)[0] == TRACE_ID

    def test_raw_asgi_app_raising_before_the_response_gets_a_500(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            raise Boom

        sent, error = run(call(TraceMiddleware(app), http_scope()))
        assert isinstance(error, Boom)
        (start,) = starts(sent)
        assert start["status"] == 500 and header(start, b"traceresponse")

    def test_exception_after_the_response_started_sends_nothing_more(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            raise Boom

        sent, error = run(call(TraceMiddleware(app), http_scope()))
        assert isinstance(error, Boom)
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
        assert sent[0]["status"] == 200 and header(sent[0], b"traceresponse")

    def test_cancellation_is_not_turned_into_a_500(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            raise asyncio.CancelledError

        sent, error = run(call(TraceMiddleware(app), http_scope()))
        assert isinstance(error, asyncio.CancelledError)
        assert sent == []

    def test_websocket_error_is_reraised_without_an_http_response(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            raise Boom

        scope = http_scope("/ws", scope_type="websocket")
        sent, error = run(call(TraceMiddleware(app), scope, [{"type": "websocket.connect"}]))
        assert isinstance(error, Boom) and sent == []

    def test_a_failing_send_of_the_500_does_not_hide_the_apps_error(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            raise Boom

        async def receive() -> Message:
            return {"type": "http.request"}

        async def send(message: Message) -> None:
            raise OSError("client went away")

        with pytest.raises(Boom):
            run(TraceMiddleware(app)(http_scope(), receive, send))


class TestContextLifetime:
    def test_context_is_restored_after_a_successful_request(self) -> None:
        async def go() -> tuple[TraceContext | None, TraceContext | None]:
            before = current()
            _, error = await call(TraceMiddleware(make_app()), http_scope("/seen"))
            assert error is None
            return before, current()

        before, after = run(go())
        assert before is None and after is None

    def test_context_stays_set_after_an_exception_for_the_servers_log(self) -> None:
        async def go() -> TraceContext | None:
            _, error = await call(
                TraceMiddleware(make_app()),
                http_scope("/boom", [(b"traceparent", TRACEPARENT.encode())]),
            )
            assert isinstance(error, Boom)
            return current()

        after = run(go())
        assert after is not None and after.trace_id == TRACE_ID

    def test_background_task_runs_in_the_request_context(self) -> None:
        seen_in_task: list[TraceContext | None] = []

        async def task() -> None:
            await asyncio.sleep(0)
            seen_in_task.append(current())

        def sync_task() -> None:
            seen_in_task.append(current())

        async def endpoint(request: Request) -> Response:
            from starlette.background import BackgroundTasks

            tasks = BackgroundTasks()
            tasks.add_task(task)
            tasks.add_task(sync_task)
            return PlainTextResponse("ok", background=tasks)

        app = TraceMiddleware(Starlette(routes=[Route("/", endpoint)]))
        response = get(app, "/", traceparent=TRACEPARENT)
        _, span_id, _ = traceresponse(response)
        assert [(c.trace_id, c.span_id) for c in seen_in_task if c] == [(TRACE_ID, span_id)] * 2

    def test_streaming_response_body_is_produced_in_the_request_context(self) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0)
                ctx = current()
                yield (ctx.span_id if ctx else "none").encode() + b"\n"

        def sync_chunks() -> Iterable[bytes]:
            ctx = current()
            yield (ctx.span_id if ctx else "none").encode() + b"\n"

        async def stream(request: Request) -> Response:
            return StreamingResponse(chunks())

        async def sync_stream(request: Request) -> Response:
            return StreamingResponse(sync_chunks())

        app = TraceMiddleware(
            Starlette(routes=[Route("/", stream), Route("/sync", sync_stream)]),
        )
        for path, lines in (("/", 3), ("/sync", 1)):
            response = get(app, path, traceparent=TRACEPARENT)
            _, span_id, _ = traceresponse(response)
            assert response.text.splitlines() == [span_id] * lines

    def test_sync_endpoint_in_the_threadpool_sees_the_context(self) -> None:
        def endpoint(request: Request) -> Response:
            ctx = current()
            return PlainTextResponse(ctx.trace_id if ctx else "none")

        app = TraceMiddleware(Starlette(routes=[Route("/", endpoint)]))
        assert get(app, "/", traceparent=TRACEPARENT).text == TRACE_ID

    def test_background_task_attached_to_a_response_object(self) -> None:
        seen_in_task: list[str] = []

        async def note() -> None:
            ctx = current()
            seen_in_task.append(ctx.trace_id if ctx else "none")

        async def endpoint(request: Request) -> Response:
            return PlainTextResponse("ok", background=BackgroundTask(note))

        get(TraceMiddleware(Starlette(routes=[Route("/", endpoint)])), "/", traceparent=TRACEPARENT)
        assert seen_in_task == [TRACE_ID]


class TestSpanRecords:
    def test_route_template_names_the_span_with_semconv_attributes(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        response = get(TraceMiddleware(make_app()), "/users/42", traceparent=TRACEPARENT)
        _, span_id, _ = traceresponse(response)
        (record,) = span_records
        f = vars(record)
        assert record.getMessage() == "server GET /users/{user_id}"
        assert record.levelno == logging.INFO
        assert f["span.kind"] == "server" and f["span.name"] == "GET /users/{user_id}"
        assert (f["trace_id"], f["span_id"], f["parent_span_id"]) == (TRACE_ID, span_id, PARENT_ID)
        assert f["http.request.method"] == "GET"
        assert f["url.path"] == "/users/42"
        assert f["url.scheme"] == "http"
        assert f["http.route"] == "/users/{user_id}"
        assert f["http.response.status_code"] == 200
        assert f["server.address"] == "testserver" and f["server.port"] == 80
        assert isinstance(f["duration_ms"], float) and f["duration_ms"] >= 0
        assert "error.type" not in f

    def test_mounted_route_template_includes_the_mount(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        get(TraceMiddleware(make_app()), "/api/items/7")
        assert vars(span_records[0])["http.route"] == "/api/items/{item_id}"

    def test_unmatched_path_is_named_by_method_only(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        get(TraceMiddleware(make_app()), "/nowhere")
        (record,) = span_records
        assert vars(record)["span.name"] == "GET"
        assert "http.route" not in vars(record)
        assert vars(record)["http.response.status_code"] == 404

    @pytest.mark.parametrize("style", ["wrap", "add_middleware"])
    def test_failed_request_record_names_the_error_without_a_traceback(
        self, span_records: list[logging.LogRecord], style: str
    ) -> None:
        app: Any = make_app()
        if style == "wrap":
            app = TraceMiddleware(app)
        else:
            app.add_middleware(TraceMiddleware)
        _, error = run(call(app, http_scope("/boom")))
        assert isinstance(error, Boom)
        (record,) = span_records
        f = vars(record)
        assert f["error.type"] == "Boom"
        assert f["http.response.status_code"] == 500
        assert f["http.route"] == "/boom"
        assert record.exc_info is None and record.exc_text is None

    def test_host_header_port_and_socket_fallback(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 204})
            await send({"type": "http.response.body"})

        scope = http_scope()
        run(call(TraceMiddleware(app), scope))
        scope["headers"] = [(b"host", b"bad host\r\nx")]
        run(call(TraceMiddleware(app), scope))
        first, second = (vars(r) for r in span_records)
        assert (first["server.address"], first["server.port"]) == ("example.test", 8080)
        assert (second["server.address"], second["server.port"]) == ("127.0.0.1", 8000)
        assert first["network.protocol.version"] == "1.1"

    def test_control_characters_in_the_path_are_escaped(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body"})

        run(call(TraceMiddleware(app), http_scope("/a\r\nforged: 1")))
        assert vars(span_records[0])["url.path"] == "/a\\r\\nforged: 1"

    def test_websocket_record(self, span_records: list[logging.LogRecord]) -> None:
        async def ws(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.close()

        app = TraceMiddleware(Starlette(routes=[WebSocketRoute("/ws/{room}", ws)]))
        scope = http_scope("/ws/1", scope_type="websocket")
        run(call(app, scope, [{"type": "websocket.connect"}]))
        (record,) = span_records
        f = vars(record)
        assert f["span.name"] == "GET /ws/{room}"
        assert f["network.protocol.name"] == "websocket"
        assert f["http.response.status_code"] == 101
        assert f["url.scheme"] == "ws"

    def test_no_record_when_span_records_are_off(self, no_span_records: None) -> None:
        handler_records: list[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                handler_records.append(record)

        logger = logging.getLogger("logtrace.span")
        keep = Keep()
        logger.addHandler(keep)
        try:
            get(TraceMiddleware(make_app()), "/seen")
            run(call(TraceMiddleware(make_app()), http_scope("/boom")))
        finally:
            logger.removeHandler(keep)
        assert handler_records == []


class TestOptions:
    def test_propagator_and_options_together_are_refused(self) -> None:
        with pytest.raises(TypeError, match="either"):
            TraceMiddleware(make_app(), propagator=Propagator(), trust_incoming=False)

    def test_unknown_option_is_refused_at_construction(self) -> None:
        with pytest.raises(TypeError):
            TraceMiddleware(make_app(), no_such_option=True)

    def test_bad_option_value_is_refused_at_construction(self) -> None:
        with pytest.raises(ValueError):
            TraceMiddleware(make_app(), extract=["nope"])

    def test_given_propagator_is_used(self) -> None:
        propagator = Propagator(response=())
        middleware = TraceMiddleware(make_app(), propagator=propagator)
        assert middleware.propagator is propagator
        assert "traceresponse" not in get(middleware, "/seen").headers

    def test_untrusted_incoming_context_starts_a_new_trace_with_a_link(self) -> None:
        app = TraceMiddleware(make_app(), trust_incoming=False)
        response = get(app, "/seen", traceparent=TRACEPARENT)
        body = response.json()
        assert body["trace_id"] != TRACE_ID and body["parent_span_id"] is None
        assert body["link"] is not None and TRACE_ID in body["link"]
        assert traceresponse(response)[0] == body["trace_id"]

    def test_request_id_is_echoed_when_valid(self) -> None:
        rid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
        response = get(TraceMiddleware(make_app()), "/seen", **{"x-request-id": rid})
        assert response.json()["request_id"] == rid
        assert response.headers["x-request-id"] == rid


BAD_HEADERS = [
    pytest.param([(b"traceparent", b"00-zz-yy-01")], id="malformed"),
    pytest.param(
        [(b"traceparent", TRACEPARENT.encode()), (b"traceparent", TRACEPARENT.encode())],
        id="duplicated",
    ),
    pytest.param([(b"traceparent", TRACEPARENT.encode() + b"-" + b"a" * 9000)], id="oversized"),
    pytest.param([(b"traceparent", "00-\u00e9".encode())], id="non-ascii"),
    pytest.param([(b"x-request-id", b"abc\r\nSet-Cookie: x=1")], id="crlf-request-id"),
    pytest.param([(b"x-request-id", b"\xff\xfe\x00")], id="binary-request-id"),
    pytest.param([(b"tracestate", b"a=1\r\nb=2"), (b"traceparent", b"00-")], id="crlf-tracestate"),
    pytest.param([(b"b3", b"\x00" * 64)], id="nul-b3"),
]


class TestBadHeaders:
    @pytest.mark.parametrize("bad", BAD_HEADERS)
    def test_bad_headers_get_a_fresh_context_and_no_echo(
        self, bad: list[tuple[bytes, bytes]]
    ) -> None:
        sent, error = run(call(TraceMiddleware(make_app()), http_scope("/seen", bad)))
        assert error is None
        (start,) = starts(sent)
        assert start["status"] == 200
        body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        values = [v for _, v in start["headers"]]
        for _, bad_value in bad:
            assert bad_value not in values
        for value in values:
            assert b"\r" not in value and b"\n" not in value
        (tp,) = header(start, b"traceresponse")
        assert len(tp) == 55 and tp.decode("ascii").count("-") == 3
        assert b'"parent_span_id":null' in body


class TestFastAPI:
    @pytest.fixture
    def fastapi_app(self) -> Any:
        app = FastAPI()
        app.state.noted = []

        async def request_trace() -> str:
            ctx = current()
            return ctx.trace_id if ctx else "none"

        @app.get("/items/{item_id}")
        async def item(
            item_id: int, tasks: BackgroundTasks, trace: str = Depends(request_trace)
        ) -> dict[str, Any]:
            tasks.add_task(lambda: app.state.noted.append(current()))
            ctx = current()
            assert ctx is not None
            return {"item": item_id, "dependency_trace": trace, **ctx._asdict()}

        @app.get("/boom")
        def boom() -> None:
            raise Boom

        app.add_middleware(TraceMiddleware)
        return app

    def test_endpoint_dependency_and_background_task_share_the_span(
        self, fastapi_app: Any, span_records: list[logging.LogRecord]
    ) -> None:
        response = get(fastapi_app, "/items/3", traceparent=TRACEPARENT)
        body = response.json()
        assert body["trace_id"] == body["dependency_trace"] == TRACE_ID
        assert traceresponse(response)[1] == body["span_id"]
        (noted,) = fastapi_app.state.noted
        assert noted.span_id == body["span_id"]
        (record,) = span_records
        assert vars(record)["span.name"] == "GET /items/{item_id}"

    def test_unhandled_exception_500_carries_the_headers(self, fastapi_app: Any) -> None:
        response = get(fastapi_app, "/boom", traceparent=TRACEPARENT)
        assert response.status_code == 500
        assert traceresponse(response)[0] == TRACE_ID


_HEADER_NAMES = st.sampled_from(
    [
        b"traceparent",
        b"tracestate",
        b"x-request-id",
        b"b3",
        b"x-b3-traceid",
        b"x-b3-spanid",
        b"x-b3-sampled",
        b"x-amzn-trace-id",
        b"host",
        b"user-agent",
    ]
)
_HEADER_VALUES = st.one_of(
    st.binary(max_size=200),
    st.from_regex(rb"\A00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}\Z"),
    st.builds(
        lambda a, b: a + b,
        st.from_regex(rb"\A[0-9a-fA-F-]{0,60}\Z"),
        st.sampled_from([b"", b"\r\n", b"\x00", b"\xff", b" ", b",", b"\xc3\xa9"]),
    ),
)
_VALID_TRACEPARENT = re.compile(rb"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_SAFE_VALUE = re.compile(rb"[\x20-\x7e]*")


class TestAnyHeaders:
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.tuples(_HEADER_NAMES, _HEADER_VALUES), max_size=8))
    def test_any_headers_give_one_valid_context_and_a_clean_response(
        self, headers: list[tuple[bytes, bytes]]
    ) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            ctx = current()
            assert ctx is not None
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": ctx.trace_id.encode()})

        scope = http_scope()
        scope["headers"] = headers
        with capture_spans() as spans:
            sent, error = run(call(TraceMiddleware(app), scope))
        keep = spans.records
        assert error is None
        (start,) = starts(sent)
        assert start["status"] == 200
        (tp,) = header(start, b"traceresponse")
        assert _VALID_TRACEPARENT.fullmatch(tp)
        assert tp[3:35] == sent[1]["body"]
        for _, value in start["headers"]:
            assert _SAFE_VALUE.fullmatch(value)
        (record,) = keep
        assert str(vars(record)["server.address"]).isprintable()


class TestStatedAnswer:
    records: list[dict[str, Any]]

    def _served(
        self, app: ASGIApp, server_send: Send, path: str = "/"
    ) -> tuple[dict[str, Any], float]:
        """Serve one request; its span record and the record's start (ns)."""

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        self.records = []
        with capture_spans() as spans:
            try:
                asyncio.run(TraceMiddleware(app)(http_scope(path), receive, server_send))
            finally:
                self.records = spans.fields()
        (record,) = self.records
        return record, datetime.fromisoformat(record["span.start"]).timestamp() * 1e9

    def test_the_stated_answer_is_never_after_the_caller_had_it(self) -> None:
        """The span's start is put back from its end, so the wall clock and the
        monotonic one are read together: work between the two reads (here a
        route whose template takes 30 ms to read, as a thread switch or a
        busy host would) must not move ``span.start + response_ms`` past the
        moment the server wrote the answer."""

        class SlowRoute:
            @property
            def path_format(self) -> str:
                time.sleep(0.03)
                return "/slow"

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            scope["route"] = SlowRoute()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        written: list[int] = []

        async def server_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                written.append(time.time_ns())

        record, start = self._served(app, server_send, "/slow")
        stated = start + record["response_ms"] * 1e6
        assert stated <= written[0] + 5_000  # the microseconds the record rounds to

    def test_the_headers_are_stated_before_any_caller_can_read_them(self) -> None:
        """A response whose body follows its headers 20 ms later (a server
        stalled between the two, as a busy host or another thread holding
        the interpreter does): an HTTP client that logs on the headers
        (httpx) writes its line before ``response_ms``. ``headers_ms`` is
        never after the server had the headers, and lies that much earlier."""

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            time.sleep(0.02)
            await send({"type": "http.response.body", "body": b"ok"})

        written: dict[str, int] = {}

        async def server_send(message: dict[str, Any]) -> None:
            written.setdefault(message["type"], time.time_ns())

        record, start = self._served(app, server_send)
        headers = start + record["headers_ms"] * 1e6
        # The start rounds to the microsecond, and it is put back from the end
        # on the monotonic clock, which the wall clock may be slewed against
        # (up to 500 ppm over the 20 ms between).
        assert headers <= written["http.response.start"] + 15_000
        assert record["response_ms"] - record["headers_ms"] >= 19.0

    def test_the_error_answer_states_its_headers_too(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            raise RuntimeError("before any answer")

        async def server_send(message: dict[str, Any]) -> None:
            pass

        with pytest.raises(RuntimeError):
            self._served(app, server_send)
        (record,) = self.records
        # The middleware answered 500 itself, headers first.
        assert record["http.response.status_code"] == 500
        assert 0 <= record["headers_ms"] <= record["response_ms"]
