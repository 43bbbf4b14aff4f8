"""The trace across a message queue: headers on the way out, a consumer span on the way in.

Any transport that carries headers with a message (Kafka, RabbitMQ, SQS
message attributes, NATS, Redis streams with a header field) continues a
trace the way an HTTP call does:

- the producer writes the headers of a *producer span* into the message's
  header carrier (:func:`inject_headers`, or :class:`producer_span` around the
  send) and logs that span's record;
- the consumer continues the trace in a *consumer span* whose parent is the
  producer span (:class:`consumer_span`, a context manager, sync and async,
  or a decorator), which is current while the message is handled and logs
  its own record when it ends.

A header carrier is either a mapping (``dict``: pika, kombu, confluent-kafka)
or a list of ``(name, value)`` pairs (kafka-python, aiokafka,
confluent-kafka). Into a list, values are written as UTF-8 ``bytes`` (what
Kafka clients require); into a mapping, as ``str``. Trace headers already in
the carrier are replaced; a request ID header already there is kept. Either
kind is read with ``str`` or ``bytes`` values and names in any case. The
formats are those of the default propagator
(:func:`logtrace.propagation.set_default`) unless a ``propagator`` is given;
incoming headers are untrusted input and handled as the HTTP middleware
handles them.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from time import perf_counter_ns
from types import TracebackType
from typing import Any, ParamSpec, TypeAlias, TypeVar, cast, overload

from ._context import CURRENT, TraceContext, child_or_root
from ._records import emit_span
from ._schema import KIND_CONSUMER, SpanKind
from ._span import SpanBlock
from ._wallclock import clock_pair
from .propagation import Propagator, get_default

__all__ = ["Carrier", "consumer_span", "extract_context", "inject_headers", "producer_span"]

P = ParamSpec("P")
R = TypeVar("R")

Carrier: TypeAlias = MutableMapping[str, Any] | list[tuple[str, Any]]
"""A message's headers: a mapping, or a list of ``(name, value)`` pairs."""


def _write(carrier: Carrier, headers: dict[str, str], request_id_header: str | None) -> None:
    """Put ``headers`` into ``carrier``, replacing trace headers already there.

    A request ID header already in the carrier was put there on purpose and is kept.
    """
    if request_id_header is not None and request_id_header in headers:
        names = (pair[0] for pair in carrier) if isinstance(carrier, list) else iter(carrier)
        if any(isinstance(n, str) and n.lower() == request_id_header for n in names):
            headers = {k: v for k, v in headers.items() if k != request_id_header}
    if isinstance(carrier, list):
        carrier[:] = [
            pair
            for pair in carrier
            if not isinstance(pair[0], str) or pair[0].lower() not in headers
        ]
        carrier.extend((name, value.encode()) for name, value in headers.items())
    else:
        for name in list(carrier):
            if isinstance(name, str) and name.lower() in headers and name not in headers:
                del carrier[name]
        carrier.update(headers)


