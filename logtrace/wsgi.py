"""``WSGITraceMiddleware``: a server span around every WSGI request.

The server span lasts until the server closes the response iterable, so it
covers streaming the body and the application's ``close()``; its record says
when the server started writing the body (``response_ms``): the caller cannot
have had its answer before, and for a body built in one piece (most are) the
response was complete then. The context stays current until then: gunicorn and
``wsgiref`` write their access log line after iterating the response and
before calling ``close()``, and that line should carry the request's trace.
When the application or the body raises, the context is left in place for the
server's exception log line; the next request on the thread replaces it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from time import perf_counter_ns
from types import TracebackType
from typing import Any, Protocol

from ._context import CURRENT, TraceContext
from ._http import ROUTE_KEY, host_and_port, printable, server_span_name, stored_route
from ._records import emit_span, enabled_for, settings
from ._schema import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
    KIND_SERVER,
    NETWORK_PROTOCOL_VERSION,
    RESPONSE_MS,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_PATH,
    URL_SCHEME,
)
from ._wallclock import clock_pair
from .propagation import Propagator, chosen_propagator

__all__ = ["ROUTE_KEY", "StartResponse", "WSGIApp", "WSGIEnvironment", "WSGITraceMiddleware"]

WSGIEnvironment = dict[str, Any]

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class StartResponse(Protocol):
    """The ``start_response`` callable of PEP 3333."""

    def __call__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: _ExcInfo | None = ...,
        /,
    ) -> Callable[[bytes], object]: ...


WSGIApp = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]


class WSGITraceMiddleware:
    """Run every request of a WSGI application in a server span.

    ``app.wsgi_app = WSGITraceMiddleware(app.wsgi_app)`` (Flask) or
    ``application = WSGITraceMiddleware(get_wsgi_application())`` (Django).
    Options are those of :class:`~logtrace.propagation.Propagator`, or a
    ready ``propagator=``; with neither, the default propagator is used.
    """

    def __init__(
        self, app: WSGIApp, /, *, propagator: Propagator | None = None, **options: Any
    ) -> None:
        propagator = chosen_propagator(propagator, options)
        self.app = app
        self.propagator = propagator
        self._incoming = propagator.incoming_wsgi
        self._respond = propagator.response_headers_wsgi

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        ctx = self._incoming(environ)
        response = _TracedResponse(environ, ctx, start_response, self._respond)
        try:
            body = self.app(environ, response.start_response)
        except BaseException as exc:
            if response.start:
                _finish(environ, ctx, response.start, response.status, exc)
            raise
        response.body = body
        response.body_close = getattr(body, "close", None)
        if type(body) is environ.get("wsgi.file_wrapper"):
            # Hand the server its own file wrapper back, so that it can still
            # use sendfile(), and end the span from the wrapper's close().
            try:
                body.close = response.close  # type: ignore[attr-defined]
            except AttributeError:
                return response
            return body
        return response


class _TracedResponse:
    """The application's response iterable, ending the span when closed.

    Iterating hands out the application's own iterator, so streaming a body
    costs nothing per chunk.
    """

    __slots__ = (
        "answered",
        "body",
        "body_close",
        "ctx",
        "environ",
        "respond",
        "start",
        "status",
        "token",
        "upstream",
    )

    body: Iterable[bytes]
    body_close: Callable[[], object] | None
    token: Token[TraceContext | None]

    def __init__(
        self,
        environ: WSGIEnvironment,
        ctx: TraceContext,
        upstream: StartResponse,
        respond: Callable[[TraceContext], list[tuple[str, str]]],
    ) -> None:
        self.environ = environ
        self.ctx = ctx
        self.upstream = upstream
        self.respond = respond
        self.status = ""
        self.answered = 0
        self.token = CURRENT.set(ctx)
        # Span records share one level: if they are off now, skip the clock too.
        self.start = perf_counter_ns() if settings.enabled and enabled_for(settings.level) else 0

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: _ExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]:
        self.status = status
        return self.upstream(status, [*headers, *self.respond(self.ctx)], exc_info)

    def __iter__(self) -> Iterator[bytes]:
        # The server starts writing the body: the caller cannot have its answer before.
        self.answered = perf_counter_ns()
        return iter(self.body)

    def close(self) -> None:
        # Servers call close() from a ``finally`` or ``except`` block when the
        # body raised: then the exception is still being handled here.
        error = sys.exc_info()[1]
        close = self.body_close
        try:
            if close is not None:
                close()
        finally:
            if self.start:
                _finish(self.environ, self.ctx, self.start, self.status, error, self.answered)
            if error is None:
                try:  # noqa: SIM105 - contextlib.suppress costs more than the rest of close()
                    CURRENT.reset(self.token)
                except ValueError:
                    pass  # Closed from another thread or context: not ours to reset.


def _finish(
    environ: WSGIEnvironment,
    ctx: TraceContext,
    start: int,
    status: str,
    error: BaseException | None,
    answered: int = 0,
) -> None:
    """Write the server span's record with OpenTelemetry HTTP attributes and
    when the server started writing the body (``answered``, 0 if never)."""
    # Both clocks read together: a span start put back from a wall time read
    # later (after the attributes, or a thread switch) would move the stated
    # answer (start + response_ms) late, past when the caller had it.
    ended, now = clock_pair()
    duration = now - start
    method = printable(environ.get("REQUEST_METHOD", "GET"))
    path = printable(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""))
    scheme: str = environ.get("wsgi.url_scheme", "http")
    attributes: dict[str, object] = {
        HTTP_REQUEST_METHOD: method,
        URL_PATH: path,
        URL_SCHEME: scheme,
    }
    # WSGI has no standard place for the route template; see the Flask and
    # Django recipes in docs/frameworks.md.
    route = stored_route(environ)
    if route is not None:
        attributes[HTTP_ROUTE] = route
    code = status[:3]
    if code.isascii() and code.isdigit():
        attributes[HTTP_RESPONSE_STATUS_CODE] = int(code)
    elif error is not None:
        attributes[HTTP_RESPONSE_STATUS_CODE] = 500
    host = host_and_port(environ.get("HTTP_HOST", ""), scheme)
    if host is not None:
        attributes[SERVER_ADDRESS], server_port = host
    else:
        attributes[SERVER_ADDRESS] = environ.get("SERVER_NAME", "")
        given: str = environ.get("SERVER_PORT", "")
        server_port = int(given) if given.isascii() and given.isdigit() else None
    if server_port is not None:
        attributes[SERVER_PORT] = server_port
    if answered:
        attributes[RESPONSE_MS] = (answered - start + 500) // 1000 / 1000
    protocol: str = environ.get("SERVER_PROTOCOL", "")
    if protocol.startswith("HTTP/"):
        attributes[NETWORK_PROTOCOL_VERSION] = protocol[5:]
    name = server_span_name(method, route)
    emit_span(KIND_SERVER, name, ctx, ended - duration, duration, attributes, error)
