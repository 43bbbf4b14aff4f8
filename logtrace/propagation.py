"""Reading and writing trace context in HTTP headers.

MINIMAL SKELETON: W3C traceparent only. To be completed with tracestate, B3,
X-Request-ID, X-Amzn-Trace-Id, precedence and configuration, keeping this
interface.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._context import TraceContext, new_root
from ._ids import new_span_id

__all__ = ["Propagator", "default_propagator"]

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


class Propagator:
    """Which header formats are read (in precedence order) and written."""

    __slots__ = ("extract", "inject")

    def __init__(
        self,
        *,
        extract: Sequence[str] = ("tracecontext",),
        inject: Sequence[str] = ("tracecontext",),
    ) -> None:
        self.extract = tuple(extract)
        self.inject = tuple(inject)

    def _server(self, traceparent: str | None) -> TraceContext:
        if traceparent is not None:
            m = _TRACEPARENT.fullmatch(traceparent)
            if m is not None:
                trace_id, parent, flags = m.groups()
                f = int(flags, 16)
                return TraceContext(trace_id, new_span_id(), parent, bool(f & 1), bool(f & 2))
        return new_root()

    def incoming_asgi(self, headers: Iterable[tuple[bytes, bytes]]) -> TraceContext:
        """The server span's context for a request with these ASGI headers."""
        for name, value in headers:
            if name == b"traceparent":
                return self._server(value.decode("latin-1"))
        return new_root()

    def incoming_wsgi(self, environ: Mapping[str, Any]) -> TraceContext:
        """The server span's context for a request with this WSGI environ."""
        return self._server(environ.get("HTTP_TRACEPARENT"))

    def incoming(self, headers: Mapping[str, str]) -> TraceContext:
        """The server span's context for headers keyed by lowercase name."""
        return self._server(headers.get("traceparent"))

    def outgoing(self, context: TraceContext) -> dict[str, str]:
        """Headers that make ``context.span_id`` the callee's parent span."""
        return {"traceparent": context.traceparent}

    def response_headers_asgi(self, context: TraceContext) -> list[tuple[bytes, bytes]]:
        """Headers that tell the caller which trace its request joined."""
        return [(b"traceresponse", context.traceparent.encode("ascii"))]

    def response_headers_wsgi(self, context: TraceContext) -> list[tuple[str, str]]:
        """The same as :meth:`response_headers_asgi`, as WSGI ``str`` pairs."""
        return [("traceresponse", context.traceparent)]


default_propagator = Propagator()
