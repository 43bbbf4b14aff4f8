"""Publish-and-run time of an empty Celery task through Redis, with and without logtrace.

Two real workers (prefork, one child each) share one real Redis server on
127.0.0.1 (Debian's ``redis-server``, no persistence): one runs a task module
without logtrace's Celery integration, the other the same module with
``instrument(app)``; both log through ``configure_logging`` at INFO into files,
as a service would. This process publishes an empty task and waits for its
result, one task at a time, to one worker or the other; instrumentation is
switched on and off here to match. Variants are interleaved over rounds;
medians over rounds of the time per task, and of the ratio to the plain
worker in the same round.

    python benchmarks/bench_celery.py                 # print the table (~30 s)
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

    app = Celery("benchtasks", broker=os.environ["LT_BROKER"], backend=os.environ["LT_BROKER"])
    app.conf.update(broker_connection_retry_on_startup=True, worker_prefetch_multiplier=1)
    if os.environ.get("LT_INSTRUMENT") == "1":
        from logtrace.celery import instrument

        instrument(app)
    logtrace.configure_logging(os.environ["LT_SERVICE"], filename=os.environ["LT_LOG"])


    @app.task
    def noop():
        return None
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


@contextlib.contextmanager
def worker(directory: Path, broker: str, queue: str, instrumented: bool) -> Iterator[None]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(directory), str(_common.REPO_ROOT)])
    env.update(
        LT_BROKER=broker,
        LT_INSTRUMENT="1" if instrumented else "0",
        LT_SERVICE=f"worker-{queue}",
        LT_LOG=str(directory / f"worker-{queue}.log"),
    )
    with (directory / f"worker-{queue}.out").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "benchtasks",
                "worker",
                "-Q",
                queue,
                "--pool=prefork",
                "--concurrency=1",
                "--loglevel=INFO",
                "-n",
                f"{queue}@bench",
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
        yield
    finally:
        stop(process)


def batch(noop: Any, queue: str, tasks: int) -> float:
    """Seconds per task: publish, wait for the result, one task at a time."""
    start = time.perf_counter_ns()
    for _ in range(tasks):
        noop.apply_async(queue=queue).get(timeout=30)
    return (time.perf_counter_ns() - start) / tasks / 1e9


VARIANTS = {"plain": "plain Celery worker and publisher", "traced": "with instrument(app)"}


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
                LT_BROKER=broker,
                LT_INSTRUMENT="0",
                LT_SERVICE="publisher",
                LT_LOG=str(directory / "publisher.log"),
            )
            sys.path.insert(0, str(directory))
            from benchtasks import noop  # type: ignore[import-not-found]

            from logtrace.celery import instrument, uninstrument

            with (
                worker(directory, broker, "plain", instrumented=False),
                worker(directory, broker, "traced", instrumented=True),
            ):
                for queue in VARIANTS:  # warm-up: workers up, connections made
                    if queue == "traced":
                        instrument(noop.app)
                    batch(noop, queue, 20)
                    uninstrument()
                samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
                for _, name in _common.interleaved(list(VARIANTS), args.rounds, args.seed):
                    if name == "traced":
                        instrument(noop.app)
                    else:
                        uninstrument()
                    samples[name].append(batch(noop, name, args.tasks))
                uninstrument()
            traced_lines = (directory / "worker-traced.log").read_text().count('"consumer"')

    rows = _common.summarize(samples, "plain", list(VARIANTS))
    table = _common.markdown_table(
        ["variant", "µs per task", "Δ µs", "Δ IQR", "vs plain"],
        [_common.overhead_cells(row, VARIANTS[row.name], "plain") for row in rows],
    )
    traced = rows[-1]
    verdict = "check" if traced.ratio <= TARGET_RATIO else "OVER BUDGET"
    summary = (
        f"logtrace: {traced.ratio:.3f}x the plain publish-and-run time "
        f"({traced.delta * 1e6:+.0f} µs per task; budget <= {TARGET_RATIO:.2f}x: {verdict})"
    )
    command = f"python benchmarks/bench_celery.py --rounds {args.rounds} --tasks {args.tasks}"
    body = "\n".join(
        [
            "### Celery: publish and run an empty task through Redis",
            "",
            f"`{command}`",
            f"(logtrace {_common.git_revision()}; "
            f"{_common.versions('celery', 'kombu', 'redis')}; Redis server from Debian).",
            f"{_common.machine_line()}. One task at a time: `apply_async()` then",
            "`get()`, to a prefork worker with one child; both workers and the publisher log",
            "at INFO through `configure_logging` into files. The traced side writes a",
            "producer span record in the publisher and a consumer span record in the",
            f"worker for every task ({traced_lines} consumer records in this run).",
            "",
            table,
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
