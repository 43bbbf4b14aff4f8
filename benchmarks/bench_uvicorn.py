"""Requests per second under uvicorn and wrk, with and without the middleware.

Each variant of ``bench_asgi.py`` is served by its own uvicorn process (one
worker, access log off) on a listening socket this script opens on
127.0.0.1 and hands over by file descriptor, so no port can be taken in
between. ``wrk`` then loads each server in turn with an incoming
``traceparent`` header; the variants are interleaved over several rounds and
the median requests/s and the median per-round ratio to the bare app are
reported. With two or more CPUs the servers are pinned to one CPU and wrk to
the others, so that the load generator does not steal the server's CPU.

    python benchmarks/bench_uvicorn.py                 # print the table
    python benchmarks/bench_uvicorn.py --write-docs    # and refresh docs/performance.md

Every process this script starts is stopped by its PID before it exits, and
every wrk run is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import _common
import bench_asgi

TARGET_RATIO = 0.95
"""logtrace's budget: at least this fraction of the bare app's requests per second."""


# --- the server side (run in a child process) --------------------------------------


def serve(key: str, fd: int, http_impl: str, loop: str, usage_fd: int | None) -> None:
    import resource
    import signal

    import uvicorn

    if usage_fd is not None:
        # On SIGUSR1, report this process's user and system CPU seconds so far
        # (getrusage: microsecond resolution, unlike the clock ticks in /proc).
        def report_usage(signum: int, frame: object) -> None:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            os.write(usage_fd, f"{ru.ru_utime!r} {ru.ru_stime!r}\n".encode())

        signal.signal(signal.SIGUSR1, report_usage)

    # Not uvicorn's own fd= option: it takes every inherited socket for a Unix
    # socket, so asyncio leaves Nagle's algorithm on and delayed ACKs cap the
    # server at about 25 requests/s per connection.
    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        bench_asgi.build(key),
        workers=1,
        access_log=False,
        log_level="warning",
        http=http_impl,
        loop=loop,
    )
    uvicorn.Server(config).run(sockets=[sock])


# --- the driver ---------------------------------------------------------------------


@dataclass
class Server:
    key: str
    label: str
    port: int
    proc: subprocess.Popen[bytes]
    sock: socket.socket = field(repr=False)
    usage: Any = field(repr=False)
    """Read end of the pipe the server reports its CPU usage on."""

    def cpu(self, timeout: float = 5.0) -> tuple[float, float]:
        """The server's user and system CPU seconds so far."""
        self.proc.send_signal(signal.SIGUSR1)
        ready, _, _ = select.select([self.usage], [], [], timeout)
        if not ready:
            raise RuntimeError(f"{self.key}: no CPU usage report within {timeout:g} s")
        user, system = self.usage.readline().split()
        return float(user), float(system)


def start(v: bench_asgi.Variant, args: argparse.Namespace, cpus: set[int] | None) -> Server:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    fd = sock.fileno()
    usage_r, usage_w = os.pipe()
    cmd = [
        sys.executable, __file__, "--serve", v.key, "--fd", str(fd),
        "--usage-fd", str(usage_w), "--http", args.http, "--loop", args.loop,
    ]  # fmt: skip
    try:
        proc = subprocess.Popen(
            cmd,
            pass_fds=(fd, usage_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
    finally:
        os.close(usage_w)
    usage = os.fdopen(usage_r, "r", buffering=1)
    return Server(v.key, v.label, sock.getsockname()[1], proc, sock, usage)


def get(port: int, timeout: float = 2.0) -> tuple[int, bytes, list[tuple[str, str]]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"traceparent": _common.TRACEPARENT})
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheaders()
    finally:
        conn.close()


def wait_ready(s: Server, deadline_s: float = 20.0) -> str:
    """Wait until the server answers 200 ``ok``; the response headers it added."""
    end = time.monotonic() + deadline_s
    while True:
        if s.proc.poll() is not None:
            raise RuntimeError(f"{s.key}: server exited with {s.proc.returncode}")
        try:
            status, body, headers = get(s.port)
        except OSError:
            if time.monotonic() > end:
                raise RuntimeError(f"{s.key}: no answer within {deadline_s:g} s") from None
            time.sleep(0.1)
            continue
        if status != 200 or body != b"ok":
            raise RuntimeError(f"{s.key}: status {status}, body {body!r}")
        if s.key.startswith("logtrace") and not any(
            _common.TRACEPARENT[3:35] in value for _, value in headers
        ):
            raise RuntimeError(f"{s.key}: the response does not continue the incoming trace")
        base = {"content-length", "content-type", "date", "server"}
        return ", ".join(k for k, _ in headers if k.lower() not in base) or "-"


def stop(servers: list[Server]) -> None:
    for s in servers:
        if s.proc.poll() is None:
            s.proc.terminate()
    for s in servers:
        try:
            s.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait(timeout=5)
        s.sock.close()
        s.usage.close()


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_COUNT = re.compile(r"(\d+) requests in ")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKERR = re.compile(r"Socket errors:.*")


def wrk(
    s: Server, seconds: float, args: argparse.Namespace, cpus: set[int] | None
) -> tuple[float, float, float]:
    """One bounded wrk run against ``s``: requests/s, and the server's user
    and system CPU seconds per request.

    On a shared machine the requests/s of a CPU-bound server move with
    whatever else runs; the CPU time it spends per request moves much less.
    Middleware runs in user time; system time is mostly the loopback network
    stack, which swings with how requests happen to batch.
    """
    port = s.port
    cmd = [
        args.wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds:g}s",
        "--timeout", "5s", "-H", f"traceparent: {_common.TRACEPARENT}",
        f"http://127.0.0.1:{port}/",
    ]  # fmt: skip
    if cpus:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]
    user0, sys0 = s.cpu()
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 20, check=True
    ).stdout
    user1, sys1 = s.cpu()
    m, count = _RPS.search(out), _COUNT.search(out)
    if m is None or count is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    bad = _NON2XX.search(out)
    err = _SOCKERR.search(out)
    if bad or err:
        print(f"  port {port}: {(bad or err).group(0)}", file=sys.stderr)  # type: ignore[union-attr]
    n = max(1, int(count.group(1)))
    return float(m.group(1)), (user1 - user0) / n, (sys1 - sys0) / n


