"""Lines as other logging setups write them, noise, and corrupt lines: what
the generated logs mix into logtrace's own records."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

__all__ = ["NOISE", "corrupt_line", "foreign_line", "parentless_line"]


def foreign_line(
    kind: int, service: str, ts: str, level: str, event: str, tid: str, span: str
) -> str:
    """The same record as another logging setup would write it."""
    if kind == 0:  # Elastic Common Schema
        return json.dumps(
            {
                "@timestamp": ts + "Z",
                "log.level": level,
                "message": event,
                "service.name": service,
                "trace.id": tid,
                "span.id": span,
                "ecs.version": "8.11.0",
            }
        )
    if kind == 1:  # python-json-logger with OpenTelemetry's logging instrumentation
        return json.dumps(
            {
                "timestamp": ts + "+00:00",
                "levelname": level.upper(),
                "message": event,
                "otelTraceID": tid,
                "otelSpanID": span,
                "otelServiceName": service,
            }
        )
    if kind == 2:  # logfmt
        return (
            f'ts={ts}Z level={level} service={service} trace_id={tid} span_id={span} msg="{event}"'
        )
    return f"{ts}Z {level.upper()} [{service}] {event} trace_id={tid} span_id={span}"


def parentless_line(
    kind: int, service: str, ts: str, level: str, event: str, tid: str, span: str
) -> str:
    """A record that names its trace and span but not the parent span."""
    if kind == 0:  # ecs-logging's StdlibFormatter, APM fields nested as it nests them
        return json.dumps(
            {
                "@timestamp": ts + "Z",
                "log.level": level,
                "message": event,
                "ecs.version": "1.6.0",
                "service": {"name": service},
                "span": {"id": span},
                "trace": {"id": tid},
                "transaction": {"id": span},
            },
            separators=(",", ":"),
        )
    if kind == 1:  # python-json-logger with OpenTelemetry's logging instrumentation
        return foreign_line(1, service, ts, level, event, tid, span)
    # Datadog's log injection: decimal IDs under dd.*
    return json.dumps(
        {
            "timestamp": ts + "Z",
            "level": level.upper(),
            "message": event,
            "dd.service": service,
            "dd.env": "prod",
            "dd.trace_id": str(int(tid, 16)),
            "dd.span_id": str(int(span, 16)),
        }
    )


NOISE: tuple[Callable[[str, str], str], ...] = (
    lambda ts, svc: (
        f'{{"timestamp": "{ts}Z", "level": "debug", "service": "{svc}", '
        f'"event": "health check ok"}}'
    ),
    lambda ts, svc: f'{ts}Z INFO 127.0.0.1:51234 - "GET /healthz HTTP/1.1" 200',
    lambda ts, svc: f'ts={ts}Z level=info service={svc} msg="pool stats" size=10 idle=7',
)


def corrupt_line(rng: random.Random, ts: str) -> str:
    if rng.random() < 0.5:
        return f'{{"timestamp": "{ts}Z", "level": "info", "ev'  # cut mid-write
    return "".join(chr(rng.choice((0x00, 0x07, 0x1B, 0xFF, 0xFFFD))) for _ in range(24))
