"""A real Redis server and a real Celery worker for the Celery tests, on 127.0.0.1.

Debian's ``redis-server`` (installed by ``.ci/run``) runs with no persistence on a
free port; each process started here is stopped by its own PID when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

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
