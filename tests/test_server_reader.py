"""The middleware's one-pass header reader gives what the propagator's two steps give.

``TraceMiddleware`` reads a request's headers with ``Extractor.server_reader``:
one scan for the context and the response headers. Whatever the headers and
the propagator's options, the result must be what ``incoming_asgi`` and then
``response_headers_asgi`` give, up to the random IDs a new span or trace gets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from _asgi import http_scope
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtrace import TraceContext, current
from logtrace.asgi import Message, Receive, Scope, Send, TraceMiddleware
from logtrace.propagation import Propagator

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
TP = f"00-{TRACE}-{PARENT}-01"
B3 = f"{TRACE}-{PARENT}-1"

OPTIONS: list[dict[str, Any]] = [
    {},
    {"response": ()},
    {"response": ("request-id",)},
    {"response": ("traceresponse",)},
    {"request_id_header": None},
    {"request_id_header": "x-correlation-id"},
    {"traceresponse_header": "x-trace"},
    {"trust_incoming": False},
    {"extract": ("b3", "tracecontext")},
    {"extract": ("tracecontext",)},
    {"tracestate_max_length": 8},
    {"tracestate_level": 1},
    {"request_id_max_length": 4},
]

CASES: list[list[tuple[str, str]]] = [
    [],
    [("traceparent", TP)],
    [("traceparent", f"00-{TRACE}-{PARENT}-00")],
    [("traceparent", f"00-{TRACE}-{PARENT}-03")],
    [("traceparent", f"00-{TRACE}-{PARENT}-ff")],
    [("traceparent", TP), ("x-request-id", "req-1")],
    [("traceparent", TP), ("x-correlation-id", "req-1")],
    [("traceparent", TP), ("x-request-id", " req-1 ")],
    [("traceparent", TP), ("x-request-id", "bad id")],
    [("traceparent", TP), ("x-request-id", "a"), ("x-request-id", "b")],
    [("traceparent", TP), ("traceparent", TP)],
    [("traceparent", TP), ("tracestate", "a=1,b=2")],
    [("traceparent", TP), ("tracestate", "a=1"), ("tracestate", "b=2")],
    [("traceparent", TP), ("tracestate", "a=1,a=2")],
    [("traceparent", TP), ("tracestate", "not valid")],
    [("traceparent", TP), ("tracestate", "k=" + "v" * 40)],
    [("traceparent", TP), ("b3", B3)],
    [("traceparent", TP), ("x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793")],
    [("traceparent", TP.upper())],
    [("traceparent", "01" + TP[2:])],
    [("traceparent", TP + "-extra")],
    [("traceparent", f"00-{'0' * 32}-{PARENT}-01")],
    [("traceparent", f"00-{TRACE}-{'0' * 16}-01")],
    [("traceparent", TP[:-1])],
    [("traceparent", " " + TP)],
    [("traceparent", "")],
    [("x-request-id", "req-1")],
    [("x-request-id", "bad id")],
    [("x-request-id", "a"), ("x-request-id", "b")],
    [("tracestate", "a=1")],
    [("b3", B3)],
    [("b3", "0")],
    [("x-b3-traceid", TRACE), ("x-b3-spanid", PARENT)],
    [("b3", B3), ("x-request-id", "req-1")],
]


def asgi_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"example.test"), *((n.encode(), v.encode("latin-1")) for n, v in headers)]


def reader_of(p: Propagator) -> Any:
    return TraceMiddleware(lambda *a: None, propagator=p)._read


def same_decision(got: TraceContext, want: TraceContext) -> None:
    """Equal but for the IDs that are random: the span's, and the trace's for a new trace."""
    assert got.span_id != want.span_id
    assert (got.parent_span_id is None) == (want.parent_span_id is None)
    if want.parent_span_id is not None:
        assert got.trace_id == want.trace_id
    assert got._replace(trace_id="", span_id="") == want._replace(trace_id="", span_id="")


def check(p: Propagator, headers: list[tuple[bytes, bytes]]) -> None:
    ctx, out = reader_of(p)(headers)
    same_decision(ctx, p.incoming_asgi(headers))
    assert out == p.response_headers_asgi(ctx)


@pytest.mark.parametrize("options", OPTIONS, ids=repr)
@pytest.mark.parametrize("headers", CASES, ids=repr)
def test_reader_agrees_with_the_propagator(
    options: dict[str, Any], headers: list[tuple[str, str]]
) -> None:
    check(Propagator(**options), asgi_headers(headers))


def test_reader_keeps_the_propagators_reasons(caplog: pytest.LogCaptureFixture) -> None:
    """A header it does not take on the fast path is still reported once, with its reason."""
    p = Propagator()
    with caplog.at_level(logging.DEBUG, logger="logtrace.propagation"):
        reader_of(p)(asgi_headers([("traceparent", TP), ("tracestate", "not valid")]))
        reader_of(p)(asgi_headers([("traceparent", TP), ("x-request-id", "bad id")]))
        reader_of(p)(asgi_headers([("traceparent", TP), ("traceparent", TP)]))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3
    assert "tracestate" in messages[0]
    assert "x-request-id" in messages[1]
    assert "traceparent duplicated header" in messages[2]


names = st.sampled_from(
    ["traceparent", "tracestate", "x-request-id", "b3", "x-b3-traceid", "x-amzn-trace-id", "host"]
)
values = st.one_of(
    st.sampled_from([TP, TP.upper(), f"00-{TRACE}-{PARENT}-02", "a=1", "a=1,a=2", "req-1", B3]),
    st.text(alphabet="0123456789abcdef-= ,x", max_size=60),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(names, values), max_size=6),
    st.sampled_from(OPTIONS),
)
def test_reader_agrees_on_any_headers(
    headers: list[tuple[str, str]], options: dict[str, Any]
) -> None:
    check(Propagator(**options), asgi_headers(headers))


class OwnResponse(Propagator):
    """A propagator whose response headers the middleware must not build itself."""

    def response_headers_asgi(self, context: TraceContext) -> list[tuple[bytes, bytes]]:
        return [(b"x-own", context.span_id.encode())]


async def call(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def app_sending(headers: Any) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {"type": "http.response.start", "status": 200}
        if headers is not None:
            start["headers"] = headers
        await send(start)
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_subclass_response_headers_are_used() -> None:
    seen: list[TraceContext | None] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(current())
        await app_sending([])(scope, receive, send)

    mw = TraceMiddleware(app, propagator=OwnResponse())
    sent = asyncio.run(call(mw, http_scope(headers=[(b"traceparent", TP.encode())])))
    ctx = seen[0]
    assert ctx is not None and ctx.trace_id == TRACE and ctx.parent_span_id == PARENT
    assert sent[0]["headers"] == [(b"x-own", ctx.span_id.encode())]


@pytest.mark.parametrize(
    ("make", "app_headers"),
    [
        (lambda: None, []),
        (lambda: [], []),
        (lambda: [(b"x-app", b"1")], [(b"x-app", b"1")]),
        (lambda: ((b"x-app", b"1"),), [(b"x-app", b"1")]),
        (lambda: iter([(b"x-app", b"1")]), [(b"x-app", b"1")]),
    ],
    ids=["absent", "empty list", "list", "tuple", "iterator"],
)
def test_response_headers_of_any_iterable_shape(make: Any, app_headers: list[Any]) -> None:
    """The app's own headers stay first, whatever iterable it sends them in."""
    mw = TraceMiddleware(app_sending(make()))
    sent = asyncio.run(call(mw, http_scope(headers=[(b"traceparent", TP.encode())])))
    out = sent[0]["headers"]
    assert isinstance(out, list)
    assert out[: len(app_headers)] == app_headers
    assert [n for n, _ in out[len(app_headers) :]] == [b"traceresponse"]
    assert out[len(app_headers)][1].startswith(f"00-{TRACE}-".encode())


def test_app_header_list_is_not_modified() -> None:
    """A response object sent twice must not collect trace headers."""
    shared = [(b"x-app", b"1")]
    mw = TraceMiddleware(app_sending(shared))
    for _ in range(2):
        asyncio.run(call(mw, http_scope(headers=[(b"traceparent", TP.encode())])))
    assert shared == [(b"x-app", b"1")]
