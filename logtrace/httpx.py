"""Trace propagation for httpx clients, sync and async.

``logtrace.httpx.Client()`` and ``logtrace.httpx.AsyncClient()`` are drop-in
``httpx.Client``/``httpx.AsyncClient`` whose requests continue the current
trace. For a client built elsewhere, wrap its transport instead::

    httpx.Client(transport=logtrace.httpx.TraceTransport(httpx.HTTPTransport(retries=2)))

Every request that reaches the transport (so every redirect hop) is a client
span of its own: the trace headers are set on the request, replacing any the
request already carries, while a request-ID header set explicitly is kept.
The span ends, and its record is written, when the response body is closed,
which httpx does after reading it unless the request was streamed.

A transport rather than event hooks: hooks see neither a request that fails
to connect nor the end of the body, and they would have to keep the client
span between two callbacks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from ._http import port_or_default
from ._outgoing import ClientSpan
from .propagation import Propagator

__all__ = ["AsyncClient", "AsyncTraceTransport", "Client", "TraceTransport"]


def _start(request: httpx.Request, propagator: Propagator | None) -> ClientSpan:
    url = request.url
    port = port_or_default(url.port, url.scheme)
    call = ClientSpan(request.method, str(url), url.host, port, propagator=propagator)
    call.inject(request.headers)
    return call


class _TracedStream(httpx.SyncByteStream):
    __slots__ = ("_call", "_stream")

    def __init__(self, stream: httpx.SyncByteStream, call: ClientSpan) -> None:
        self._stream = stream
        self._call = call

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._call.finish(exc)
            raise

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._call.finish()


class _AsyncTracedStream(httpx.AsyncByteStream):
    __slots__ = ("_call", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, call: ClientSpan) -> None:
        self._stream = stream
        self._call = call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            self._call.finish(exc)
            raise

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._call.finish()


class TraceTransport(httpx.BaseTransport):
    """Wrap a sync transport so that each request is a traced client span.

    ``transport`` defaults to a new ``httpx.HTTPTransport()``; ``propagator``
    to :func:`logtrace.propagation.get_default`, read on every request.
    """

    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        propagator: Propagator | None = None,
    ) -> None:
        self.transport = transport if transport is not None else httpx.HTTPTransport()
        self.propagator = propagator

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        call = _start(request, self.propagator)
        try:
            response = self.transport.handle_request(request)
        except BaseException as exc:
            call.finish(exc)
            raise
        call.status(response.status_code)
        stream = response.stream
        if isinstance(stream, httpx.SyncByteStream):
            response.stream = _TracedStream(stream, call)
        else:
            call.finish()
        return response

    def close(self) -> None:
        self.transport.close()


class AsyncTraceTransport(httpx.AsyncBaseTransport):
    """The async counterpart of :class:`TraceTransport`, for ``httpx.AsyncClient``."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        propagator: Propagator | None = None,
    ) -> None:
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.propagator = propagator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = _start(request, self.propagator)
        try:
            response = await self.transport.handle_async_request(request)
        except BaseException as exc:
            call.finish(exc)
            raise
        call.status(response.status_code)
        stream = response.stream
        if isinstance(stream, httpx.AsyncByteStream):
            response.stream = _AsyncTracedStream(stream, call)
        else:
            call.finish()
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


class Client(httpx.Client):
    """``httpx.Client`` whose transports, mounted ones included, are traced.

    Takes every ``httpx.Client`` argument, plus ``propagator``. A transport
    that is already a :class:`TraceTransport` is used as it is.
    """

    def __init__(self, *, propagator: Propagator | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)

        def trace(transport: httpx.BaseTransport) -> httpx.BaseTransport:
            if isinstance(transport, TraceTransport):
                return transport
            return TraceTransport(transport, propagator=propagator)

        self._transport = trace(self._transport)
        self._mounts = {p: None if t is None else trace(t) for p, t in self._mounts.items()}


class AsyncClient(httpx.AsyncClient):
    """``httpx.AsyncClient`` whose transports, mounted ones included, are traced.

    Takes every ``httpx.AsyncClient`` argument, plus ``propagator``.
    """

    def __init__(self, *, propagator: Propagator | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)

        def trace(transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
            if isinstance(transport, AsyncTraceTransport):
                return transport
            return AsyncTraceTransport(transport, propagator=propagator)

        self._transport = trace(self._transport)
        self._mounts = {p: None if t is None else trace(t) for p, t in self._mounts.items()}
