"""Cost per log record of stamping the trace: structlog and stdlib logging.

Side by side in one run, every record logged inside an open trace:

- structlog, JSON rendering to a null sink: the same pipeline bare, with
  ``add_trace_context``, with ``TraceContextAdder("ecs")``, and with
  structlog's own ``merge_contextvars`` carrying three bound variables;
- stdlib logging with python-json-logger to a null stream: bare, with
  ``TraceContextFilter`` on the handler, and with OpenTelemetry's logging
  instrumentation (its record factory, inside an OpenTelemetry span).

Variants are interleaved over many short rounds; overheads are medians of
per-round differences to the bare pipeline of the same group.

    python benchmarks/bench_logging.py                 # print the table
    python benchmarks/bench_logging.py --write-docs    # and refresh docs/performance.md
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import _common

TARGET_US = 0.5
"""logtrace's budget: at most this many microseconds per structlog record."""

SECTION = "## Log records"


class Unavailable(Exception):
    """A variant whose package is not importable here."""


class NullSink:
    """A structlog logger that drops the rendered line."""

    def info(self, message: str) -> None:
        pass


class Keep:
    """A structlog logger that keeps the rendered lines, to check them."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


class NullStream:
    """A stream for ``logging.StreamHandler`` that drops what it is given."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


# --- structlog -----------------------------------------------------------------


