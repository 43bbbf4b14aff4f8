"""In-process ASGI overhead of TraceMiddleware next to its peers.

Every variant is the same minimal Starlette app (one route returning a
``PlainTextResponse``) with or without one middleware. The app is called
directly with a prebuilt ``http`` scope carrying an incoming ``traceparent``
and no-op ``receive``/``send``, in a tight loop inside one event loop, so what
is left after subtracting the bare app is the middleware's own cost.

    python benchmarks/bench_asgi.py                 # print the table
    python benchmarks/bench_asgi.py --write-docs    # and refresh docs/performance.md

The factories here are also used by ``bench_uvicorn.py`` to serve each variant.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import _common

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

TARGET_US = 1.5
"""logtrace's budget: at most this many microseconds per request over the bare app."""
PEER_US = 3.3
"""What asgi-correlation-id costs on the machine the budget was set on."""


class Unavailable(Exception):
    """A variant whose package is not importable here."""


# --- the app and its variants ----------------------------------------------------


def starlette_app(middleware: list[Any] | None = None) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", hello)], middleware=middleware)


class HeaderOnly:
    """The least a response-header-adding pure ASGI middleware can do.

    It wraps ``send`` and appends one constant header: a floor for any
    middleware written in the recommended style, logtrace included.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), (b"x-served", b"1")]
            await send(message)

        await self.app(scope, receive, send_with_header)


def _bare() -> Any:
    return starlette_app()


def _header_only() -> Any:
    return HeaderOnly(starlette_app())


def _trace_middleware() -> Any:
    try:
        from logtrace.asgi import TraceMiddleware
    except ImportError as exc:
        raise Unavailable(f"logtrace.asgi: {exc}") from exc
    return TraceMiddleware


def _logtrace_wrap() -> Any:
    return _trace_middleware()(starlette_app())


def _logtrace_add() -> Any:
    from starlette.middleware import Middleware

    return starlette_app([Middleware(_trace_middleware())])


def _correlation_id() -> Any:
    try:
        from asgi_correlation_id import CorrelationIdMiddleware
    except ImportError as exc:
        raise Unavailable(f"asgi-correlation-id: {exc}") from exc
    from starlette.middleware import Middleware

    return starlette_app([Middleware(CorrelationIdMiddleware)])


def _otel() -> Any:
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            SimpleSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
    except ImportError as exc:
        raise Unavailable(f"opentelemetry: {exc}") from exc

    class DiscardingExporter(SpanExporter):
        """Receives every finished span, as a real exporter would, and drops it."""

        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

        def shutdown(self) -> None:
            pass

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(DiscardingExporter()))
    return OpenTelemetryMiddleware(starlette_app(), tracer_provider=provider)


def _base_http() -> Any:
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    async def dispatch(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    return starlette_app([Middleware(BaseHTTPMiddleware, dispatch=dispatch)])


@dataclass
class Variant:
    key: str
    label: str
    factory: Callable[[], Any]
    in_process_only: bool = False
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None
    app: Any = field(default=None, repr=False)
    n: int = 0
    """Requests per batch, calibrated at warm-up."""


_span_logger = logging.getLogger("logtrace.span")
_span_handler = logging.NullHandler()


def _records_on() -> None:
    _span_logger.setLevel(logging.INFO)
    _span_logger.addHandler(_span_handler)
    _span_logger.propagate = False


def _records_off() -> None:
    _span_logger.removeHandler(_span_handler)
    _span_logger.setLevel(logging.NOTSET)
    _span_logger.propagate = True


def variants() -> list[Variant]:
    """Every variant, baseline first. ``key`` is what ``--only`` and uvicorn use."""
    return [
        Variant("bare", "bare Starlette app", _bare),
        Variant("bare-again", "bare app again (noise check)", _bare),
        Variant("header-only", "pure ASGI middleware adding one header", _header_only),
        Variant("logtrace", "logtrace TraceMiddleware(app)", _logtrace_wrap),
        Variant("logtrace-add", "logtrace via add_middleware", _logtrace_add),
        Variant(
            "logtrace-records",
            "logtrace, span records on (NullHandler)",
            _logtrace_wrap,
            in_process_only=True,
            setup=_records_on,
            teardown=_records_off,
        ),
        Variant("correlation-id", "asgi-correlation-id", _correlation_id),
        Variant("otel", "OpenTelemetryMiddleware (SDK, discarding exporter)", _otel),
        Variant("basehttp", "BaseHTTPMiddleware (pass-through)", _base_http),
    ]


def build(key: str) -> Any:
    """The app of one variant, by key (``bench_uvicorn.py`` serves these)."""
    for v in variants():
        if v.key == key:
            return v.factory()
    raise KeyError(key)


# --- driving an app in-process ----------------------------------------------------

HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"bench/1.0"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"traceparent", _common.TRACEPARENT.encode()),
]

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0", "spec_version": "2.3"},
    "http_version": "1.1",
    "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 51000),
    "scheme": "http",
    "method": "GET",
    "root_path": "",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "headers": HEADERS,
}

_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}


async def receive() -> Message:
    return _REQUEST


async def send(message: Message) -> None:
    pass


def fresh_scopes(n: int) -> list[Scope]:
    """``n`` request scopes as a server builds them: new dicts, new header lists,
    new ``bytes`` objects.

    New objects matter: a ``bytes`` object caches its hash once hashed, so
    reusing one set of header names would make every dictionary lookup on
    them cheaper than it is in a server. Some middleware also writes into
    the scope or the header list.
    """
    return [
        {**SCOPE, "headers": [(bytes(bytearray(k)), bytes(bytearray(v))) for k, v in HEADERS]}
        for _ in range(n)
    ]


async def run_batch(
    app: Any, n: int, clock: Callable[[], int] = time.thread_time_ns, cold: bool = False
) -> float:
    """Seconds per request over ``n`` requests, each with a fresh scope (built untimed).

    ``cold``: flush the CPU caches before every request and time each request
    alone, as the first thing the process does after other work.
    """
    scopes = fresh_scopes(n)
    if cold:
        flush, total = _common.flush_caches, 0
        for scope in scopes:
            flush()
            t0 = clock()
            await app(scope, receive, send)
            total += clock() - t0
        return total / n / 1e9
    t0 = clock()
    for scope in scopes:
        await app(scope, receive, send)
    return (clock() - t0) / n / 1e9


async def check(v: Variant) -> str:
    """Call the variant once and check it answers 200 ``ok``; the headers it added."""
    sent: list[Message] = []

    async def capture(message: Message) -> None:
        sent.append(message)

    if v.setup:
        v.setup()
    try:
        await v.app(fresh_scopes(1)[0], receive, capture)
    finally:
        if v.teardown:
            v.teardown()
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if start["status"] != 200 or body != b"ok":
        raise RuntimeError(f"{v.key}: status {start['status']}, body {body!r}")
    if v.key.startswith("logtrace") and not any(
        _common.TRACEPARENT[3:35].encode() in value for _, value in start["headers"]
    ):
        raise RuntimeError(f"{v.key}: the response does not continue the incoming trace")
    base = {b"content-length", b"content-type"}
    return ", ".join(k.decode() for k, _ in start["headers"] if k not in base) or "-"


async def measure(
    vs: list[Variant],
    rounds: int,
    batch_s: float,
    seed: int,
    clock: Callable[[], int],
    cold_n: int = 0,
) -> dict[str, list[float]]:
    """Per-round seconds per request of every variant. ``cold_n``: that many
    requests per batch, caches flushed before each; else batches of ``batch_s``."""
    for v in vs:  # warm up and calibrate: about batch_s per batch
        if v.setup:
            v.setup()
        n = 50
        try:
            while True:
                if await run_batch(v.app, n, clock) * n >= batch_s / 4 or n >= 1_000_000:
                    break
                n *= 2
            per = await run_batch(v.app, n, clock)
        finally:
            if v.teardown:
                v.teardown()
        v.n = cold_n or max(20, int(batch_s / per))

    samples: dict[str, list[float]] = {v.key: [float("nan")] * rounds for v in vs}
    by_key = {v.key: v for v in vs}
    for r, key in _common.interleaved(list(by_key), rounds, seed):
        v = by_key[key]
        gc.collect()
        if v.setup:
            v.setup()
        try:
            samples[key][r] = await run_batch(v.app, v.n, clock, cold=cold_n > 0)
        finally:
            if v.teardown:
                v.teardown()
    return samples


def report(vs: list[Variant], samples: dict[str, list[float]], notes: dict[str, str]) -> str:
    rows = _common.summarize(samples, "bare", [v.key for v in vs])
    labels = {v.key: v.label for v in vs}
    body = [_common.overhead_cells(row, labels[row.name], "bare") for row in rows]
    table = _common.markdown_table(
        ["variant", "µs/request", "overhead µs", "overhead IQR", "time vs bare"], body
    )
    by_name = {r.name: r for r in rows}
    lt, cid = by_name.get("logtrace"), by_name.get("correlation-id")
    if lt is None:
        verdict = "logtrace.asgi not measured"
    else:
        d = lt.delta * 1e6
        verdict = f"logtrace overhead: {d:.2f} µs/request (budget {TARGET_US} µs: " + (
            "within)" if d <= TARGET_US else "OVER)"
        )
        if cid is not None and cid.delta > 0:
            rel = lt.delta / cid.delta
            verdict += (
                f"; {rel:.2f}x asgi-correlation-id's {cid.delta * 1e6:.2f} µs (budget "
                f"{TARGET_US / PEER_US:.2f}x, i.e. {TARGET_US} µs where it costs {PEER_US} µs: "
                + ("within)" if rel <= TARGET_US / PEER_US else "OVER)")
            )
    skipped = "".join(f"\nNot measured: {k} ({why})." for k, why in notes.items())
    return f"{table}\n\n{verdict}{skipped}"


# --- where logtrace's time goes ---------------------------------------------------


async def raw_app(scope: Scope, receive: Any, send: Any) -> None:
    """The cheapest possible ASGI app, so that a middleware's own cost stands out."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _timeit(stmt: str, env: dict[str, Any], number: int = 100_000, repeat: int = 9) -> float:
    """Best-of-``repeat`` nanoseconds per ``stmt`` on this thread's CPU clock."""
    import timeit

    times = timeit.repeat(stmt, globals=env, number=number, repeat=repeat, timer=time.thread_time)
    return min(times) / number * 1e9


