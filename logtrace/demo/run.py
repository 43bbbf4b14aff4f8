"""Run the demo: start the services, send the requests, stitch the logs, say where it all is.

Every service is a uvicorn process of its own on a free port of 127.0.0.1,
in a session of its own (a Ctrl-C at the terminal reaches the demo, which
stops them); on Linux each one asks, once started, to die with the demo
should it be killed (``LOGTRACE_DEMO_PARENT`` names the demo's PID). No
``preexec_fn``: with one, CPython runs its at-fork hooks, and a Ctrl-C landing
in them is swallowed and leaves ``logging``'s lock held.
Whatever happens (a service that does not start, Ctrl-C, an error), the
services are stopped, by PID, before the demo returns.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = ["Request", "Service", "main", "requests_to_send"]

HOST = "127.0.0.1"
SERVICES = ("inventory", "orders", "gateway")
"""In start order: each one's callee is up before it."""
_CALLEE = {
    "gateway": ("LOGTRACE_DEMO_ORDERS", "orders"),
    "orders": ("LOGTRACE_DEMO_INVENTORY", "inventory"),
}
"""Per service that calls another: the variable naming the callee's URL, and the callee."""


@dataclass(slots=True)
class Service:
    name: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


@dataclass(slots=True)
class Request:
    item: int
    quantity: int
    status: int = 0
    seconds: float = 0.0
    trace_id: str = ""