def _structlog(*extra: Any) -> Any:
    try:
        import structlog
    except ImportError as exc:
        raise Unavailable(f"structlog: {exc}") from exc
    return structlog.wrap_logger(
        NullSink(),
        processors=[
            *extra,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        context_class=dict,
    )


def _logtrace_processor(ecs: bool = False) -> Any:
    from logtrace.processors import TraceContextAdder, add_trace_context

    return TraceContextAdder("ecs") if ecs else add_trace_context


def _request_context() -> Any:
    """The context of a server span that continues the benchmark's incoming trace."""
    from logtrace._context import TraceContext

    _, trace_id, parent, _ = _common.TRACEPARENT.split("-")
    return TraceContext(trace_id, "b7ad6b7169203331", parent)


@contextmanager
def in_logtrace_span() -> Iterator[None]:
    """As inside a request that came with a ``traceparent``."""
    from logtrace._context import CURRENT

    token = CURRENT.set(_request_context())
    try:
        yield
    finally:
        CURRENT.reset(token)


@contextmanager
def in_bound_contextvars() -> Iterator[None]:
    """The same three IDs, bound with structlog's own contextvars."""
    import structlog

    ctx = _request_context()
    tokens = structlog.contextvars.bind_contextvars(
        trace_id=ctx.trace_id, span_id=ctx.span_id, parent_span_id=ctx.parent_span_id
    )
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def _constant_ids() -> Any:
    """A floor: the same three IDs as constants, so only rendering them costs."""
    ctx = _request_context()
    ids = {"trace_id": ctx.trace_id, "span_id": ctx.span_id, "parent_span_id": ctx.parent_span_id}

    def add_constant_ids(logger: Any, method_name: str, event_dict: Any) -> Any:
        event_dict.update(ids)
        return event_dict

    return add_constant_ids


def structlog_call(log: Any) -> Callable[[], None]:
    info = log.info

    def call() -> None:
        info("user loaded", user_id=42)

    return call


# --- stdlib + python-json-logger ------------------------------------------------


class ConstantIds(logging.Filter):
    """A floor: the same three IDs as constants, so only rendering them costs."""

    def __init__(self) -> None:
        super().__init__()
        ctx = _request_context()
        self.ids = {
            "trace_id": ctx.trace_id,
            "span_id": ctx.span_id,
            "parent_span_id": ctx.parent_span_id,
        }

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.update(self.ids)
        return True


def _stdlib(name: str, with_filter: bool, floor: bool = False) -> Any:
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError as exc:
        raise Unavailable(f"python-json-logger: {exc}") from exc
    from logtrace.stdlib import TraceContextFilter

    logger = logging.getLogger(f"bench.{name}")
    logger.handlers.clear()
    handler = logging.StreamHandler(NullStream())
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    if with_filter:
        handler.addFilter(TraceContextFilter())
    if floor:
        handler.addFilter(ConstantIds())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


_otel: dict[str, Any] = {}


def _otel_setup() -> None:
    """Build OpenTelemetry's record factory once; it is switched in per batch."""
    if _otel:
        return
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.logging import LoggingInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError as exc:
        raise Unavailable(f"opentelemetry: {exc}") from exc
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    plain = logging.getLogRecordFactory()
    # Only the trace correlation: IDs onto records (recent versions need
    # inject_trace_context; they would also install an export handler).
    LoggingInstrumentor().instrument(
        set_logging_format=False,
        inject_trace_context=True,
        enable_log_auto_instrumentation=False,
        tracer_provider=provider,
    )
    _otel["factory"] = logging.getLogRecordFactory()
    _otel["tracer"] = provider.get_tracer("bench")
    LoggingInstrumentor().uninstrument()
    logging.setLogRecordFactory(plain)


@contextmanager
def in_otel_span() -> Iterator[None]:
    plain = logging.getLogRecordFactory()
    logging.setLogRecordFactory(_otel["factory"])
    try:
        with _otel["tracer"].start_as_current_span("bench"):
            yield
    finally:
        logging.setLogRecordFactory(plain)


def _otel_logger() -> Any:
    _otel_setup()
    return _stdlib("otel", with_filter=False)


def stdlib_call(logger: Any) -> Callable[[], None]:
    info = logger.info
    extra = {"user_id": 42}

    def call() -> None:
        info("user loaded", extra=extra)

    return call


# --- the run ---------------------------------------------------------------------


@dataclass
class Variant:
    key: str
    label: str
    baseline: str
    factory: Callable[[], Callable[[], None]]
    around: Callable[[], AbstractContextManager[Any]] = nullcontext
    call: Callable[[], None] = field(default=lambda: None, repr=False)
    n: int = 0


def variants() -> list[Variant]:
    return [
        Variant(
            "structlog", "structlog JSON, bare", "structlog", lambda: structlog_call(_structlog())
        ),
        Variant(
            "structlog-again",
            "structlog JSON, bare again (noise check)",
            "structlog",
            lambda: structlog_call(_structlog()),
        ),
        Variant(
            "floor",
            "+ the 3 IDs as constants (floor: rendering them)",
            "structlog",
            lambda: structlog_call(_structlog(_constant_ids())),
        ),
        Variant(
            "add_trace_context",
            "+ logtrace add_trace_context",
            "structlog",
            lambda: structlog_call(_structlog(_logtrace_processor())),
            in_logtrace_span,
        ),
        Variant(
            "adder-ecs",
            '+ logtrace TraceContextAdder("ecs")',
            "structlog",
            lambda: structlog_call(_structlog(_logtrace_processor(ecs=True))),
            in_logtrace_span,
        ),
        Variant(
            "merge_contextvars",
            "+ structlog merge_contextvars, 3 bound",
            "structlog",
            lambda: structlog_call(_structlog(_merge_contextvars())),
            in_bound_contextvars,
        ),
        Variant(
            "stdlib",
            "stdlib + python-json-logger, bare",
            "stdlib",
            lambda: stdlib_call(_stdlib("bare", with_filter=False)),
        ),
        Variant(
            "stdlib-floor",
            "+ the 3 IDs as constants (floor: rendering them)",
            "stdlib",
            lambda: stdlib_call(_stdlib("stdlib-floor", with_filter=False, floor=True)),
        ),
        Variant(
            "filter",
            "+ logtrace TraceContextFilter",
            "stdlib",
            lambda: stdlib_call(_stdlib("filter", with_filter=True)),
            in_logtrace_span,
        ),
        Variant(
            "otel",
            "+ OpenTelemetry LoggingInstrumentor",
            "stdlib",
            lambda: stdlib_call(_otel_logger()),
            in_otel_span,
        ),
    ]


def _merge_contextvars() -> Any:
    import structlog

    return structlog.contextvars.merge_contextvars


def run_batch(v: Variant, n: int) -> float:
    """CPU seconds per record over ``n`` records, inside the variant's context.

    CPU time of this thread, not wall time: on a shared machine the time
    other processes take the CPU away does not count.
    """
    call = v.call
    clock = time.thread_time_ns
    with v.around():
        t0 = clock()
        for _ in range(n):
            call()
        t1 = clock()
    return (t1 - t0) / n / 1e9


def measure(vs: list[Variant], rounds: int, batch_s: float, seed: int) -> dict[str, list[float]]:
    for v in vs:  # warm up and calibrate
        n = 100
        while run_batch(v, n) * n < batch_s / 4 and n < 10_000_000:
            n *= 2
        v.n = max(50, int(batch_s / run_batch(v, n)))
    samples = {v.key: [float("nan")] * rounds for v in vs}
    by_key = {v.key: v for v in vs}
    gc.disable()
    try:
        for r, key in _common.interleaved(list(by_key), rounds, seed):
            gc.collect()
            samples[key][r] = run_batch(by_key[key], by_key[key].n)
    finally:
        gc.enable()
    return samples


def check(vs: list[Variant]) -> None:
    """Every stamping variant must really put the IDs on the line it writes."""
    import structlog

    for v in vs:
        if v.baseline != "structlog" or v.key.startswith("structlog") or v.key == "floor":
            continue
        keep = Keep()

        processors = {
            "add_trace_context": [_logtrace_processor()],
            "adder-ecs": [_logtrace_processor(ecs=True)],
            "merge_contextvars": [_merge_contextvars()],
        }[v.key]
        log = structlog.wrap_logger(
            keep, processors=[*processors, structlog.processors.JSONRenderer()]
        )
        with v.around():
            log.info("x")
        keys = json.loads(keep.lines[0])
        if not ({"trace_id", "span_id"} <= set(keys) or {"trace.id", "span.id"} <= set(keys)):
            raise RuntimeError(f"{v.key} did not add the IDs: {keep.lines[0]}")
    for v in vs:
        if v.baseline != "stdlib" or v.key == "stdlib" or v.key == "stdlib-floor":
            continue
        stream = io.StringIO()
        logger = logging.getLogger(f"bench.{v.key}")
        handler = logger.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        old = handler.setStream(stream)
        with v.around():
            v.call()
        handler.setStream(old)
        keys = json.loads(stream.getvalue())
        if not ({"trace_id", "span_id"} <= set(keys) or {"otelTraceID", "otelSpanID"} <= set(keys)):
            raise RuntimeError(f"{v.key} did not add the IDs: {stream.getvalue()}")


def report(vs: list[Variant], samples: dict[str, list[float]], notes: dict[str, str]) -> str:
    labels = {v.key: v.label for v in vs}
    body = []
    rows: dict[str, _common.Row] = {}
    for base in dict.fromkeys(v.baseline for v in vs):
        group = [v.key for v in vs if v.baseline == base]
        for row in _common.summarize(samples, base, group):
            rows[row.name] = row
            body.append(_common.overhead_cells(row, labels[row.name], base))
    table = _common.markdown_table(
        ["variant", "µs/record", "overhead µs", "overhead IQR", "time vs bare"], body
    )
    lines = []
    if "add_trace_context" in rows:
        d = rows["add_trace_context"].delta * 1e6
        state = "within" if d <= TARGET_US else "OVER"
        lines.append(f"add_trace_context: {d:+.2f} µs/record (budget {TARGET_US} µs: {state}).")
        if "floor" in rows:
            own = rows["add_trace_context"].delta - rows["floor"].delta
            lines.append(
                f"Of which rendering the three IDs (floor): {rows['floor'].delta * 1e6:+.2f} µs; "
                f"add_trace_context's own work: {own * 1e6:+.2f} µs."
            )
        for other in ("merge_contextvars",):
            if other in rows and rows[other].delta > 0:
                lines.append(
                    f"{labels[other].lstrip('+ ')}: {rows[other].delta * 1e6:+.2f} µs/record, "
                    f"{rows[other].delta / rows['add_trace_context'].delta:.1f}x "
                    "logtrace's overhead."
                )
    if "filter" in rows and "otel" in rows and rows["filter"].delta > 0:
        f, o = rows["filter"].delta * 1e6, rows["otel"].delta * 1e6
        lines.append(
            f"TraceContextFilter: {f:+.2f} µs/record; OpenTelemetry's instrumentation: "
            f"{o:+.2f} µs/record ({o / f:.1f}x)."
        )
    if "filter" in rows and "stdlib-floor" in rows:
        own = rows["filter"].delta - rows["stdlib-floor"].delta
        floor = rows["stdlib-floor"].delta
        lines.append(
            f"Of which rendering the three IDs (floor): {floor * 1e6:+.2f} µs; "
            f"TraceContextFilter's own work: {own * 1e6:+.2f} µs."
        )
    lines += [f"Not measured: {k} ({why})." for k, why in notes.items()]
    return table + "\n\n" + "\n".join(lines)


def write_section(body: str, path: Any = None) -> None:
    """Replace this benchmark's block in the ``## Log records`` section (added if absent)."""
    path = path or _common.DOCS_FILE
    start, end = "<!-- bench:logging -->", "<!-- /bench:logging -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    elif SECTION in text:
        head, _, tail = text.partition(SECTION)
        text = f"{head}{SECTION}\n\n{block}\n\n{tail.lstrip()}"
    else:
        text = f"{text.rstrip()}\n\n{SECTION}\n\n{block}\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=200, help="interleaved rounds (default 200)")
    p.add_argument(
        "--batch-ms", type=float, default=5.0, help="one variant's batch in a round (default 5 ms)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--write-docs", action="store_true", help="refresh this benchmark's block in the docs"
    )
    args = p.parse_args(argv)

    vs, notes = [], {}
    for v in variants():
        try:
            v.call = v.factory()
        except Unavailable as exc:
            notes[v.key] = str(exc)
            continue
        vs.append(v)
    check(vs)

    t0 = time.monotonic()
    samples = measure(vs, args.rounds, args.batch_ms / 1000, args.seed)
    elapsed = time.monotonic() - t0
    text = report(vs, samples, notes)
    machine = _common.machine_line()
    print(
        f"\nLog records, {args.rounds} rounds x ~{args.batch_ms:g} ms per variant, "
        f"{elapsed:.0f} s\n{machine}\n"
    )
    print(text)
    if args.write_docs:
        deps = _common.versions(
            "structlog", "python-json-logger", "opentelemetry-instrumentation-logging"
        )
        write_section(
            f"""\
### Trace IDs on log records

`python benchmarks/bench_logging.py --rounds {args.rounds} --batch-ms {args.batch_ms:g}`
(logtrace {_common.git_revision()}; {deps}).
{machine}. Every record is logged inside a request that continued a caller's
trace (a logtrace context with a parent span; the same three IDs bound with
`bind_contextvars` for `merge_contextvars`; an OpenTelemetry span for its
instrumentation), with one extra key-value pair.
structlog: `add_log_level`, `TimeStamper(fmt="iso", utc=True)`, `JSONRenderer()`
to a null sink. stdlib: a `StreamHandler` to a null stream with python-json-logger's
`JsonFormatter`. Medians over {args.rounds} interleaved rounds; overhead is the
median per-round difference to the bare pipeline of the same group, with its
interquartile range. Times are CPU time of the measuring thread, so that other
processes on a shared machine do not count. The overheads include rendering
the extra fields.

{text}
"""
        )
        print(f"\nwrote {_common.DOCS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
