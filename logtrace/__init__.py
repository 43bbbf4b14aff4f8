"""Correlate logs across services.

``import logtrace`` loads the standard library only: the trace context, the
header formats, the middleware and the logging integrations (which import
structlog and python-json-logger only when :func:`configure_logging` runs).
The HTTP client integrations (``logtrace.httpx``, ``logtrace.requests``), the
Celery integration (``logtrace.celery``), the stitcher (``logtrace.stitch``)
and the command line are separate imports.

The names below load on first use, so that the command line (``logtrace
grep``) starts without the runtime it does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._context import TraceContext, current
    from ._fields import TraceFields
    from ._outgoing import outgoing_headers
    from ._records import configure_span_records
    from ._setup import configure_logging
    from ._span import span
    from .asgi import TraceMiddleware
    from .executors import ContextExecutor, in_context
    from .messaging import consumer_span, inject_headers, producer_span
    from .processors import add_trace_context
    from .stdlib import TraceContextFilter
    from .wsgi import WSGITraceMiddleware

__version__ = "0.1.0"

_WHERE = {
    "ContextExecutor": "executors",
    "TraceContext": "_context",
    "TraceContextFilter": "stdlib",
    "TraceFields": "_fields",
    "TraceMiddleware": "asgi",
    "WSGITraceMiddleware": "wsgi",
    "add_trace_context": "processors",
    "configure_logging": "_setup",
    "configure_span_records": "_records",
    "consumer_span": "messaging",
    "current": "_context",
    "in_context": "executors",
    "inject_headers": "messaging",
    "outgoing_headers": "_outgoing",
    "producer_span": "messaging",
    "span": "_span",
}
"""Each public name and the module that defines it."""

__all__ = [
    "ContextExecutor",
    "TraceContext",
    "TraceContextFilter",
    "TraceFields",
    "TraceMiddleware",
    "WSGITraceMiddleware",
    "__version__",
    "add_trace_context",
    "configure_logging",
    "configure_span_records",
    "consumer_span",
    "current",
    "in_context",
    "inject_headers",
    "outgoing_headers",
    "producer_span",
    "span",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'logtrace' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
