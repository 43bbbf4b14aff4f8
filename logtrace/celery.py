"""Celery: the trace carried from the code that queues a task into the worker that runs it.

``from logtrace.celery import instrument; instrument(app)``, in the module
that creates the app (imported by both the producer and the worker):

- **Publishing** a task (``delay``, ``apply_async``, a chain's next step, a
  retry, a chord's callback) is a *producer span*: a child of the current
  context, or the root of a new trace, whose headers travel in the task
  message. Its record is logged as the message is handed to the broker (a
  worker can start the task before the broker's reply reaches the publisher).
- **Running** a task is a *consumer span*, a child of that producer span,
  current while the task runs (its log lines, and Celery's own, carry the
  IDs), whose record is logged when the run ends: task name and id, retries,
  the outcome (``celery.state``), the duration, ``error.type`` on failure.
  A retry, a chain's next task or a chord's callback is published from inside
  the running task, so it stays in the trace, one level down.
- **Logging**: a worker hijacks the root logger after importing the task
  modules, which removes the handler :func:`logtrace.configure_logging`
  installed there. When the worker starts with a logtrace handler on the
  root logger, the root logger's handlers and level are put back after
  Celery's setup, and task loggers (``get_task_logger``) propagate to it.

Celery's signals are process-wide: once one app is instrumented, every app
in the process is traced. This module imports Celery; ``import logtrace``
does not.
"""

from __future__ import annotations

import logging
from time import perf_counter_ns
from typing import Any

from celery import signals  # type: ignore[import-untyped]

from ._context import CURRENT, TraceContext, child_or_root
from ._records import emit_span, enabled_for, settings
from ._wallclock import clock_pair
from .propagation import Propagator, get_default
from .stdlib import TraceContextFilter

__all__ = ["instrument", "uninstrument"]

_UID = "logtrace.celery"


class _State:
    __slots__ = ("propagator", "root_handlers", "running")

    def __init__(self) -> None:
        self.propagator: Propagator | None = None
        # task id -> the runs of that task in progress (eager runs may nest)
        self.running: dict[str, list[_Run]] = {}
        self.root_handlers: tuple[list[logging.Handler], int] | None = None


class _Run:
    __slots__ = ("context", "error", "request", "retry_reason", "start_ns", "start_perf", "token")

    def __init__(self, context: TraceContext, token: Any, request: Any) -> None:
        self.context = context
        self.token = token
        self.request = request
        self.error: BaseException | None = None
        self.retry_reason: str | None = None
        self.start_ns, self.start_perf = clock_pair()


_state = _State()


def instrument(app: Any = None, *, propagator: Propagator | None = None) -> None:
    """Trace Celery task publishing and runs in this process.

    ``app`` is the Celery app (accepted for symmetry with other
    integrations; the signals Celery offers are process-wide). Headers are
    written and read in ``propagator``'s formats, by default the default
    propagator's. Calling it again changes only the propagator.
    """
    _state.propagator = propagator
    signals.before_task_publish.connect(_before_publish, weak=False, dispatch_uid=_UID)
    signals.task_prerun.connect(_prerun, weak=False, dispatch_uid=_UID)
    signals.task_retry.connect(_retry, weak=False, dispatch_uid=_UID)
    signals.task_failure.connect(_failure, weak=False, dispatch_uid=_UID)
    signals.task_postrun.connect(_postrun, weak=False, dispatch_uid=_UID)
    signals.worker_init.connect(_remember_logging, weak=False, dispatch_uid=_UID)
    signals.after_setup_logger.connect(_restore_logging, weak=False, dispatch_uid=_UID)
    signals.after_setup_task_logger.connect(_task_logger, weak=False, dispatch_uid=_UID)


def uninstrument() -> None:
    """Stop tracing Celery in this process (tasks running now still log their records)."""
    signals.before_task_publish.disconnect(dispatch_uid=_UID)
    signals.task_prerun.disconnect(dispatch_uid=_UID)
    signals.task_retry.disconnect(dispatch_uid=_UID)
    signals.task_failure.disconnect(dispatch_uid=_UID)
    signals.worker_init.disconnect(dispatch_uid=_UID)
    signals.after_setup_logger.disconnect(dispatch_uid=_UID)
    signals.after_setup_task_logger.disconnect(dispatch_uid=_UID)
    if not _state.running:  # else the runs in progress still need their end
        signals.task_postrun.disconnect(dispatch_uid=_UID)


# -- publishing ------------------------------------------------------------------


