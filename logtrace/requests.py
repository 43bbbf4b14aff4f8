"""Trace propagation for requests sessions.

``logtrace.requests.Session()`` is a drop-in ``requests.Session`` whose
requests continue the current trace: every adapter mounted on it, the
default ones included, is wrapped in a :class:`TraceAdapter`. To trace a
single adapter of an existing session::

    session.mount("https://", logtrace.requests.TraceAdapter(HTTPAdapter(max_retries=3)))

Every request that reaches the adapter (so every redirect hop) is a client
span of its own. The trace headers are set on a copy of the prepared request,
replacing any the request carries, while a request-ID header set explicitly
is kept. The span ends when the body has been read, or, for ``stream=True``,
when the response headers have arrived.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter

from ._http import port_or_default
from ._outgoing import ClientSpan
from .propagation import Propagator

__all__ = ["Session", "TraceAdapter"]


class TraceAdapter(BaseAdapter):
    """Wrap a transport adapter so that each request is a traced client span.

    ``adapter`` defaults to a new ``requests.adapters.HTTPAdapter()``;
    ``propagator`` to :func:`logtrace.propagation.get_default`, read on
    every request.
    """

    def __init__(
        self, adapter: BaseAdapter | None = None, *, propagator: Propagator | None = None
    ) -> None:
        super().__init__()
        self.adapter = adapter if adapter is not None else HTTPAdapter()
        self.propagator = propagator

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        url = request.url or ""
        parts = urlsplit(url)
        port = port_or_default(parts.port, parts.scheme)
        call = ClientSpan(
            request.method or "GET",
            url,
            parts.hostname or "",
            port,
            propagator=self.propagator,
        )
        # A copy, so that the next redirect hop, which requests builds from
        # the request it passed here, starts without this span's headers.
        sent = request.copy()
        call.inject(sent.headers)
        stream = kwargs.get("stream", args[0] if args else False)
        try:
            response = self.adapter.send(sent, *args, **kwargs)
            call.status(response.status_code)
            if not stream:
                response.content  # noqa: B018 - the body belongs to the call's duration
        except BaseException as exc:
            call.finish(exc)
            raise
        call.finish()
        return response

    def close(self) -> None:
        self.adapter.close()


class Session(requests.Session):
    """``requests.Session`` that traces every adapter mounted on it.

    ``propagator`` defaults to :func:`logtrace.propagation.get_default`.
    """

    _propagator: Propagator | None = None

    def __init__(self, *, propagator: Propagator | None = None) -> None:
        self._propagator = propagator  # before __init__, which mounts the defaults
        super().__init__()

    def mount(self, prefix: str | bytes, adapter: BaseAdapter) -> None:
        if not isinstance(adapter, TraceAdapter):
            adapter = TraceAdapter(adapter, propagator=self._propagator)
        super().mount(prefix, adapter)
