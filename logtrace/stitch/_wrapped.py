"""Records wrapped by a collector or a log backend, read as if each stood alone.

A container runtime, journald, Loki, Elasticsearch, CloudWatch or Google
Cloud Logging hands a service's log line back inside a record of its own:
the service's line is a string (``log``, ``MESSAGE``, ``line``,
``message``, ``textPayload``) or an object (``jsonPayload``, ``_source``).
:func:`unwrap` finds that inner record and the wrapper's own time, service,
IDs and error mark, which the parser (:mod:`._parse`) uses where the inner
record is silent. Kubernetes node files (CRI) wrap lines in text, not JSON:
:func:`cri_line` splits them, and :class:`Partials` joins the pieces of a
line the runtime cut (``P``) with its final piece (``F``).

Nothing here parses the inner record: the parser does, as any other line.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from ._id_forms import names_no_service, norm_span_id, norm_trace_id

__all__ = [
    "CRI_HEAD",
    "Partials",
    "Unwrapped",
    "cloud_trace",
    "cri_line",
    "cri_record",
    "display_record",
    "docker_record",
    "otel_service",
    "unwrap",
]

ERROR_PRIORITY = 3
"""journald/syslog priorities 0 (emerg) to 3 (err) are errors."""


class Unwrapped(NamedTuple):
    """The inner record and the wrapper's fields (``None`` when it has none)."""

    payload: str | dict[str, Any] | None
    """The wrapped line (text, parsed as any line) or record (an object)."""
    ts: object
    """The wrapper's timestamp, as written (parsed by the caller)."""
    service: str | None
    trace: str | None
    span: str | None
    error: bool
    pieces: str | None = None
    """For a wrapper that cuts long lines (Docker): the stream whose pieces join."""
    partial: bool = False
    """This record is a piece of a longer line, continued by the next one of its stream."""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_label(labels: object, keys: tuple[str, ...]) -> str | None:
    if not isinstance(labels, dict):
        return None
    for key in keys:
        value = _text(labels.get(key))
        if value is not None:
            return value
    return None


_LABEL_SERVICE = (
    "service_name",
    "service",
    "app",
    "app_kubernetes_io_name",
    "app.kubernetes.io/name",
    "k8s-app",
    "container",
    "container_name",
    "function_name",
    "module_id",
    "job",
)
"""Label names that name the service, most specific first (Loki, Cloud Logging)."""

_CLOUD_TRACE = re.compile(r"projects/[^/]+/traces/([0-9A-Za-z]{1,64})")


def cloud_trace(value: object) -> str | None:
    """The trace ID of Cloud Logging's ``projects/P/traces/ID``; ``None`` for another value."""
    if not isinstance(value, str) or not value.startswith("projects/"):
        return None
    m = _CLOUD_TRACE.fullmatch(value)
    return m.group(1) if m else None


def _journald_message(value: object) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(type(b) is int and 0 <= b < 256 for b in value):
        # journald writes a message that is not UTF-8 as an array of bytes
        return bytes(value).decode(errors="replace")
    return None


def _journald(obj: dict[str, Any]) -> Unwrapped:
    priority = obj.get("PRIORITY")
    error = isinstance(priority, str) and priority.isdecimal() and int(priority) <= ERROR_PRIORITY
    unit = _text(obj.get("_SYSTEMD_UNIT"))
    if unit is not None and unit.endswith(".service"):
        unit = unit[: -len(".service")]
    service = _text(obj.get("SYSLOG_IDENTIFIER")) or unit or _text(obj.get("_COMM"))
    ts = obj.get("__REALTIME_TIMESTAMP")
    return Unwrapped(_journald_message(obj.get("MESSAGE")), ts, service, None, None, error)


