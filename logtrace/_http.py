"""HTTP helpers shared by the middleware, the client integrations and the propagator.

Route templates stored by applications, default ports, the ``Host`` header,
WSGI environ keys, and the two ways an untrusted value is made safe for a
log line. Standard library only, and no other logtrace module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "DEFAULT_PORTS",
    "ROUTE_KEY",
    "host_and_port",
    "log_quote",
    "port_or_default",
    "printable",
    "server_span_name",
    "stored_route",
    "wsgi_key",
]

ROUTE_KEY = "logtrace.route"
"""The ASGI scope or WSGI environ key under which an application may store its route template."""

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
"""The port a URL scheme implies when none is given."""

_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?")


def port_or_default(port: int | None, scheme: str) -> int | None:
    """``port``, or the scheme's default port when none was given."""
    return port or DEFAULT_PORTS.get(scheme)


def host_and_port(host: str, scheme: str) -> tuple[str, int | None] | None:
    """``server.address`` and ``server.port`` from a ``Host`` header value.

    The port defaults to the scheme's; ``None`` when the value is not a
    host name or bracketed IP address with an optional port.
    """
    match = _HOST.fullmatch(host)
    if match is None:
        return None
    name, port = match.groups()
    return name, int(port) if port else DEFAULT_PORTS.get(scheme)


def stored_route(mapping: Mapping[str, object]) -> str | None:
    """The route template an application stored under :data:`ROUTE_KEY`, if it is printable text."""
    route = mapping.get(ROUTE_KEY)
    return route if isinstance(route, str) and route.isprintable() else None


def server_span_name(method: str, route: str | None) -> str:
    """A server span's name: ``GET /items/{id}``, or the method alone without a route."""
    return method if route is None else f"{method} {route}"


def wsgi_key(header: str) -> str:
    """The WSGI environ key of a request header: ``x-request-id`` -> ``HTTP_X_REQUEST_ID``."""
    return "HTTP_" + header.upper().replace("-", "_")


def printable(text: str) -> str:
    """``text`` as it is when printable, else with control and other unprintable characters
    escaped: request paths and methods go into span records as they came."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def log_quote(value: str) -> str:
    """An untrusted header value made safe to quote in a log line: escaped, ASCII-only,
    truncated."""
    text = ascii(value[:64])
    if len(text) > 80:
        return text[:80] + "..."
    if len(value) > 64:
        return text + "..."
    return text
