"""Correlate logs across services.

``import logtrace`` loads the standard library only: the trace context, the
header formats, the middleware and the logging integrations (which import
structlog and python-json-logger only when :func:`configure_logging` runs).
The HTTP client integrations (``logtrace.httpx``, ``logtrace.requests``), the
stitcher (``logtrace.stitch``) and the command line are separate imports.
"""

from __future__ import annotations

from ._context import TraceContext, current
from ._fields import TraceFields
from ._outgoing import outgoing_headers
from ._records import configure_span_records
from ._setup import configure_logging
from ._span import span
from .asgi import TraceMiddleware
from .processors import add_trace_context
from .stdlib import TraceContextFilter
from .wsgi import WSGITraceMiddleware

__version__ = "0.1.0"

__all__ = [
    "TraceContext",
    "TraceContextFilter",
    "TraceFields",
    "TraceMiddleware",
    "WSGITraceMiddleware",
    "__version__",
    "add_trace_context",
    "configure_logging",
    "configure_span_records",
    "current",
    "outgoing_headers",
    "span",
]