def report(
    order: list[str],
    labels: dict[str, str],
    rps: dict[str, list[float]],
    capacity: dict[str, list[float]],
    user: dict[str, list[float]],
    notes: dict[str, str],
) -> str:
    by_rps = {r.name: r for r in _common.summarize(rps, "bare", order)}
    by_cpu = {r.name: r for r in _common.summarize(capacity, "bare", order)}
    by_user = {r.name: r for r in _common.summarize(user, "bare", order)}
    body = []
    for key in order:
        a, c, u = by_rps[key], by_cpu[key], by_user[key]
        base = key == "bare"
        body.append([
            labels[key],
            f"{a.median:,.0f}",
            "1.00x" if base else f"{a.ratio:.3f}x",
            "-" if base else f"{a.ratio_q1:.3f} .. {a.ratio_q3:.3f}",
            f"{1e6 / c.median:.1f}",
            "1.00x" if base else f"{c.ratio:.3f}x",
            "-" if base else f"{c.ratio_q1:.3f} .. {c.ratio_q3:.3f}",
            f"{u.median * 1e6:.1f}",
            "-" if base else f"{u.delta * 1e6:+.1f}",
        ])  # fmt: skip
    table = _common.markdown_table(
        ["variant", "requests/s", "vs bare", "IQR", "server CPU µs/req",
         "req/CPU-s vs bare", "IQR", "user CPU µs/req", "user Δ µs"],
        body,
    )  # fmt: skip
    if "logtrace" in by_rps:
        a, c = by_rps["logtrace"], by_cpu["logtrace"]
        verdict = (
            f"logtrace: {a.ratio:.3f}x the bare app's requests/s, {c.ratio:.3f}x its "
            f"requests per CPU-second (budget >= {TARGET_RATIO}x: "
            f"{'within' if min(a.ratio, c.ratio) >= TARGET_RATIO else 'check'})"
        )
    else:
        verdict = "logtrace.asgi not measured"
    skipped = "".join(f"\nNot measured: {k} ({why})." for k, why in notes.items())
    return f"{table}\n\n{verdict}{skipped}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8, help="interleaved rounds (default 8)")
    p.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default 3)")
    p.add_argument(
        "--warmup", type=int, default=1, help="seconds of wrk warm-up before each run (default 1)"
    )
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--connections", type=int, default=50, help="wrk connections (default 50)")
    p.add_argument(
        "--http", default="auto", help="uvicorn --http (auto: httptools if installed, else h11)"
    )
    p.add_argument(
        "--loop", default="auto", help="uvicorn --loop (auto: uvloop if installed, else asyncio)"
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to CPUs")
    p.add_argument("--only", nargs="*", help="variant keys to run (bare is always included)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--write-docs",
        action="store_true",
        help="refresh this benchmark's block in docs/performance.md",
    )
    p.add_argument("--serve", help=argparse.SUPPRESS)
    p.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--usage-fd", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.serve:
        serve(args.serve, args.fd, args.http, args.loop, args.usage_fd)
        return 0

    # Stopped from outside (timeout, CI): still stop every server it started.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args.wrk = shutil.which("wrk")
    if args.wrk is None:
        print("wrk not found (Debian/Ubuntu: apt-get install wrk)", file=sys.stderr)
        return 2
    # Resolve "auto" as uvicorn does, so that the report names what ran.
    asked = (args.http, args.loop)
    if args.http == "auto":
        args.http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    if args.loop == "auto":
        args.loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = load_cpus = None
    if not args.no_pin and len(cpus) >= 2:
        server_cpus, load_cpus = {cpus[0]}, set(cpus[1:])

    notes: dict[str, str] = {}
    chosen = []
    for v in bench_asgi.variants():
        if v.in_process_only or (args.only and v.key != "bare" and v.key not in args.only):
            continue
        try:  # probe in this process so that a missing package is a note, not a crash
            v.factory()
        except bench_asgi.Unavailable as exc:
            notes[v.key] = str(exc)
            continue
        chosen.append(v)

    keys = [v.key for v in chosen]
    labels = {v.key: v.label for v in chosen}
    rps = {k: [float("nan")] * args.rounds for k in keys}
    capacity = {k: [float("nan")] * args.rounds for k in keys}
    user = {k: [float("nan")] * args.rounds for k in keys}
    order = iter(_common.interleaved(keys, args.rounds, args.seed))
    t0 = time.monotonic()
    for r in range(args.rounds):
        # Fresh server processes every round: a process's memory layout and
        # hash seed shift its speed by a few percent, and that must not stick
        # to one variant for the whole run.
        servers: list[Server] = []
        try:
            for v in chosen:
                servers.append(start(v, args, server_cpus))
            for s in servers:
                added = wait_ready(s)
                if r == 0:
                    print(f"  {s.key:<15} ok; headers added: {added}", file=sys.stderr)
            by_key = {s.key: s for s in servers}
            for _ in keys:
                _, key = next(order)
                wrk(by_key[key], args.warmup, args, load_cpus)
                rate, utime, stime = wrk(by_key[key], args.duration, args, load_cpus)
                rps[key][r], capacity[key][r], user[key][r] = rate, 1 / (utime + stime), utime
                print(
                    f"  round {r + 1}/{args.rounds} {key:<15} {rate:>9,.0f} req/s "
                    f"CPU/req user {utime * 1e6:6.1f} µs, system {stime * 1e6:6.1f} µs",
                    file=sys.stderr,
                )
        finally:
            stop(servers)
    elapsed = time.monotonic() - t0

    text = report(keys, labels, rps, capacity, user, notes)
    machine = _common.machine_line()
    pin = (
        f"servers on CPU {min(server_cpus)}, wrk on CPU {','.join(map(str, sorted(load_cpus)))}"
        if server_cpus and load_cpus
        else "no CPU pinning"
    )
    setup = (
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s after {args.warmup:g}s "
        f"warm-up, {args.rounds} rounds with fresh servers each, "
        f"uvicorn --http {args.http} --loop {args.loop}, 1 worker, access log off; {pin}"
    )
    print(f"\nuvicorn + wrk: {setup}; {elapsed:.0f} s\n{machine}\n")
    print(text)

    if args.write_docs:
        deps = _common.versions(
            "uvicorn", "h11", "httptools", "uvloop", "starlette", "asgi-correlation-id",
            "opentelemetry-sdk", "opentelemetry-instrumentation-asgi",
        )  # fmt: skip
        extra = "" if asked[0] == "auto" else f" --http {args.http}"
        extra += "" if asked[1] == "auto" else f" --loop {args.loop}"
        plain = (args.http, args.loop) == ("h11", "asyncio")
        _common.write_docs_block(
            "uvicorn" if plain else f"uvicorn-{args.http}-{args.loop}",
            f"""\
### Requests per second under uvicorn ({args.http}, {args.loop})

`python benchmarks/bench_uvicorn.py --rounds {args.rounds} --duration {args.duration:g}{extra}`
(logtrace {_common.git_revision()}; {deps}).
{machine}. {setup}. Each wrk run sends an incoming `traceparent`; "vs bare" is
the median over rounds of the ratio to the bare app in the same round. The
server's CPU time per request (user + system, from `getrusage` in the server)
varies much less than requests/s on a shared machine; "user Δ" is the paired
median difference in user CPU time, where middleware runs.

{text}
""",
        )
        print(f"\nwrote {_common.DOCS_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