def _google(obj: dict[str, Any]) -> Unwrapped:
    payload: str | dict[str, Any] | None = None
    if isinstance(obj.get("jsonPayload"), dict):
        payload = obj["jsonPayload"]
    elif isinstance(obj.get("textPayload"), str):
        payload = obj["textPayload"]
    resource = obj.get("resource")
    labels = resource.get("labels") if isinstance(resource, dict) else None
    service = _first_label(labels, _LABEL_SERVICE) or _first_label(
        obj.get("labels"), _LABEL_SERVICE
    )
    span = norm_span_id(obj.get("spanId"))
    trace = cloud_trace(obj.get("trace"))
    return Unwrapped(
        payload,
        obj.get("timestamp"),
        service,
        None if trace is None else norm_trace_id(trace),
        span,
        False,
    )


def docker_record(log: str, time: object, stream: object, service: str | None = None) -> Unwrapped:
    """A Docker json-file record: ``log`` holds the line, ``time`` its time.

    Docker cuts a line longer than 16 KiB into records whose ``log`` has no
    final newline; the record that has one ends the line."""
    pieces = f"docker {stream}" if isinstance(stream, str) else "docker"
    partial = not log.endswith("\n")
    return Unwrapped(
        log if partial else log.rstrip("\r\n"), time, service, None, None, False, pieces, partial
    )


def _docker(obj: dict[str, Any]) -> Unwrapped:
    attrs = obj.get("attrs")
    service = _first_label(attrs, ("service", "tag", "name")) if attrs else None
    return docker_record(obj["log"], obj.get("time"), obj.get("stream"), service)


def _loki(obj: dict[str, Any]) -> Unwrapped:
    service = _first_label(obj.get("labels"), _LABEL_SERVICE)
    return Unwrapped(obj["line"], obj.get("timestamp"), service, None, None, False)


def _cloudwatch(obj: dict[str, Any]) -> Unwrapped:
    service = _text(obj.get("logGroup")) or _text(obj.get("logStreamName"))
    if service is not None:
        service = service.rsplit("/", 1)[-1] or service
    return Unwrapped(obj["message"], obj.get("timestamp"), service, None, None, False)


def _elastic(obj: dict[str, Any]) -> Unwrapped:
    return Unwrapped(obj["_source"], None, None, None, None, False)


def unwrap(obj: dict[str, Any]) -> Unwrapped | None:
    """The record inside a collector's or backend's record, or ``None`` for a
    record that wraps nothing (the caller then reads it as it is)."""
    if "MESSAGE" in obj:
        return _journald(obj)
    if isinstance(obj.get("jsonPayload"), dict) or isinstance(obj.get("textPayload"), str):
        return _google(obj)
    if isinstance(obj.get("log"), str):
        return _docker(obj)
    if isinstance(obj.get("line"), str) and isinstance(obj.get("labels"), dict):
        return _loki(obj)
    if isinstance(obj.get("_source"), dict):
        return _elastic(obj)
    if isinstance(obj.get("message"), str) and (
        "logStreamName" in obj or "ingestionTime" in obj or "eventId" in obj
    ):
        return _cloudwatch(obj)
    return None


def otel_service(resource: object) -> str | None:
    """``service.name`` among an OTLP resource's attributes (a list of key/value
    pairs, or the SDK's plain mapping); none for ``unknown_service``."""
    name = _resource_service(resource)
    return None if name is None or names_no_service(name) else name


def _resource_service(resource: object) -> str | None:
    if not isinstance(resource, dict):
        return None
    attrs = resource.get("attributes")
    if isinstance(attrs, dict):
        return _text(attrs.get("service.name"))
    if isinstance(attrs, list):
        for attr in attrs:
            if isinstance(attr, dict) and attr.get("key") == "service.name":
                value = attr.get("value")
                if isinstance(value, dict):
                    return _text(value.get("stringValue"))
                return _text(value)
    return None


_PRIORITY_NAMES = ("emerg", "alert", "crit", "error", "warning", "notice", "info", "debug")


def _wrapper_level(obj: dict[str, Any]) -> object:
    if "MESSAGE" in obj:
        priority = obj.get("PRIORITY")
        if isinstance(priority, str) and priority.isdecimal() and int(priority) < 8:
            return _PRIORITY_NAMES[int(priority)]
        return None
    return obj.get("severity")


