"""``WSGITraceMiddleware``: a server span around every WSGI request.

The server span lasts until the server closes the response iterable, so it
covers streaming the body. The context stays current until then: gunicorn and
``wsgiref`` write their access log line after iterating the response and
before calling ``close()``, and that line should carry the request's trace.
When the application or the body raises, the context is left in place for the
server's exception log line; the next request on the thread replaces it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextvars import Token
from time import perf_counter_ns, time_ns
from types import TracebackType
from typing import Any, Protocol

from ._context import _CURRENT, TraceContext
from ._records import _enabled_for, _escape, _settings, emit_span
from .propagation import Propagator, _chosen

__all__ = ["ROUTE_KEY", "StartResponse", "WSGIApp", "WSGIEnvironment", "WSGITraceMiddleware"]

WSGIEnvironment = dict[str, Any]

ROUTE_KEY = "logtrace.route"
"""The environ key under which an application may store its route template."""
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
        propagator = _chosen(propagator, options)
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
        self.token = _CURRENT.set(ctx)
        # Span records share one level: if they are off now, skip the clock too.
        self.start = perf_counter_ns() if _settings.enabled and _enabled_for(_settings.level) else 0

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
                _finish(self.environ, self.ctx, self.start, self.status, error)
            if error is None:
                try:  # noqa: SIM105 - contextlib.suppress costs more than the rest of close()
                    _CURRENT.reset(self.token)
                except ValueError:
                    pass  # Closed from another thread or context: not ours to reset.


_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _finish(
    environ: WSGIEnvironment,
    ctx: TraceContext,
    start: int,
    status: str,
    error: BaseException | None,
) -> None:
    """Write the server span's record with OpenTelemetry HTTP attributes."""
    duration = perf_counter_ns() - start
    method: str = environ.get("REQUEST_METHOD", "GET")
    if not method.isprintable():
        method = _escape(method)
    path: str = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if not path.isprintable():
        path = _escape(path)
    scheme: str = environ.get("wsgi.url_scheme", "http")
    attributes: dict[str, object] = {
        "http.request.method": method,
        "url.path": path,
        "url.scheme": scheme,
    }
    route = _route(environ)
    if route is not None:
        attributes["http.route"] = route
    code = status[:3]
    if code.isdigit():
        attributes["http.response.status_code"] = int(code)
    elif error is not None:
        attributes["http.response.status_code"] = 500
    match = _HOST.fullmatch(environ.get("HTTP_HOST", ""))
    if match is not None:
        host, port = match.groups()
        attributes["server.address"] = host
        server_port = int(port) if port else _DEFAULT_PORTS.get(scheme)
    else:
        attributes["server.address"] = environ.get("SERVER_NAME", "")
        given: str = environ.get("SERVER_PORT", "")
        server_port = int(given) if given.isdigit() else None
    if server_port is not None:
        attributes["server.port"] = server_port
    protocol: str = environ.get("SERVER_PROTOCOL", "")
    if protocol.startswith("HTTP/"):
        attributes["network.protocol.version"] = protocol[5:]
    name = method if route is None else f"{method} {route}"
    emit_span("server", name, ctx, time_ns() - duration, duration, attributes, error)


def _route(environ: WSGIEnvironment) -> str | None:
    """The route template the application stored under ``"logtrace.route"``, if any.

    WSGI has no standard place for it; see the Flask and Django recipes in
    ``docs/frameworks.md``.
    """
    route = environ.get(ROUTE_KEY)
    return route if isinstance(route, str) and route.isprintable() else None
