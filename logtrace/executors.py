"""Work handed to threads keeps the trace.

The trace context lives in a :class:`~contextvars.ContextVar`, and
``ThreadPoolExecutor.submit`` and ``loop.run_in_executor`` run the callable in
the worker thread's own context, where no trace is current: log lines written
there carry no IDs. (``asyncio.to_thread`` and ``loop.call_soon`` do copy the
context; threads started by hand and pools do not.)

:class:`ContextExecutor` is a ``ThreadPoolExecutor`` whose ``submit`` (and so
``map``) runs each callable in a copy of the context taken at submit time.
:func:`in_context` binds any callable to the context of the moment it is
called, for pools you do not create (``loop.run_in_executor(None, ...)``,
a library's executor, ``threading.Thread(target=...)``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from typing import ParamSpec, TypeVar

__all__ = ["ContextExecutor", "in_context"]

P = ParamSpec("P")
R = TypeVar("R")


class ContextExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` that runs each task in the submitter's context.

    The context (every ContextVar: logtrace's trace, structlog's bound
    variables, ...) is copied when ``submit`` or ``map`` is called, so a task
    sees the trace of the code that handed it over, whichever thread runs it,
    and its own changes to context variables stay within the task. Takes the
    same arguments as ``ThreadPoolExecutor``.
    """

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        return super().submit(functools.partial(copy_context().run, fn, *args, **kwargs))


def in_context(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` bound to the current context, as it is now.

    Each call of the returned function runs ``fn`` in a fresh copy of the
    context captured here, so it may be called several times, from several
    threads at once. Capture it where the trace is current (in the request
    handler), then hand it to the pool::

        await loop.run_in_executor(None, in_context(resize), image)
    """
    captured = copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(fn, *args, **kwargs)

    return run
