"""In-process WSGI overhead of WSGITraceMiddleware.

A bare WSGI callable and a one-route Flask app, each with and without the
middleware, called directly with a prebuilt environ carrying an incoming
``traceparent``; the response iterable is consumed and closed as a server
would. Variants are interleaved over many short rounds; medians.

    python benchmarks/bench_wsgi.py                 # print the table
    python benchmarks/bench_wsgi.py --write-docs    # and refresh docs/performance.md
"""

from __future__ import annotations

import argparse
import gc
import io
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import _common

TARGET_US = 2.0
"""logtrace's budget: at most this many microseconds per request over the bare app."""


class Unavailable(Exception):
    """A variant whose package is not importable here."""


def bare_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


class HeaderOnly:
    """The least a response-header-adding WSGI middleware can do: a floor."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Served", "1"))
            return start_response(status, headers, exc_info)

        body: Iterable[bytes] = self.app(environ, start)
        return body


def _trace_middleware() -> Any:
    try:
        from logtrace.wsgi import WSGITraceMiddleware
    except ImportError as exc:
        raise Unavailable(f"logtrace.wsgi: {exc}") from exc
    return WSGITraceMiddleware


def flask_app() -> Any:
    try:
        from flask import Flask
    except ImportError as exc:
        raise Unavailable(f"flask: {exc}") from exc
    app = Flask("bench")

    @app.route("/")
    def hello() -> str:
        return "ok"

    return app


def _flask_logtrace() -> Any:
    app = flask_app()
    app.wsgi_app = _trace_middleware()(app.wsgi_app)  # the documented Flask idiom
    return app


@dataclass
class Variant:
    key: str
    label: str
    baseline: str
    factory: Callable[[], Any]
    app: Any = field(default=None, repr=False)
    n: int = 0


def variants() -> list[Variant]:
    return [
        Variant("bare", "bare WSGI callable", "bare", lambda: bare_app),
        Variant("bare-again", "bare callable again (noise check)", "bare", lambda: bare_app),
        Variant(
            "header-only", "WSGI middleware adding one header", "bare", lambda: HeaderOnly(bare_app)
        ),
        Variant(
            "logtrace",
            "logtrace WSGITraceMiddleware(app)",
            "bare",
            lambda: _trace_middleware()(bare_app),
        ),
        Variant("flask", "bare Flask app", "flask", flask_app),
        Variant(
            "flask-logtrace", "Flask, app.wsgi_app wrapped by logtrace", "flask", _flask_logtrace
        ),
    ]


ENVIRON: dict[str, Any] = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/",
    "QUERY_STRING": "",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "8000",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "REMOTE_PORT": "51000",
    "HTTP_HOST": "127.0.0.1:8000",
    "HTTP_USER_AGENT": "bench/1.0",
    "HTTP_ACCEPT": "*/*",
    "HTTP_ACCEPT_ENCODING": "gzip, deflate",
    "HTTP_TRACEPARENT": _common.TRACEPARENT,
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input": io.BytesIO(b""),
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": True,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def _write(data: bytes) -> None:
    pass


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def run_batch(app: Any, n: int, clock: Callable[[], int] = time.thread_time_ns) -> float:
    """Seconds per request over ``n`` requests, each with a fresh environ copy."""
    environ, start = ENVIRON, start_response
    t0 = clock()
    for _ in range(n):
        body = app(environ.copy(), start)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (clock() - t0) / n / 1e9


def check(v: Variant) -> str:
    """Call the variant once; it must answer 200 ``ok``. The headers it added."""
    got: list[Any] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        got.append((status, headers))
        return _write

    body = v.app(ENVIRON.copy(), capture)
    data = b"".join(body)
    if hasattr(body, "close"):
        body.close()
    status, headers = got[0]
    if not status.startswith("200") or data != b"ok":
        raise RuntimeError(f"{v.key}: {status}, body {data!r}")
    if "logtrace" in v.key and not any(_common.TRACEPARENT[3:35] in val for _, val in headers):
        raise RuntimeError(f"{v.key}: the response does not continue the incoming trace")
    base = {"content-type", "content-length"}
    return ", ".join(k for k, _ in headers if k.lower() not in base) or "-"


def measure(
    vs: list[Variant], rounds: int, batch_s: float, seed: int, clock: Callable[[], int]
) -> dict[str, list[float]]:
    for v in vs:  # warm up and calibrate
        n = 100
        while run_batch(v.app, n, clock) * n < batch_s / 4 and n < 10_000_000:
            n *= 2
        v.n = max(50, int(batch_s / run_batch(v.app, n, clock)))
    samples = {v.key: [float("nan")] * rounds for v in vs}
    by_key = {v.key: v for v in vs}
    for r, key in _common.interleaved(list(by_key), rounds, seed):
        gc.collect()
        samples[key][r] = run_batch(by_key[key].app, by_key[key].n, clock)
    return samples


def report(vs: list[Variant], samples: dict[str, list[float]], notes: dict[str, str]) -> str:
    labels = {v.key: v.label for v in vs}
    body = []
    rows: dict[str, _common.Row] = {}
    for base in dict.fromkeys(v.baseline for v in vs):
        group = [v.key for v in vs if v.baseline == base]
        for row in _common.summarize(samples, base, group):
            rows[row.name] = row
            body.append([*_common.overhead_cells(row, labels[row.name], base), labels[base]])
    table = _common.markdown_table(
        ["variant", "µs/request", "overhead µs", "overhead IQR", "time vs base", "base"], body
    )
    lines = []
    for key in ("logtrace", "flask-logtrace"):
        if key in rows:
            d = rows[key].delta * 1e6
            state = "within" if d <= TARGET_US else "OVER"
            lines.append(f"{labels[key]}: {d:.2f} µs/request (budget {TARGET_US} µs: {state})")
    lines += [f"Not measured: {k} ({why})." for k, why in notes.items()]
    return table + "\n\n" + "\n".join(lines or ["logtrace.wsgi not measured"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _common.add_run_options(p)
    args = p.parse_args(argv)

    vs, notes = [], {}
    for v in variants():
        try:
            v.app = v.factory()
        except Unavailable as exc:
            notes[v.key] = str(exc)
            continue
        vs.append(v)
    for v in list(vs):
        try:
            added = check(v)
        except Exception as exc:  # a broken variant is reported, not fatal
            notes[v.key] = f"failed its check: {type(exc).__name__}: {exc}"
            vs.remove(v)
            continue
        print(f"  {v.key:<15} ok; response headers added: {added}", file=sys.stderr)

    t0 = time.monotonic()
    samples = measure(vs, args.rounds, args.batch_ms / 1000, args.seed, _common.CLOCKS[args.clock])
    elapsed = time.monotonic() - t0
    text = report(vs, samples, notes)
    machine = _common.machine_line()
    print(
        f"\nWSGI in-process, {args.rounds} rounds x ~{args.batch_ms:g} ms per variant, "
        f"{args.clock} clock, "
        f"{elapsed:.0f} s\n{machine}\n"
    )
    print(text)

    if args.write_docs:
        deps = _common.versions("flask", "werkzeug")
        clock = "" if args.clock == "cpu" else f" --clock {args.clock}"
        _common.write_docs_block(
            "wsgi",
            f"""\
### In-process WSGI overhead

`python benchmarks/bench_wsgi.py --rounds {args.rounds} --batch-ms {args.batch_ms:g}{clock}`
(logtrace {_common.git_revision()}; {deps}).
{machine}. Medians over {args.rounds} interleaved rounds; overhead is the median
per-round difference to the base app of the same group, with its interquartile range.

{text}
""",
        )
        print(f"\nwrote {_common.DOCS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
