"""Correlate logs across services.

``import logtrace`` loads the standard library only: the trace context, the
header formats, the middleware and the logging integrations (which import
structlog and python-json-logger only when :func:`configure_logging` runs).
The HTTP client integrations (``logtrace.httpx``, ``logtrace.requests``), the
Celery integration (``logtrace.celery``), the stitcher (``logtrace.stitch``)
and the command line are separate imports.
"""

from __future__ import annotations

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
