"""``span()``: a child span as a context manager (sync and async) or decorator."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from contextvars import Token
from time import perf_counter_ns, time_ns
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast, overload

from ._context import CURRENT, TraceContext, child_or_root
from ._records import emit_span
from ._schema import KIND_INTERNAL

__all__ = ["span"]

P = ParamSpec("P")
R = TypeVar("R")


class span:
    """A child span of the current context, or the root of a new trace.

    ``with span("load-user", user=42) as ctx: ...`` runs the block in a new
    span and restores the previous context on exit, whatever the block
    raises. The same object works with ``async with`` and as a decorator,
    where every call of the decorated function gets a span of its own. When
    the span ends, one span record (kind ``internal``) is written.
    """

    __slots__ = ("_attributes", "_name", "_start_ns", "_start_perf", "_token", "context")

    context: TraceContext | None
    """The span's context while it is open."""

    def __init__(self, name: str, **attributes: object) -> None:
        self._name = name
        self._attributes = attributes
        self._token: Token[TraceContext | None] | None = None
        self.context = None
        self._start_ns = 0
        self._start_perf = 0

    def __enter__(self) -> TraceContext:
        if self._token is not None:
            raise RuntimeError(f"span {self._name!r} is already open; create one per block")
        ctx = child_or_root()
        self.context = ctx
        self._token = CURRENT.set(ctx)
        self._start_ns = time_ns()
        self._start_perf = perf_counter_ns()
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
                KIND_INTERNAL, self._name, ctx, self._start_ns, duration, self._attributes, exc
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
