"""The trace context of the running request or span, held in a ContextVar."""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple

from ._ids import new_span_id, new_trace_id

__all__ = ["CURRENT", "TraceContext", "child_or_root", "current"]

_new = tuple.__new__  # builds the named tuple without its Python-level __new__


class TraceContext(NamedTuple):
    """Where the running code sits in a trace. Immutable.

    A named tuple because a request creates one on the hot path and reads its
    fields from every log record: construction and attribute access are both
    C-level operations. The package builds contexts through the named
    constructors :meth:`new_root`, :meth:`from_incoming` and :meth:`child_of`.
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

    @classmethod
    def new_root(
        cls,
        sampled: bool = True,
        request_id: str | None = None,
        link: str | None = None,
    ) -> TraceContext:
        """The first span of a new trace: random IDs (the W3C random flag set), no parent.

        ``link`` is the caller's ``traceparent`` when its context was not trusted.
        (Positional-or-keyword arguments: a positional call skips keyword
        handling on the request path.)
        """
        return _new(
            cls, (new_trace_id(), new_span_id(), None, sampled, True, None, request_id, link)
        )

    @classmethod
    def from_incoming(
        cls,
        trace_id: str,
        parent_span_id: str | None,
        sampled: bool,
        random: bool,
        tracestate: str | None = None,
        request_id: str | None = None,
    ) -> TraceContext:
        """A server span continuing a caller's trace: a new span ID under the caller's span.

        The arguments are what the caller's headers said, already validated.
        """
        return _new(
            cls,
            (
                trace_id,
                new_span_id(),
                parent_span_id,
                sampled,
                random,
                tracestate,
                request_id,
                None,
            ),
        )

    @classmethod
    def child_of(cls, parent: TraceContext) -> TraceContext:
        """A new span in ``parent``'s trace, whose parent is ``parent``'s span."""
        return _new(
            cls,
            (
                parent.trace_id,
                new_span_id(),
                parent.span_id,
                parent.sampled,
                parent.random,
                parent.tracestate,
                parent.request_id,
                None,
            ),
        )


CURRENT: ContextVar[TraceContext | None] = ContextVar("logtrace.current", default=None)
"""The context of the running request or span; read it with :func:`current`."""


def current() -> TraceContext | None:
    """The context of the running request or span, or ``None`` outside any."""
    return CURRENT.get()


def child_or_root() -> TraceContext:
    """A new span: a child of the current context, or the root of a new trace outside any."""
    parent = CURRENT.get()
    return TraceContext.new_root() if parent is None else TraceContext.child_of(parent)
