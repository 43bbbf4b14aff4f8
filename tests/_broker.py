"""A real Redis server and a real Celery worker for the Celery tests, on 127.0.0.1.

Debian's ``redis-server`` (installed by ``.ci/run``) runs with no persistence on a
free port; each process started here is stopped by its own PID when the test ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from servers import HOST, REPO, free_port, wait_for_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL: the process and, for a worker, its pool (its own group)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # pool children left behind, if any


def redis_ping(port: int) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.create_connection((HOST, port), timeout=1) as sock,
    ):
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")
    return False


@contextlib.contextmanager
def run_redis(directory: Path) -> Iterator[str]:
    """A Redis server for this test: yields its ``redis://`` URL."""
    if not os.path.exists(REDIS_SERVER):
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    for attempt in range(3):
        port = free_port()
        log = directory / "redis.log"
        process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
                "--logfile",
                str(log),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, process=process, timeout=20)
            deadline = time.monotonic() + 10
            while not redis_ping(port):
                if time.monotonic() > deadline:
                    raise TimeoutError("redis-server does not answer PING")
                time.sleep(0.05)
        except RuntimeError:
            stop(process)
            if attempt < 2:
                continue
            raise
        except BaseException:
            stop(process)
            raise
        try:
            yield f"redis://{HOST}:{port}/0"
        finally:
            stop(process)
        return


def environment(directory: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(directory), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@contextlib.contextmanager
def run_worker(
    module: str, directory: Path, env: dict[str, str], args: Sequence[str] = ()
) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A module worker`` as a subprocess in ``directory``; output to worker.out."""
    with (directory / "worker.out").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                module,
                "worker",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--hostname",
                f"{module}@127.0.0.1",
                *args,
            ],
            cwd=directory,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop(process)


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a log file (none if it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def wait_until_ready(worker_log: Path, directory: Path, timeout: float = 90) -> None:
    """Until the worker has logged Celery's "ready." line (through logtrace's handler)."""
    deadline = time.monotonic() + timeout
    while not any(r.get("message", "").endswith(" ready.") for r in read_json_lines(worker_log)):
        if time.monotonic() > deadline:
            raise TimeoutError((directory / "worker.out").read_text())
        time.sleep(0.1)


def run_producer(
    directory: Path, broker: str, log: Path, script: str = "producer.py"
) -> subprocess.CompletedProcess[str]:
    """``script`` in ``directory`` as the service ``api`` logging to ``log``;
    asserts it succeeded (the worker's output in the message if not)."""
    done = subprocess.run(
        [sys.executable, script],
        cwd=directory,
        env=environment(directory, LT_BROKER=broker, LT_SERVICE="api", LT_LOG=str(log)),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr + (directory / "worker.out").read_text()
    return done


def wait_for_consumers(worker_log: Path, count: int, timeout: float = 30) -> None:
    """Until the worker has written ``count`` consumer span records (a task's
    result is stored before its span ends), or ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while (
        sum(1 for r in read_json_lines(worker_log) if r.get("span.kind") == "consumer") < count
        and time.monotonic() < deadline
    ):
        time.sleep(0.1)