def requests_to_send(count: int) -> list[Request]:
    """``count`` checkouts: mostly fine, every seventh for the missing item,
    every eleventh too big an order, every ninth for the slow item."""
    out = []
    for i in range(count):
        item, quantity = 1 + i % 4, 1 + i % 3
        if i % 7 == 3:
            item = 13
        elif i % 11 == 5:
            quantity = 9
        elif i % 9 == 4:
            item = 5
        out.append(Request(item, quantity))
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _start(name: str, logs: Path, console: Path, env: dict[str, str]) -> Service:
    port = _free_port()
    log = logs / f"{name}.jsonl"
    environment = {
        **os.environ,
        **env,
        "LOGTRACE_DEMO_SERVICE": name,
        "LOGTRACE_DEMO_LOG": str(log),
        "PYTHONUNBUFFERED": "1",
        "LOGTRACE_DEMO_PARENT": str(os.getpid()),
    }
    command = [
        sys.executable, "-m", "uvicorn", f"logtrace.demo.services:{name}",
        "--host", HOST, "--port", str(port),
    ]  # fmt: skip
    with open(console / f"{name}.txt", "wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    return Service(name, port, log, process)


def _wait_until_up(service: Service, console: Path, timeout: float = 25.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if service.process.poll() is not None:
            text = (console / f"{service.name}.txt").read_text(errors="replace")
            raise RuntimeError(f"{service.name} exited with {service.process.returncode}:\n{text}")
        try:
            with socket.create_connection((HOST, service.port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{service.name} did not listen within {timeout:.0f} s"
                ) from None
            time.sleep(0.05)


def _stop(services: Sequence[Service]) -> None:
    """SIGTERM each service (uvicorn shuts down gracefully, flushing its log), then SIGKILL."""
    for s in services:
        if s.process.poll() is None:
            s.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for s in services:
        try:
            s.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            s.process.kill()
            s.process.wait()


@contextmanager
def running(directory: Path, say: Callable[[str], None]) -> Iterator[dict[str, Service]]:
    """The three services up, each logging to ``directory/logs``; stopped on the way out."""
    logs, console = directory / "logs", directory / "console"
    logs.mkdir(parents=True, exist_ok=True)
    console.mkdir(parents=True, exist_ok=True)
    for old in logs.glob("*.jsonl"):
        old.unlink()
    started: dict[str, Service] = {}
    try:
        for name in SERVICES:
            env = {}
            if name in _CALLEE:
                var, callee = _CALLEE[name]
                env[var] = started[callee].url
            for attempt in range(3):
                started[name] = _start(name, logs, console, env)
                try:
                    _wait_until_up(started[name], console)
                    break
                except RuntimeError:  # its port was taken meanwhile: another one
                    if attempt == 2:
                        raise
            s = started[name]
            say(f"  {name:<10} {s.url}  pid {s.process.pid}  logs {s.log}")
        yield started
    finally:
        _stop(list(started.values())[::-1])


def _send(client: httpx.Client, request: Request) -> Request:
    began = time.perf_counter()
    try:
        response = client.post(f"/checkout/{request.item}", params={"quantity": request.quantity})
    except httpx.HTTPError:
        request.seconds = time.perf_counter() - began
        return request  # status 0: no answer
    request.seconds = time.perf_counter() - began
    request.status = response.status_code
    parts = response.headers.get("traceresponse", "").split("-")
    request.trace_id = parts[1] if len(parts) == 4 else ""
    return request


def send_all(url: str, requests: list[Request]) -> list[Request]:
    """Four clients at a time, as users would: the services' logs interleave."""
    with httpx.Client(base_url=url, timeout=15) as client, ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda r: _send(client, r), requests))


def _pick_failure(done: list[Request]) -> Request | None:
    """The first request whose error started deepest (the missing item), else any failure."""
    deep = [r for r in done if r.status >= 500 and r.item == 13 and r.trace_id]
    failed = [r for r in done if r.status >= 500 and r.trace_id]
    return (deep or failed)[0] if deep or failed else None


def summary(paths: list[str], out: IO[bytes]) -> None:
    """The run's summary (``logtrace stitch --summary``): outcomes per entry
    operation, the operations that fail most, and where each failure started."""
    import io

    from logtrace.stitch import Options, stitch, summary_text

    result = stitch(paths, io.BytesIO(), Options(format="none", summary=True))
    assert result.outcomes is not None  # a summary run computes them
    out.write(summary_text(result.outcomes, result.marks).encode())


def _stitch_to(paths: list[str], out: IO[bytes], **options: Any) -> None:
    from logtrace.stitch import Options, stitch

    stitch(paths, out, Options(**options))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(directory: str | None = None, count: int = 36) -> int:
    """Run the demo; ``directory`` holds everything it writes (a new temporary one if
    ``None``). Returns the exit code: 0, or 130 when interrupted (Ctrl-C, SIGTERM)."""
    if threading.current_thread() is not threading.main_thread():
        return _demo(directory, count)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop the services on `kill` too
    try:
        return _demo(directory, count)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _demo(directory: str | None, count: int) -> int:
    began = time.monotonic()
    out = sys.stdout
    tty = out.isatty() and not os.environ.get("NO_COLOR")

    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    where = Path(directory or tempfile.mkdtemp(prefix="logtrace-demo-")).resolve()
    say(f"logtrace demo: three services on {HOST}, their logs and reports in {where}")
    say()
    requests = requests_to_send(count)
    try:
        with running(where, say) as services:
            say()
            say(f"sending {len(requests)} checkouts to the gateway ...")
            done = send_all(services["gateway"].url, requests)
        logs = [str(services[name].log) for name in ("gateway", "orders", "inventory")]
        failed = sum(r.status >= 500 or not r.status for r in done)
        slow = sum(r.seconds > 0.25 for r in done)
        say(f"  {len(done)} answered: {len(done) - failed} ok, {failed} failed, {slow} slow")

        picked = _pick_failure(done)
        if picked is not None:
            say()
            say(f"the story of one failing checkout (item {picked.item}), stitched from 3 logs:")
            buffer = io.BytesIO()
            _stitch_to(logs, buffer, traces=[picked.trace_id], format="text", color=tty)
            out.write(buffer.getvalue().decode(errors="replace"))
        say()
        buffer = io.BytesIO()
        summary(logs, buffer)
        out.write(buffer.getvalue().decode(errors="replace"))

        report = where / "report.html"
        with open(report, "wb") as f:
            _stitch_to(logs, f, format="html")
        viewers = where / "trace-viewers"
        viewers.mkdir(exist_ok=True)
        exports = {
            "otlp": "otlp.jsonl",
            "jaeger": "jaeger.json",
            "zipkin": "zipkin.json",
            "perfetto": "perfetto.json",
        }
        for fmt, name in exports.items():
            with open(viewers / name, "wb") as f:
                _stitch_to(logs, f, format=fmt)
    except KeyboardInterrupt:
        say()
        say(f"interrupted: the services are stopped; what they logged is in {where / 'logs'}")
        return 130
    except (RuntimeError, TimeoutError, OSError) as exc:
        say()
        say(f"logtrace demo: {exc}")
        say(f"the services are stopped; what they wrote is in {where}")
        return 1
    say()
    say("where everything is:")
    say(f"  logs           {where / 'logs'}/{{gateway,orders,inventory}}.jsonl")
    say(f"  HTML report    {report}  (open {report.as_uri()} in a browser)")
    say(f"  trace viewers  {viewers}/  (OTLP, Jaeger, Zipkin, Perfetto: see docs/viewers.md)")
    say()
    say("try:")
    say(f"  logtrace stitch --errors {where / 'logs'}")
    if picked is not None:
        say(f"  logtrace grep {picked.trace_id} {where / 'logs'}")
    say(f"done in {time.monotonic() - began:.1f} s; the services are stopped.")
    return 0
