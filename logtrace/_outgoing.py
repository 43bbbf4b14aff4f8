"""Outgoing calls: the headers that continue a trace, and the client span.

Every outgoing call is a client span of its own: a child of the running
context (or the root of a new trace) whose span ID is what the callee reads
as its parent. :func:`outgoing_headers` is the generic entry point; the httpx
and requests integrations use :class:`ClientSpan`, which also writes the
span record when the call ends.
"""

from __future__ import annotations

from time import perf_counter_ns
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ._context import TraceContext, child_or_root
from ._records import emit_span
from ._schema import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    KIND_CLIENT,
    SERVER_ADDRESS,
    SERVER_PORT,
    URL_FULL,
)
from ._wallclock import clock_pair
from .propagation import get_default

if TYPE_CHECKING:
    from collections.abc import MutableMapping

    from .propagation import Propagator

__all__ = ["ClientSpan", "outgoing_headers", "redact_url"]


def outgoing_headers(*, propagator: Propagator | None = None) -> dict[str, str]:
    """The headers for one outgoing call, as a new client span.

    Call it once per request: each call makes a new span ID, a child of the
    current context, or the root of a new trace outside any. The formats
    written are the default propagator's (see
    :func:`logtrace.propagation.set_default`) unless ``propagator`` is given.
    No span record is written; the httpx and requests integrations do that.
    """
    ctx = child_or_root()
    if propagator is None:
        propagator = get_default()
    return propagator.outgoing(ctx)


# Query parameters whose values are credentials (OpenTelemetry's list for url.full).
_SECRET_PARAMS = frozenset({"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"})


def redact_url(url: str) -> str:
    """``url`` without user name, password and signature query values.

    A span record ends up in log files that more people read than the
    service's configuration, so credentials embedded in a URL stay out.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = query.split("&")
        for i, pair in enumerate(pairs):
            key = pair.partition("=")[0]
            if key in _SECRET_PARAMS:
                pairs[i] = key + "=REDACTED"
        query = "&".join(pairs)
    out = f"{parts.scheme}://{netloc}{parts.path}" if parts.scheme else f"{netloc}{parts.path}"
    if query:
        out += "?" + query
    return out


class ClientSpan:
    """One outgoing call, from the moment it is sent until its response ends.

    Creating it opens nothing in the ContextVar: the caller's context stays
    current while the call runs, so log lines written meanwhile belong to the
    caller's span, and the client span exists only in the headers it sends
    and the record :meth:`finish` writes.
    """

    __slots__ = (
        "_request_id_header",
        "_start_ns",
        "_start_perf",
        "attributes",
        "context",
        "done",
        "headers",
        "name",
    )

    context: TraceContext
    """The client span: its ``span_id`` is the callee's ``parent_span_id``."""
    headers: dict[str, str]
    """The trace headers to put on the request."""
    attributes: dict[str, object]
    """Semantic-convention attributes for the span record."""

    def __init__(
        self,
        method: str,
        url: str,
        host: str,
        port: int | None,
        *,
        propagator: Propagator | None = None,
    ) -> None:
        ctx = child_or_root()
        self.context = ctx
        if propagator is None:
            propagator = get_default()
        self.headers = propagator.outgoing(ctx)
        self._request_id_header = propagator.request_id_header
        self.name = method
        self.attributes = {
            HTTP_REQUEST_METHOD: method,
            URL_FULL: redact_url(url),
            SERVER_ADDRESS: host,
        }
        if port is not None:
            self.attributes[SERVER_PORT] = port
        self.done = False
        self._start_ns, self._start_perf = clock_pair()

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Put the trace headers on a request's (case-insensitive) headers.

        Trace headers replace any already there, so that they always name
        this span (a redirect hop copies the previous hop's). A request ID
        header already there was set by the caller on purpose and is kept.
        """
        request_id_header = self._request_id_header
        for name, value in self.headers.items():
            if name == request_id_header and name in headers:
                continue
            headers[name] = value

    def status(self, code: int) -> None:
        """Record the response status; a 4xx or 5xx marks the call as failed."""
        self.attributes[HTTP_RESPONSE_STATUS_CODE] = code

    def finish(self, error: BaseException | None = None) -> None:
        """Write the span record, once, however often this is called."""
        if self.done:
            return
        self.done = True
        duration = perf_counter_ns() - self._start_perf
        emit_span(
            KIND_CLIENT, self.name, self.context, self._start_ns, duration, self.attributes, error
        )
