"""``TraceMiddleware``: a server span around every ASGI request.

A pure ASGI middleware (no ``BaseHTTPMiddleware``): it reads the caller's
trace context from the request headers, runs the rest of the application
with the server span's context current, adds trace headers to the response
by wrapping ``send``, and writes one span record when the request ends.

The context is not cleared when the application raises: the server logs the
exception after the middleware has returned, and that line should carry the
request's trace. Servers run each request in a task of its own (uvicorn
starts every task with an empty context), so nothing leaks into the next one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import suppress
from time import perf_counter_ns
from typing import Any

from ._context import CURRENT, TraceContext
from ._extract import AsgiHeaders, Extractor, ServerReader
from ._http import ROUTE_KEY, host_and_port, printable, server_span_name, stored_route
from ._records import emit_span, enabled_for, settings
from ._schema import (
    HEADERS_MS,
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    KIND_SERVER,
    NETWORK_PROTOCOL_NAME,
    NETWORK_PROTOCOL_VERSION,
    RESPONSE_MS,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_PATH,
    URL_SCHEME,
)
from ._wallclock import clock_pair
from .propagation import Propagator, chosen_propagator

__all__ = ["ROUTE_KEY", "ASGIApp", "Message", "Receive", "Scope", "Send", "TraceMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# Bound once: two attribute loads fewer per request.
_set_current = CURRENT.set
_reset_current = CURRENT.reset

_ERROR_BODY = b"Internal Server Error"
_ERROR_HEADERS = (
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(_ERROR_BODY)).encode("ascii")),
)


class TraceMiddleware:
    """Run every ``http`` and ``websocket`` request in a server span.

    ``TraceMiddleware(app)`` or ``app.add_middleware(TraceMiddleware)``.
    Options are those of :class:`~logtrace.propagation.Propagator`
    (``extract=``, ``inject=``, ``trust_incoming=`` ...), or a ready
    ``propagator=``; with neither, the default propagator is used. Other
    scope types (``lifespan``) pass through untouched.

    When the application raises before the response has started, the
    middleware sends a plain ``500`` carrying the trace headers and re-raises,
    so the server still logs the exception (once). Wrapping the whole
    Starlette application instead (``app = TraceMiddleware(app)``) lets
    Starlette's own error handler, custom ``500`` handlers included, write
    that response: it goes out through this middleware and gets the headers.
    """

    def __init__(
        self, app: ASGIApp, /, *, propagator: Propagator | None = None, **options: Any
    ) -> None:
        propagator = chosen_propagator(propagator, options)
        self.app = app
        self.propagator = propagator
        self._read = _server_reader(propagator)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type != "http" and scope_type != "websocket":
            await self.app(scope, receive, send)
            return

        # The response headers are built with the context, before the application
        # runs: the closure then holds one list, and the error path reuses it.
        ctx, extra = self._read(scope["headers"])
        status = 0
        headed = answered = 0
        # Span records share one level: if they are off now, skip the clock too.
        start = perf_counter_ns() if settings.enabled and enabled_for(settings.level) else 0

        # A plain function handing back send's awaitable: no coroutine of its own
        # per message, and the server's send is still awaited by the caller.
        def send_traced(message: Message) -> Awaitable[None]:
            nonlocal status, headed, answered
            if status:
                # The last body chunk: the caller has its answer once the server
                # writes it, whatever the application does afterwards.
                if (
                    start
                    and not answered
                    and not message.get("more_body")
                    and message["type"] == "http.response.body"
                ):
                    answered = perf_counter_ns()
            else:
                message_type = message["type"]
                if message_type == "http.response.start":
                    status = message["status"]
                    if start:  # before the server has the headers: no caller hears sooner
                        headed = perf_counter_ns()
                elif message_type == "websocket.accept":
                    status = 101
                elif message_type == "websocket.http.response.start":
                    status = message["status"]
                if status:
                    try:  # the usual case: the headers are a list
                        message["headers"] = message["headers"] + extra
                    except (KeyError, TypeError):  # none, or another iterable
                        message["headers"] = [*message.get("headers", ()), *extra]
            return send(message)

        token = _set_current(ctx)
        try:
            await self.app(scope, receive, send_traced)
        except BaseException as exc:
            if status == 0 and scope_type == "http" and isinstance(exc, Exception):
                status = 500
                headers = [*_ERROR_HEADERS, *extra]
                # A failure here means the client is gone; the app's error is what matters.
                with suppress(Exception):
                    headed = perf_counter_ns()
                    await send({"type": "http.response.start", "status": 500, "headers": headers})
                    await send({"type": "http.response.body", "body": _ERROR_BODY})
                    answered = perf_counter_ns()
            if start:
                _finish(scope, ctx, start, answered, status, exc, headed)
            raise
        if start:
            _finish(scope, ctx, start, answered, status, None, headed)
        _reset_current(token)


def _server_reader(propagator: Propagator) -> ServerReader:
    """Reads a request's headers into the server span's context and its response headers.

    The propagator's one-pass reader when its reading and writing are
    :class:`~logtrace.propagation.Propagator`'s own (a subclass may change
    them), else its two methods in turn.
    """
    respond = propagator.response_headers_asgi
    cls = type(propagator)
    if (
        cls.incoming_asgi is Extractor.incoming_asgi
        and cls.response_headers_asgi is Propagator.response_headers_asgi
        and cls.server_reader is Extractor.server_reader
    ):
        rid = propagator.request_id_header
        return propagator.server_reader(
            respond,
            propagator.traceresponse_header.encode("ascii")
            if "traceresponse" in propagator.response
            else None,
            rid.encode("ascii")
            if rid is not None and "request-id" in propagator.response
            else None,
        )
    incoming = propagator.incoming_asgi

    def read(headers: AsgiHeaders) -> tuple[TraceContext, list[tuple[bytes, bytes]]]:
        ctx = incoming(headers)
        return ctx, respond(ctx)

    return read


def _finish(
    scope: Scope,
    ctx: TraceContext,
    start: int,
    answered: int,
    status: int,
    error: BaseException | None,
    headed: int = 0,
) -> None:
    """Write the server span's record with OpenTelemetry HTTP attributes and,
    once the response's headers went out (``headed``) and once it was complete
    (``answered``; 0 if never), when."""
    # Both clocks read together: a span start put back from a wall time read
    # later (after the attributes, or a thread switch) would move the stated
    # answer (start + response_ms) late, past when the caller had it.
    ended, now = clock_pair()
    duration = now - start
    websocket = scope["type"] == "websocket"
    method: str = "GET" if websocket else scope.get("method", "GET")
    path = printable(scope.get("path", ""))
    scheme: str = scope.get("scheme") or ("ws" if websocket else "http")
    attributes: dict[str, object] = {
        HTTP_REQUEST_METHOD: method,
        URL_PATH: path,
        URL_SCHEME: scheme,
    }
    route = _route(scope)
    if route is not None:
        attributes[HTTP_ROUTE] = route
    if status:
        attributes[HTTP_RESPONSE_STATUS_CODE] = status
    if headed:
        attributes[HEADERS_MS] = (headed - start) // 1000 / 1000
    if answered:
        attributes[RESPONSE_MS] = (answered - start + 500) // 1000 / 1000
    address, port = _server(scope, scheme)
    if address is not None:
        attributes[SERVER_ADDRESS] = address
        if port is not None:
            attributes[SERVER_PORT] = port
    if websocket:
        attributes[NETWORK_PROTOCOL_NAME] = "websocket"
    elif "http_version" in scope:
        attributes[NETWORK_PROTOCOL_VERSION] = scope["http_version"]
    name = server_span_name(method, route)
    emit_span(KIND_SERVER, name, ctx, ended - duration, duration, attributes, error)


def _route(scope: Scope) -> str | None:
    """The route template the framework matched (Starlette, FastAPI), if any.

    Other frameworks can store theirs in the scope under ``"logtrace.route"``.
    """
    route = scope.get("route")
    if route is None:
        return stored_route(scope)
    path_format = getattr(route, "path_format", None)
    if not isinstance(path_format, str):
        return None
    root_path: str = scope.get("root_path", "")
    if hasattr(route, "routes"):
        # A mounted application that is not a router: the mount point is the route.
        return root_path or "/"
    return root_path.rstrip("/") + path_format or "/"


def _server(scope: Scope, scheme: str) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port``: the ``Host`` header, else the socket."""
    for name, value in scope["headers"]:
        if name == b"host":
            found = host_and_port(value.decode("latin-1"), scheme)
            if found is None:
                break
            return found
    server = scope.get("server")
    if server:
        return str(server[0]), server[1]
    return None, None
