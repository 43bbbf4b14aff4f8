"""The trace context of the running request or span, held in a ContextVar."""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple

from ._ids import new_span_id, new_trace_id

__all__ = ["TraceContext", "child_of", "child_or_root", "current", "new_root"]


class TraceContext(NamedTuple):
    """Where the running code sits in a trace. Immutable.

    A named tuple because a request creates one on the hot path and reads its
    fields from every log record: construction and attribute access are both
    C-level operations.
    """

    trace_id: str
    """32 lowercase hex digits."""
    span_id: str
    """16 lowercase hex digits: the span this code runs in."""
    parent_span_id: str | None = None
    """The caller's span, or ``None`` for the root of a trace."""
    sampled: bool = True
    """The W3C ``sampled`` flag (B3 ``1``/``d``)."""
    random: bool = False
    """The W3C Level 2 ``random-trace-id`` flag, kept on child spans."""
    tracestate: str | None = None
    """The vendor ``tracestate`` list, already validated, or ``None``."""
    request_id: str | None = None
    """The request ID the caller sent (``X-Request-ID``), already validated."""
    link: str | None = None
    """The caller's ``traceparent`` when incoming context was not trusted."""

    @property
    def traceparent(self) -> str:
        """This context as a W3C ``traceparent`` value."""
        flags = (1 if self.sampled else 0) | (2 if self.random else 0)
        return f"00-{self.trace_id}-{self.span_id}-{flags:02x}"


_CURRENT: ContextVar[TraceContext | None] = ContextVar("logtrace.current", default=None)


def current() -> TraceContext | None:
    """The context of the running request or span, or ``None`` outside any."""
    return _CURRENT.get()


def new_root(request_id: str | None = None) -> TraceContext:
    """The context of a span that starts a new trace."""
    return TraceContext(new_trace_id(), new_span_id(), None, True, True, None, request_id, None)


def child_of(parent: TraceContext) -> TraceContext:
    """A new span in ``parent``'s trace, whose parent is ``parent``'s span."""
    return TraceContext(
        parent.trace_id,
        new_span_id(),
        parent.span_id,
        parent.sampled,
        parent.random,
        parent.tracestate,
        parent.request_id,
        None,
    )


def child_or_root() -> TraceContext:
    """A new span: a child of the current context, or the root of a new trace outside any."""
    parent = _CURRENT.get()
    return new_root() if parent is None else child_of(parent)
