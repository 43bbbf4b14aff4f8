"""``span()``: a child span as a context manager (sync and async) or decorator."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import Token
from time import perf_counter_ns
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from ._context import CURRENT, TraceContext, child_or_root
from ._records import emit_span
from ._schema import KIND_INTERNAL, SpanKind
from ._wallclock import clock_pair

__all__ = ["SpanBlock", "span"]

P = ParamSpec("P")
R = TypeVar("R")


class SpanBlock:
    """A span made current for a block (``with`` or ``async with``): the
    previous context comes back on exit, whatever the block raises, and one
    span record is written. Subclasses say how the span's context is made
    (:meth:`_open`) and what its record carries (``_kind``, :meth:`_record_attributes`)."""

    __slots__ = ("_attributes", "_name", "_start_ns", "_start_perf", "_token", "context")

    _kind: SpanKind = KIND_INTERNAL

    context: TraceContext | None
    """The span's context while it is open."""

    def __init__(self, name: str, attributes: dict[str, object]) -> None:
        self._name = name
        self._attributes = attributes
        self._token: Token[TraceContext | None] | None = None
        self.context = None
        self._start_ns = 0
        self._start_perf = 0

    def _open(self) -> TraceContext:
        return child_or_root()

    def _record_attributes(self) -> dict[str, object]:
        return self._attributes

    def __enter__(self) -> TraceContext:
        if self._token is not None:
            raise RuntimeError(
                f"{type(self).__name__} {self._name!r} is already open; create one per block"
            )
        ctx = self._open()
        self.context = ctx
        self._token = CURRENT.set(ctx)
        self._start_ns, self._start_perf = clock_pair()
        return ctx

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        duration = perf_counter_ns() - self._start_perf
        token, self._token = self._token, None
        ctx = self.context
        if token is not None:
            CURRENT.reset(token)
        if ctx is not None:
            emit_span(
                self._kind,
                self._name,
                ctx,
                self._start_ns,
                duration,
                self._record_attributes(),
                exc,
            )

    async def __aenter__(self) -> TraceContext:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class span(SpanBlock):
    """A child span of the current context, or the root of a new trace.

    ``with span("load-user", user=42) as ctx: ...`` runs the block in a new
    span and restores the previous context on exit, whatever the block
    raises. The same object works with ``async with`` and as a decorator,
    where every call of the decorated function gets a span of its own. When
    the span ends, one span record (kind ``internal``) is written.
    """

    __slots__ = ()

    def __init__(self, name: str, **attributes: object) -> None:
        super().__init__(name, attributes)

    @overload
    def __call__(self, func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]: ...
    @overload
    def __call__(self, func: Callable[P, R]) -> Callable[P, R]: ...
    def __call__(self, func: Callable[P, Any]) -> Callable[P, Any]:
        name, attributes = self._name, self._attributes
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with span(name, **attributes):
                    return await cast(Callable[P, Awaitable[Any]], func)(*args, **kwargs)

            return run_async

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> Any:
            with span(name, **attributes):
                return func(*args, **kwargs)

        return run
