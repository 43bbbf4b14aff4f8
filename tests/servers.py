"""Real HTTP servers on 127.0.0.1 for end-to-end tests.

Every helper is a context manager that starts a server on a free port, waits
until it accepts connections, yields a :class:`Server`, and stops it on exit,
whatever the test did::

    with run_uvicorn("app:app", app_dir=tmp_path) as server:
        httpx.get(server.url + "/")
    assert "GET / HTTP/1.1" in server.logs()

- :func:`run_uvicorn` and :func:`run_gunicorn` start the real server as a
  subprocess from an application module in ``app_dir`` (write one into
  ``tmp_path``). The checkout is put on ``PYTHONPATH``, so the subprocess
  imports this logtrace. Its stdout and stderr go to a file:
  :meth:`Server.logs` reads it (after the ``with`` block the server has
  exited and flushed everything).
- :func:`run_wsgi_threaded` serves a WSGI callable from this process with the
  standard library's ``wsgiref``, one thread per request.
- :func:`run_uvicorn_thread` serves an ASGI callable from this process with
  uvicorn in a background thread (useful with ``caplog``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

__all__ = [
    "Server",
    "free_port",
    "raw_request",
    "run_gunicorn",
    "run_uvicorn",
    "run_uvicorn_thread",
    "run_wsgi_threaded",
    "wait_for_port",
]

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    """A running server: where to reach it and what it logged."""

    host: str
    port: int
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    def logs(self) -> str:
        """Everything a subprocess server wrote to stdout and stderr so far."""
        if self.log_path is None:
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, text: str, *, count: int = 1, timeout: float = 10.0) -> str:
        """The logs once ``text`` occurs ``count`` times in them.

        Servers log some lines after the response has gone out (uvicorn's
        exception line, for one): poll rather than read once.
        """
        deadline = time.monotonic() + timeout
        while True:
            logs = self.logs()
            if logs.count(text) >= count:
                return logs
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged {count} time(s):\n{logs}")
            time.sleep(0.05)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int,
    *,
    host: str = HOST,
    timeout: float = 20.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until ``host:port`` accepts a connection.

    Raises :class:`RuntimeError` if ``process`` exits first, and
    :class:`TimeoutError` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Ask the server to shut down gracefully, and kill it if it will not."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


@contextlib.contextmanager
def _run_subprocess(
    command: Sequence[str], port_at: int, log_path: Path, env: dict[str, str] | None
) -> Iterator[Server]:
    """Run ``command`` (its ``port_at``-th item is replaced by a free port)."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [environment.get("PYTHONPATH")])]
    )
    environment["PYTHONUNBUFFERED"] = "1"
    environment.update(env or {})
    for attempt in range(3):
        port = free_port()
        argv = list(command)
        argv[port_at] = argv[port_at].format(port=port)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=str(REPO)
            )
        try:
            wait_for_port(port, process=process)
        except RuntimeError:
            _stop(process)
            text = log_path.read_text(errors="replace")
            if "in use" in text and attempt < 2:
                continue  # Someone took the port between our check and the bind.
            raise RuntimeError(f"{argv[2]} did not start:\n{text}") from None
        except BaseException:
            _stop(process)
            raise
        try:
            yield Server(HOST, port, log_path, process)
        finally:
            _stop(process)
        return


@contextlib.contextmanager
def run_uvicorn(
    app: str,
    *,
    app_dir: Path,
    args: Sequence[str] = (),
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[Server]:
    """Serve ``app`` (``"module:attribute"`` in ``app_dir``) with ``uvicorn``.

    ``args`` go to the uvicorn command line, for example
    ``("--log-config", "logging.json")``. The output goes to ``log_path``
    (default: ``app_dir / "uvicorn.log"``).
    """
    command = [
        sys.executable, "-m", "uvicorn", app,
        "--host", HOST, "--port", "{port}", "--app-dir", str(app_dir),
        *args,
    ]  # fmt: skip
    with _run_subprocess(command, 7, log_path or app_dir / "uvicorn.log", env) as server:
        yield server


@contextlib.contextmanager
def run_gunicorn(
    app: str,
    *,
    app_dir: Path,
    args: Sequence[str] = (),
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    access_log: bool = True,
) -> Iterator[Server]:
    """Serve ``app`` (``"module:attribute"`` in ``app_dir``) with ``gunicorn``.

    One sync worker by default; ``args`` go to the gunicorn command line,
    for example ``("--worker-class", "gthread", "--threads", "8")`` or
    ``("--config", "python:settings")``. The error log and, with
    ``access_log``, gunicorn's own access log go to ``log_path`` (default:
    ``app_dir / "gunicorn.log"``); pass ``access_log=False`` when a logging
    configuration of your own handles ``gunicorn.access``.
    """
    command = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"{HOST}:{{port}}", "--chdir", str(app_dir), "--workers", "1",
        "--error-logfile", "-",
        *(["--access-logfile", "-"] if access_log else []),
        *args, app,
    ]  # fmt: skip
    with _run_subprocess(command, 4, log_path or app_dir / "gunicorn.log", env) as server:
        yield server


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output clean: no access lines on stderr."""


@contextlib.contextmanager
def run_wsgi_threaded(app: Any, *, quiet: bool = True) -> Iterator[Server]:
    """Serve the WSGI callable ``app`` from this process, a thread per request.

    ``quiet=False`` keeps ``wsgiref``'s access lines (on stderr).
    """
    handler = _QuietHandler if quiet else WSGIRequestHandler
    httpd = make_server(HOST, 0, app, server_class=_ThreadingWSGIServer, handler_class=handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Server(HOST, httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@contextlib.contextmanager
def run_uvicorn_thread(app: Any, **config: Any) -> Iterator[Server]:
    """Serve the ASGI callable ``app`` with uvicorn in a background thread.

    ``config`` goes to :class:`uvicorn.Config` (``log_level="info"`` ...).
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    config.setdefault("log_config", None)
    config.setdefault("lifespan", "off")
    server = uvicorn.Server(uvicorn.Config(app, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield Server(HOST, sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def raw_request(port: int, data: bytes, *, host: str = HOST, timeout: float = 10.0) -> bytes:
    """Send ``data`` as is on a new connection and return all the server answers.

    For requests that HTTP clients refuse to send (CR/LF or non-ASCII bytes
    in header values, duplicated headers ...). Send ``Connection: close``.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)