def _before_publish(
    sender: Any = None,
    body: Any = None,
    routing_key: str | None = None,
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    if headers is None:
        return
    start_ns, start_perf = clock_pair()
    ctx = child_or_root()
    headers.update((_state.propagator or get_default()).outgoing(ctx))
    if not (settings.enabled and enabled_for(settings.level)):
        return  # no record to write: the headers are all
    task_id = headers.get("id")
    if task_id is None and isinstance(body, dict):  # message protocol 1
        task_id = body.get("id")
    name = str(headers.get("task") or sender or "celery.task")
    attributes: dict[str, object] = {
        "messaging.system": "celery",
        "messaging.operation.type": "send",
        "messaging.message.id": task_id,
        "celery.task_name": name,
    }
    if routing_key:
        attributes["messaging.destination.name"] = routing_key
    retries = headers.get("retries")
    if retries:
        attributes["celery.retries"] = retries
    # Logged before the message leaves: a worker may start the task before the
    # broker's reply reaches the publisher, and the story must show the
    # queueing first.
    emit_span("producer", name, ctx, start_ns, perf_counter_ns() - start_perf, attributes)


# -- running ----------------------------------------------------------------------


def _prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task_id is None or task is None:
        return
    # Message headers Celery does not know become attributes of the request
    # (the same object until the run ends: Celery pops it after task_postrun).
    request = getattr(task, "request", None)
    fields = getattr(request, "__dict__", None)
    ctx = (_state.propagator or get_default()).incoming(fields or {})
    if ctx.parent_span_id is None and ctx.link is None:
        # No trace in the message (an eager run, a publisher without logtrace):
        # a child of the running code's span, or the root of a new trace.
        ctx = child_or_root()
    run = _Run(ctx, CURRENT.set(ctx), request)
    runs = _state.running.get(task_id)
    if runs is None:
        _state.running[task_id] = [run]
    else:
        runs.append(run)


def _current_run(task_id: str | None) -> _Run | None:
    runs = _state.running.get(task_id) if task_id is not None else None
    return runs[-1] if runs else None


def _retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    run = _current_run(getattr(request, "id", None))
    if run is not None:
        # ``reason`` is Celery's Retry; the exception that caused it, when given, is its ``exc``.
        cause = getattr(reason, "exc", None)
        if not isinstance(cause, BaseException):
            cause = reason
        if isinstance(cause, BaseException):
            run.retry_reason = type(cause).__qualname__


def _failure(task_id: str | None = None, exception: BaseException | None = None, **_: Any) -> None:
    run = _current_run(task_id)
    if run is not None:
        run.error = exception


def _postrun(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    if task_id is None:
        return
    runs = _state.running.get(task_id)
    if not runs:
        return
    run = runs.pop()
    if not runs:
        del _state.running[task_id]
    duration = perf_counter_ns() - run.start_perf
    try:  # noqa: SIM105 - contextlib.suppress costs a context manager per task
        CURRENT.reset(run.token)
    except (ValueError, RuntimeError):
        pass  # a pool that ran prerun in another context: leave that context as it is
    if not (settings.enabled and enabled_for(settings.level)):
        return
    request = run.request
    name = str(getattr(task, "name", None) or "celery.task")
    attributes: dict[str, object] = {
        "messaging.system": "celery",
        "messaging.operation.type": "process",
        "messaging.message.id": task_id,
        "celery.task_name": name,
        "celery.retries": getattr(request, "retries", 0) or 0,
    }
    delivery = getattr(request, "delivery_info", None)
    if isinstance(delivery, dict) and delivery.get("routing_key"):
        attributes["messaging.destination.name"] = delivery["routing_key"]
    if state is not None:
        attributes["celery.state"] = state
    if run.retry_reason is not None:
        attributes["celery.retry_reason"] = run.retry_reason
    emit_span("consumer", name, run.context, run.start_ns, duration, attributes, run.error)


# -- logging ------------------------------------------------------------------------


def _is_logtrace(handler: logging.Handler) -> bool:
    return any(isinstance(f, TraceContextFilter) for f in handler.filters)


def _remember_logging(**_: Any) -> None:
    """At worker start, after the task modules ran: the root logger's setup, if logtrace's."""
    root = logging.getLogger()
    if any(_is_logtrace(h) for h in root.handlers):
        _state.root_handlers = (list(root.handlers), root.level)


def _restore_logging(logger: logging.Logger | None = None, **_: Any) -> None:
    """After Celery set up the root logger: logtrace's handlers and level back."""
    saved = _state.root_handlers
    if saved is None:
        return
    root = logging.getLogger() if logger is None else logger
    handlers, level = saved
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def _task_logger(logger: logging.Logger | None = None, **_: Any) -> None:
    """Task loggers write through the root logger's (logtrace's) handler, not their own."""
    if _state.root_handlers is None or logger is None:
        return
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)
