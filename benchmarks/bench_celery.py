"""Publish-and-run time of an empty Celery task through Redis, with and without logtrace.

A real worker (prefork, one child) and a real Redis server on 127.0.0.1
(Debian's ``redis-server``, no persistence). The worker and this process log
through ``configure_logging`` at INFO into files, as services would, and load
a task module that calls ``instrument(app)``; between batches, a control task
switches the integration off or on in the worker's child (where tasks run)
and this process switches its own, so both variants run on the same worker
and the difference is the integration's work: headers, signals, the producer
and consumer span records. This process publishes an empty task and waits for
its result, one task at a time. Variants (plain, plain again as a noise
check, traced) are interleaved over rounds; medians over rounds of the time
per task, of the ratio to plain in the same round, and of the CPU time the
publisher and the worker spend per task.

    python benchmarks/bench_celery.py                 # print the tables (~20 s)
    python benchmarks/bench_celery.py --write-docs    # and refresh docs/performance.md
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common

TARGET_RATIO = 1.05
"""logtrace's budget: at most 5 % more time per published-and-run task."""

TASKS = textwrap.dedent(
    """
    import os

    from celery import Celery

    import logtrace
    from logtrace.celery import instrument, uninstrument

    app = Celery("benchtasks", broker=os.environ["LT_BROKER"], backend=os.environ["LT_BROKER"])
    app.conf.update(broker_connection_retry_on_startup=True, worker_prefetch_multiplier=1)
    instrument(app)
    logtrace.configure_logging(os.environ["LT_SERVICE"], filename=os.environ["LT_LOG"])


    @app.task
    def noop():
        return None


    @app.task
    def set_tracing(on):
        # Runs in the pool's child, where tasks run: switches the integration there.
        if on:
            instrument(app)
        else:
            uninstrument()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(20)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("redis-server did not start")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop(process)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the pool), every thread, from the
    scheduler's nanosecond counters (``/proc/PID/task/TID/schedstat``)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


@contextlib.contextmanager
def worker(directory: Path, broker: str) -> Iterator[int]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(directory), str(_common.REPO_ROOT)])
    env.update(LT_BROKER=broker, LT_SERVICE="worker", LT_LOG=str(directory / "worker.log"))
    with (directory / "worker.out").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "benchtasks",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process.pid
    finally:
        stop(process)


def batch(noop: Any, tasks: int, worker_pid: int) -> tuple[float, float]:
    """Seconds per task: publish, wait for the result, one task at a time; and
    CPU seconds per task spent by this process and the worker together."""
    cpu = time.process_time() + cpu_seconds(worker_pid)
    start = time.perf_counter_ns()
    for _ in range(tasks):
        noop.delay().get(timeout=30)
    wall = (time.perf_counter_ns() - start) / tasks / 1e9
    return wall, (time.process_time() + cpu_seconds(worker_pid) - cpu) / tasks


def in_process(rounds: int, seed: int, tasks: int = 200) -> dict[str, list[float]]:
    """The integration's own work, without a broker or a machine's noise around it.

    This thread's CPU time to publish ``tasks`` empty tasks to Kombu's in-memory
    transport and to run as many through the task's tracer as a worker's pool
    child does (``build_tracer``, with its signals and its log line; the request
    carries the message headers at its top level, a ``traceparent`` among them,
    as in a worker), per task, with the integration on and off. An eager
    ``apply(headers=...)`` would not do: it nests the headers under
    ``request.headers``, so the trace would not be read. Logging goes where the
    publisher's goes.
    """
    import uuid

    from celery import Celery
    from celery.app.trace import build_tracer

    from logtrace.celery import instrument, uninstrument

    app = Celery("inprocess", broker="memory://")

    @app.task
    def empty() -> None:
        return None

    tracer = build_tracer(empty.name, empty, app=app)
    delivery = {"exchange": "", "routing_key": "celery"}

    def run_one() -> None:
        task_id = str(uuid.uuid4())
        request = {
            "id": task_id,
            "task": empty.name,
            "retries": 0,
            "traceparent": _common.TRACEPARENT,
            "delivery_info": delivery,
        }
        tracer(task_id, (), {}, request)

    out: dict[str, list[float]] = {"plain": [], "traced": []}
    for r, name in _common.interleaved(["plain", "traced", "plain", "traced"], rounds, seed):
        if name == "traced":
            instrument(app)
        else:
            uninstrument()
        start = time.thread_time_ns()
        for _ in range(tasks):
            empty.apply_async()
            run_one()
        if r >= 1:  # the first round warms up
            out[name].append((time.thread_time_ns() - start) / tasks / 1e9)
    uninstrument()
    return out


VARIANTS = {
    "plain": "plain worker and publisher",
    "plain2": "plain again (noise check)",
    "traced": "with instrument(app)",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=12, help="interleaved rounds (default 12)")
    p.add_argument("--tasks", type=int, default=60, help="tasks per variant per round")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-docs", action="store_true", help="refresh docs/performance.md")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        directory = Path(tmp)
        (directory / "benchtasks.py").write_text(TASKS)
        with redis_server(directory) as broker:
            os.environ.update(
                LT_BROKER=broker, LT_SERVICE="publisher", LT_LOG=str(directory / "publisher.log")
            )
            sys.path.insert(0, str(directory))
            from benchtasks import noop, set_tracing  # type: ignore[import-not-found]

            from logtrace.celery import instrument, uninstrument

            def switch(on: bool) -> None:
                """Tracing on or off in this process and in the worker's pool child."""
                uninstrument()
                set_tracing.delay(on).get(timeout=30)
                if on:
                    instrument(noop.app)

            with worker(directory, broker) as pid:
                for name in VARIANTS:  # warm-up: worker up, connections made
                    switch(name == "traced")
                    batch(noop, 20, pid)
                samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
                cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
                for _, name in _common.interleaved(list(VARIANTS), args.rounds, args.seed):
                    switch(name == "traced")
                    wall, used = batch(noop, args.tasks, pid)
                    samples[name].append(wall)
                    cpu[name].append(used)
                switch(False)
            traced_lines = (directory / "worker.log").read_text().count('"consumer"')
            own = in_process(args.rounds + 1, args.seed)

    rows = _common.summarize(samples, "plain", list(VARIANTS))
    cpu_rows = {r.name: r for r in _common.summarize(cpu, "plain", list(VARIANTS))}
    header = ["variant", "µs per task", "Δ µs", "Δ IQR", "vs plain", "CPU µs per task", "CPU Δ µs"]
    cells = []
    for row in rows:
        c = cpu_rows[row.name]
        delta = "-" if row.name == "plain" else f"{c.delta * 1e6:+.0f}"
        cells.append(
            [
                *_common.overhead_cells(row, VARIANTS[row.name], "plain"),
                f"{c.median * 1e6:.0f}",
                delta,
            ]
        )
    table = _common.markdown_table(header, cells)
    traced, noise = rows[-1], rows[1]
    (own_plain, own_traced) = _common.summarize(own, "plain", ["plain", "traced"])
    share = own_traced.delta / rows[0].median
    verdict = "check" if share <= TARGET_RATIO - 1 else "OVER BUDGET"
    own_table = _common.markdown_table(
        ["in-process, per task (publish + run)", "CPU µs", "Δ µs", "Δ IQR", "ratio"],
        [
            _common.overhead_cells(own_plain, "integration off", "plain"),
            _common.overhead_cells(own_traced, "instrument(app)", "plain"),
        ],
    )
    summary = (
        f"logtrace: the integration's own work is {own_traced.delta * 1e6:+.0f} µs of CPU per "
        f"task, {share:.1%} of the plain publish-and-run time (budget <= "
        f"{TARGET_RATIO - 1:.0%}: {verdict}). End to end: {traced.ratio:.3f}x the plain "
        f"time per task and {cpu_rows['traced'].delta * 1e6:+.0f} µs of CPU "
        f"(noise check: {noise.ratio:.3f}x, {cpu_rows['plain2'].delta * 1e6:+.0f} µs)."
    )
    command = f"python benchmarks/bench_celery.py --rounds {args.rounds} --tasks {args.tasks}"
    body = "\n".join(
        [
            "### Celery: publish and run an empty task through Redis",
            "",
            f"`{command}`",
            f"(logtrace {_common.git_revision()}; "
            f"{_common.versions('celery', 'kombu', 'redis')}; Redis server from Debian).",
            f"{_common.machine_line()}. One task at a time: `delay()` then",
            "`get()`, to one prefork worker with one child; the worker and the publisher log",
            "at INFO through `configure_logging` into files. Between batches, a control task",
            "switches the integration on or off in the worker's child, and this process",
            "switches its own. The traced side writes a",
            "producer span record in the publisher and a consumer span record in the",
            f"worker for every task ({traced_lines} consumer records in this run).",
            "CPU is the time this process and the worker spend per task (the scheduler's",
            "counters in `/proc`). On a busy shared machine both swing by more than",
            "logtrace costs (compare the noise check), so the second table measures the",
            "integration's own work in one thread, interleaved: publishing to Kombu's",
            "in-memory transport and running the task through its tracer as a worker's",
            "pool child does, the message's `traceparent` in the request, with the",
            "integration on and off. The budget compares that",
            "difference with the plain publish-and-run time above.",
            "",
            table,
            "",
            own_table,
            "",
            summary,
        ]
    )
    print(body)
    if args.write_docs:
        _common.write_docs_block("celery", body, section="## Celery")
    return 0


if __name__ == "__main__":
    sys.exit(main())