def display_record(obj: dict[str, Any]) -> dict[str, Any]:
    """The record to show for ``obj``: the wrapped one where there is one (text
    becomes ``{"message": text}``, or the object it holds; the wrapper's level
    where it has none), and an OTLP body as text."""
    inner: object = obj
    for _ in range(3):
        if not isinstance(inner, dict):
            break
        got = unwrap(inner)
        if got is None or got.payload is None:
            break
        level = _wrapper_level(inner)
        payload = got.payload
        if isinstance(payload, str):
            decoded = _object_in(payload)
            inner = decoded if decoded is not None else {"message": payload}
        else:
            inner = payload
        if level is not None and isinstance(inner, dict):
            inner = {"level": level, **inner}
    if not isinstance(inner, dict):
        return obj
    log = inner.get("log")
    if isinstance(log, dict) and isinstance(log.get("level"), str) and "log.level" not in inner:
        inner = {**inner, "log.level": log["level"]}  # ECS, nested
    body = inner.get("body")
    if isinstance(body, dict) and len(body) == 1:
        value = next(iter(body.values()))
        inner = {**inner, "body": value if isinstance(value, str) else str(value)}
    return inner


def cri_record(raw: bytes) -> dict[str, Any] | None:
    """The record to show for a CRI line: its payload (the object it holds, or
    ``{"message": payload}``); ``None`` for another line."""
    split = cri_line(raw)
    if split is None:
        return None
    payload = split[3].decode(errors="replace")
    decoded = _object_in(payload)
    return decoded if decoded is not None else {"message": payload}


def _object_in(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    if not (stripped.startswith("{") and stripped.endswith("}")):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


CRI_HEAD = re.compile(
    rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[.,\d]*(?:Z|[+-]\d\d:?\d\d) std(?:out|err) [PF] "
)
"""A Kubernetes node file line (CRI): ``<RFC 3339 time> stdout|stderr P|F <payload>``."""


def cri_line(raw: bytes) -> tuple[str, str, bool, bytes] | None:
    """Time, stream, whether it is a partial (``P``) piece, and the payload of
    a CRI line; ``None`` for any other line."""
    m = CRI_HEAD.match(raw)
    if m is None:
        return None
    head = raw[: m.end() - 1].decode("ascii").split(" ")
    return head[0], head[1], head[2] == "P", raw[m.end() :]


class Partials:
    """The pieces of CRI lines cut by the runtime (``P``), per stream, until
    their final piece (``F``) completes them.

    Lines reach the parser in file order on both scan paths, so that a piece
    joins the pieces before it. A run of pieces is kept up to
    :data:`LIMIT` bytes; past it, pieces are read alone.
    """

    LIMIT = 1 << 20

    __slots__ = ("_pieces", "_sizes")

    def __init__(self) -> None:
        self._pieces: dict[str, list[bytes]] = {}
        self._sizes: dict[str, int] = {}

    def __bool__(self) -> bool:
        """Whether pieces wait for their final piece (the C scanner reads
        wrapped lines itself only while none do)."""
        return bool(self._pieces)

    def add(self, stream: str, payload: bytes) -> bytes:
        """Keep a partial piece; returns the text joined so far."""
        pieces = self._pieces.setdefault(stream, [])
        size = self._sizes.get(stream, 0) + len(payload)
        if size > self.LIMIT:
            pieces.clear()
            size = len(payload)
        pieces.append(payload)
        self._sizes[stream] = size
        return b"".join(pieces) if len(pieces) > 1 else payload

    def finish(self, stream: str, payload: bytes) -> bytes:
        """The whole line a final piece completes (the pieces are forgotten)."""
        pieces = self._pieces.pop(stream, None)
        self._sizes.pop(stream, None)
        if not pieces:
            return payload
        pieces.append(payload)
        return b"".join(pieces)

    def clear(self) -> None:
        self._pieces.clear()
        self._sizes.clear()