def _pairs(carrier: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> list[tuple[bytes, bytes]]:
    """The carrier's headers as lowercase-name ``bytes`` pairs (ASGI's shape)."""
    items = carrier.items() if isinstance(carrier, Mapping) else carrier
    out: list[tuple[bytes, bytes]] = []
    for name, value in items:
        if not isinstance(name, str):
            continue
        if isinstance(value, str):
            data = value.encode("utf-8", "replace")
        elif isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
        else:
            continue  # None (Kafka allows it), numbers: not trace headers
        out.append((name.lower().encode("utf-8", "replace"), data))
    return out


def extract_context(
    carrier: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
    *,
    propagator: Propagator | None = None,
) -> TraceContext:
    """The context of a consumer span for a message with these headers.

    A child of the producer span the headers name. A message that carries no
    valid trace headers gets a child of the current context, or, outside any,
    the root of a new trace. Nothing is made current and no record is
    written; :class:`consumer_span` does both.
    """
    if carrier is None:
        return child_or_root()
    if propagator is None:
        propagator = get_default()
    ctx = propagator.incoming_asgi(_pairs(carrier))
    if ctx.parent_span_id is None and ctx.link is None:
        parent = CURRENT.get()
        if parent is not None:
            request_id = ctx.request_id or parent.request_id
            ctx = TraceContext.child_of(parent)._replace(request_id=request_id)
    return ctx


def inject_headers(
    carrier: Carrier,
    name: str = "send",
    *,
    propagator: Propagator | None = None,
    **attributes: object,
) -> TraceContext:
    """Write a new producer span's headers into ``carrier`` and log its record.

    Call it once per message, just before sending: the span is a child of
    the current context (or the root of a new trace) and ends at once, so
    its record shows when the message left, not how long sending took; use
    :class:`producer_span` around the send for that, or for a send that
    fails. Returns the producer span's context, the consumer's parent.
    """
    with producer_span(name, carrier, propagator=propagator, **attributes) as ctx:
        return ctx


class producer_span:
    """A producer span around sending one message (``with``, ``async with``).

    On entry, the headers of a new span (a child of the current context, or
    the root of a new trace) are written into ``carrier``; on exit, the span
    record is logged, with ``error.type`` when the block raised. As with an
    HTTP client span, the caller's context stays current inside the block.
    ``attributes`` go on the record (for example ``messaging.system``,
    ``messaging.destination.name``).
    """

    __slots__ = (
        "_attributes",
        "_carrier",
        "_ctx",
        "_name",
        "_propagator",
        "_start_ns",
        "_start_perf",
    )

    _ctx: TraceContext

    def __init__(
        self,
        name: str,
        carrier: Carrier,
        *,
        propagator: Propagator | None = None,
        **attributes: object,
    ) -> None:
        self._name = name
        self._carrier = carrier
        self._propagator = propagator
        self._attributes = attributes
        self._start_ns = 0
        self._start_perf = 0

    def __enter__(self) -> TraceContext:
        ctx = child_or_root()
        propagator = self._propagator or get_default()
        _write(self._carrier, propagator.outgoing(ctx), propagator.request_id_header)
        self._start_ns, self._start_perf = clock_pair()
        self._ctx = ctx
        return ctx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration = perf_counter_ns() - self._start_perf
        attributes = {"messaging.operation.type": "send", **self._attributes}
        emit_span("producer", self._name, self._ctx, self._start_ns, duration, attributes, exc)

    async def __aenter__(self) -> TraceContext:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class consumer_span(SpanBlock):
    """A consumer span for handling one message: the producer's trace, continued.

    ``with consumer_span("process orders", message.headers()) as ctx:`` makes
    a child of the producer span current for the block (see
    :func:`extract_context`), restores the previous context on exit and logs
    the span record, with ``error.type`` when the block raised. It also works
    with ``async with`` and, given ``headers_from`` (a function of the
    decorated function's arguments that returns the carrier), as a decorator
    of a sync or async message handler, with a span per call.
    """

    __slots__ = ("_carrier", "_headers_from", "_propagator")

    _kind: SpanKind = KIND_CONSUMER

    def __init__(
        self,
        name: str,
        carrier: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        *,
        headers_from: Callable[..., Mapping[str, Any] | Iterable[tuple[str, Any]] | None]
        | None = None,
        propagator: Propagator | None = None,
        **attributes: object,
    ) -> None:
        super().__init__(name, attributes)
        self._carrier = carrier
        self._headers_from = headers_from
        self._propagator = propagator

    def _open(self) -> TraceContext:
        return extract_context(self._carrier, propagator=self._propagator)

    def _record_attributes(self) -> dict[str, object]:
        return {"messaging.operation.type": "process", **self._attributes}

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        headers_from = self._headers_from
        if headers_from is None:
            raise TypeError("consumer_span used as a decorator needs headers_from=")
        name, propagator = self._name, self._propagator
        attributes = cast(dict[str, Any], self._attributes)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def handle_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                carrier = headers_from(*args, **kwargs)
                async with consumer_span(name, carrier, propagator=propagator, **attributes):
                    return await cast(Callable[P, Awaitable[Any]], func)(*args, **kwargs)

            return handle_async

        @functools.wraps(func)
        def handle(*args: P.args, **kwargs: P.kwargs) -> Any:
            carrier = headers_from(*args, **kwargs)
            with consumer_span(name, carrier, propagator=propagator, **attributes):
                return func(*args, **kwargs)

        return handle
