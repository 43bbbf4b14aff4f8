"""The field names of logtrace's log lines and span records, in one place.

A span record is a log line on the ``logtrace.span`` logger written when a
span ends (see :mod:`logtrace._records`). Its trace IDs are named by
:class:`~logtrace.TraceFields` (configurable); every other field it carries
is named here, so the code that writes records and the stitcher that reads
them spell each name once. HTTP attributes follow the OpenTelemetry semantic
conventions.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

__all__ = [
    "ATTRIBUTE_PREFIX",
    "DURATION_MS",
    "ERROR_TYPE",
    "EXCEPTION_TYPE",
    "HEADERS_MS",
    "HOST_NAME",
    "HTTP_REQUEST_METHOD",
    "HTTP_RESPONSE_STATUS_CODE",
    "HTTP_ROUTE",
    "KIND_CLIENT",
    "KIND_CONSUMER",
    "KIND_INTERNAL",
    "KIND_PRODUCER",
    "KIND_SERVER",
    "LEVEL",
    "LOGGER",
    "MESSAGE",
    "NETWORK_PROTOCOL_NAME",
    "NETWORK_PROTOCOL_VERSION",
    "RESPONSE_MS",
    "SERVER_ADDRESS",
    "SERVER_PORT",
    "SERVICE",
    "SPAN_KIND",
    "SPAN_LOGGER_NAME",
    "SPAN_NAME",
    "SPAN_START",
    "TIMESTAMP",
    "URL_FULL",
    "URL_PATH",
    "URL_SCHEME",
    "SpanKind",
]

# -- every JSON log line (logtrace.stdlib.json_formatter) ----------------------

TIMESTAMP: Final = "timestamp"
"""When the record was written (ISO 8601 UTC, microseconds); for a span record, the span's end."""
LEVEL: Final = "level"
"""The level name (``INFO``, ``ERROR`` ...)."""
SERVICE: Final = "service"
"""The service name given to :func:`~logtrace.configure_logging`."""
LOGGER: Final = "logger"
"""The logger's name."""
MESSAGE: Final = "message"
"""The formatted message; a span record's is ``"{kind} {name}"``."""

# -- span records --------------------------------------------------------------

SPAN_LOGGER_NAME: Final = "logtrace.span"
"""The logger span records are written to."""

SPAN_KIND: Final = "span.kind"
"""``server``, ``client`` or ``internal``."""
SPAN_NAME: Final = "span.name"
"""``GET /items/{id}`` for a server span, the method for a client span, the given name otherwise."""
SPAN_START: Final = "span.start"
"""The span's start, ISO 8601 UTC with microseconds."""
DURATION_MS: Final = "duration_ms"
"""The span's duration in milliseconds, to the microsecond."""
RESPONSE_MS: Final = "response_ms"
"""Server spans: milliseconds from the span's start until the response was
complete (ASGI: its last body chunk handed to the server; WSGI: the server
starting to write the body, which the caller cannot have before), to the
microsecond. Work
the application does after that (background tasks, a streamed body's cleanup,
Django's request-finished handlers) stays inside the span's ``duration_ms``,
but the caller already had its answer: the stitcher bounds clocks by this
time, not by the span's end."""
HEADERS_MS: Final = "headers_ms"
"""Server spans (ASGI): milliseconds from the span's start until the
response's headers were handed to the server, to the microsecond (rounded
down). A caller can hear nothing of the answer before: an HTTP client that
logs on the headers (httpx does) may write its line before the body is out,
so ``response_ms`` bounds the caller's clock only where the caller's time is
taken once the body arrived (a client span's end)."""
HOST_NAME: Final = "host.name"
"""The host the span ran on (the node name, as the OpenTelemetry and ECS
conventions name it): services on one host share one clock."""
ERROR_TYPE: Final = "error.type"
"""Set only when the span failed: the exception's class name or the failing HTTP status."""
EXCEPTION_TYPE: Final = "exception.type"
"""The exception's qualified class name, when an exception ended the span."""
ATTRIBUTE_PREFIX: Final = "span.attributes."
"""Put before an attribute whose name a log record already has (``name``, ``msg`` ...)."""

KIND_SERVER: Final = "server"
KIND_CLIENT: Final = "client"
KIND_INTERNAL: Final = "internal"
KIND_PRODUCER: Final = "producer"
"""A message sent (a task queued, a record published): its consumers run after it, not inside it."""
KIND_CONSUMER: Final = "consumer"
"""A message handled (a task run), under the producer span that sent it."""

SpanKind: TypeAlias = Literal["server", "client", "internal", "producer", "consumer"]
"""The values of :data:`SPAN_KIND`."""

# -- HTTP attributes of server and client spans --------------------------------

HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
"""A status of 500 or more fails a server span; of 400 or more, a client span."""
HTTP_ROUTE: Final = "http.route"
"""The route template (``/items/{id}``), on server spans whose framework names one."""
URL_PATH: Final = "url.path"
URL_SCHEME: Final = "url.scheme"
URL_FULL: Final = "url.full"
"""A client span's URL, without credentials."""
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
NETWORK_PROTOCOL_VERSION: Final = "network.protocol.version"
NETWORK_PROTOCOL_NAME: Final = "network.protocol.name"