def pieces(rounds: int) -> str:
    """Time each step TraceMiddleware takes per request, alone, and the whole around ``raw_app``.

    The steps go through logtrace's own functions, so the figures follow the
    code; a step whose function has moved is left out.
    """
    import logtrace._context as lc
    import logtrace._ids as li
    import logtrace.propagation as lp

    TraceMiddleware = _trace_middleware()
    prop = lp.get_default() if hasattr(lp, "get_default") else lp.default_propagator
    ctx = prop.incoming_asgi(HEADERS)
    env: dict[str, Any] = {
        "prop": prop,
        "read": getattr(TraceMiddleware(raw_app), "_read", None),
        "H": HEADERS,
        "ctx": ctx,
        "fields": tuple(ctx),
        "TC": lc.TraceContext,
        "CV": lc.CURRENT,
        "new_span_id": li.new_span_id,
        "log": logging.getLogger("logtrace.span"),
        "INFO": logging.INFO,
        "start": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        "extra": prop.response_headers_asgi(ctx),
    }
    steps = [
        (
            "headers in, context and response headers out: the middleware's reader",
            "read(H)",
        ),
        ("  new span ID: new_span_id()", "new_span_id()"),
        ("  TraceContext from a tuple (tuple.__new__)", "tuple.__new__(TC, fields)"),
        (
            "the same in two steps: incoming_asgi() + response_headers_asgi()",
            "prop.response_headers_asgi(prop.incoming_asgi(H))",
        ),
        ("ContextVar set + reset", "CV.reset(CV.set(ctx))"),
        ("span-record level check: isEnabledFor()", "log.isEnabledFor(INFO)"),
        ("send wrapper closure creation", "def send_traced(message):\n    return message"),
        ("response header list (app's headers + trace headers)", "start + extra"),
    ]
    out = []
    for label, stmt in steps:
        try:
            out.append([label, f"{_timeit(stmt, env):.0f}"])
        except Exception as exc:  # the code moved on; say so rather than fail
            out.append([label, f"n/a ({type(exc).__name__})"])

    apps = {
        "raw ASGI app": raw_app,
        "raw app + one-header pure ASGI middleware": HeaderOnly(raw_app),
        "raw app + TraceMiddleware": TraceMiddleware(raw_app),
    }
    samples: dict[str, list[float]] = {k: [float("nan")] * rounds for k in apps}

    async def run() -> None:
        for app in apps.values():
            await run_batch(app, 2000)
        for r, key in _common.interleaved(list(apps), rounds):
            samples[key][r] = await run_batch(apps[key], 2000)

    asyncio.run(run())
    rows = {r.name: r for r in _common.summarize(samples, "raw ASGI app", list(apps))}
    for key in list(apps)[1:]:
        out.append([f"{key}, over raw app (median)", f"{rows[key].delta * 1e9:.0f}"])
    return _common.markdown_table(["step (one request)", "ns"], out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_run_options(p)
    p.add_argument("--only", nargs="*", help="variant keys to run (bare is always included)")
    p.add_argument(
        "--cold",
        type=int,
        default=0,
        metavar="N",
        help="batches of N requests with the CPU caches flushed before each request",
    )
    p.add_argument(
        "--pieces",
        action="store_true",
        help="time the steps logtrace's middleware takes per request, then exit",
    )
    args = p.parse_args(argv)

    if args.pieces:
        text = pieces(args.rounds)
        machine = _common.machine_line()
        print(f"\nTraceMiddleware step by step (best of 9 x 100,000; cpu clock)\n{machine}\n")
        print(text)
        if args.write_docs:
            _common.write_docs_block(
                "asgi-pieces",
                f"""\
### Where the ASGI middleware's time goes

`python benchmarks/bench_asgi.py --pieces` (logtrace {_common.git_revision()}).
{machine}. Each step timed alone through logtrace's own functions (best of 9
runs of 100,000, CPU clock); the last rows are the whole middleware around an
app that does nothing but send its response, median of interleaved rounds.

{text}
""",
            )
        return 0

    vs, notes = [], {}
    for v in variants():
        if args.only and v.key != "bare" and v.key not in args.only:
            continue
        try:
            v.app = v.factory()
        except Unavailable as exc:
            notes[v.key] = str(exc)
            continue
        vs.append(v)

    async def run() -> dict[str, list[float]]:
        for v in list(vs):
            try:
                added = await check(v)
            except Exception as exc:  # a broken variant is reported, not fatal
                notes[v.key] = f"failed its check: {type(exc).__name__}: {exc}"
                vs.remove(v)
                continue
            print(f"  {v.key:<17} ok; response headers added: {added}", file=sys.stderr)
        return await measure(
            vs,
            args.rounds,
            args.batch_ms / 1000,
            args.seed,
            _common.CLOCKS[args.clock],
            cold_n=args.cold,
        )

    t0 = time.monotonic()
    samples = asyncio.run(run())
    elapsed = time.monotonic() - t0
    text = report(vs, samples, notes)
    machine = _common.machine_line()
    if args.cold:
        how = f"{args.cold} requests per batch, CPU caches flushed before each request"
        command = f"--cold {args.cold} --rounds {args.rounds}"
    else:
        how = f"~{args.batch_ms:g} ms per batch"
        command = f"--rounds {args.rounds} --batch-ms {args.batch_ms:g}"
    command += "" if args.clock == "cpu" else f" --clock {args.clock}"
    how += f", {args.rounds} interleaved rounds, {args.clock} clock"
    print(f"\nASGI in-process, {how}; {elapsed:.0f} s\n{machine}\n")
    print(text)

    if args.write_docs:
        deps = _common.versions(
            "starlette",
            "asgi-correlation-id",
            "opentelemetry-sdk",
            "opentelemetry-instrumentation-asgi",
        )
        if args.cold:
            title = "### In-process ASGI overhead, cold caches"
            intro = (
                "Each request runs after the CPU caches have been flushed: an upper bound\n"
                "for a server, where the HTTP parser, the event loop and the app evict\n"
                "some, not all, of a middleware's code and data between two requests."
            )
        else:
            title = "### In-process ASGI overhead"
            intro = (
                "A tight loop: the middleware's code and data stay in the CPU caches, so\n"
                "this is the least each variant costs."
            )
        _common.write_docs_block(
            "asgi-cold" if args.cold else "asgi",
            f"""\
{title}

`python benchmarks/bench_asgi.py {command}`
(logtrace {_common.git_revision()}; {deps}).
{machine}. {how[0].upper()}{how[1:]}. {intro} "Overhead" is the median of the
per-round difference to the bare app, with its interquartile range; the bare
app measured twice shows the noise floor.

{text}
""",
        )
        print(f"\nwrote {_common.DOCS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
