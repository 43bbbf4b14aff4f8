"""What the log generator is asked for, and what it reports."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SynthConfig", "SynthResult"]


@dataclass(slots=True)
class SynthConfig:
    """What to generate. Sizes are approximate; everything else is exact."""

    services: int = 6
    traces: int | None = None
    """Number of traces; when ``None``, generate until ``target_bytes``."""
    target_bytes: int = 5_000_000
    seed: int = 1
    skew_ms: float = 25.0
    """Each service's clock is off by a uniform amount in ``[-skew, +skew]``."""
    drift_ppm: float = 0.0
    """Each service's clock drifts by a uniform rate in ``[-drift, +drift]``."""
    client_spans: bool = True
    """Write client span records (logtrace-instrumented callers do)."""
    parent_ids: bool = True
    """Whether records name their parent span. ``False`` writes what
    OpenTelemetry's logging instrumentation, ECS and Datadog logs carry: a
    trace and a span ID, no parent, and no span records (each service in one
    of those formats, in turn)."""
    foreign_rate: float = 0.02
    """Share of ordinary lines written in another format (same trace IDs)."""
    noise_rate: float = 0.01
    """Lines without any trace (health checks, access logs), per record."""
    corrupt_rate: float = 0.0005
    """Truncated or binary lines, per record. They never carry a trace ID."""
    rotate: bool = True
    """Split some services' files into ``x.log.2.gz``, ``x.log.1``, ``x.log``."""
    parallel_rate: float = 0.5
    """Share of fan-out requests whose calls run in parallel (else one by one)."""
    asymmetry_us: float = 5.0
    """Largest difference between a link's minimum delays there and back."""
    text_services: int = 0
    """How many services (after the gateway) write plain-text lines only: time,
    level, service, message and ``trace_id=``, ``span_id=``,
    ``parent_span_id=``, as a ``logging`` text format with logtrace's filter
    does; no span records of their own (client or server)."""
    rate_per_s: float = 40.0
    """Mean trace arrivals per second at the gateway."""
    start: float = 1_772_359_200.0
    """True time of the first trace (2026-03-01T10:00:00Z)."""


@dataclass(slots=True)
class SynthResult:
    """What was written, and the clocks that stamped it."""

    files: list[str]
    truth: str
    records: int
    traces: int
    bytes: int
    offsets_s: dict[str, float]
    drifts: dict[str, float]
    services: list[str] = field(default_factory=list)
