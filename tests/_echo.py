"""A real HTTP server on 127.0.0.1 that echoes request headers, for client tests.

``serve(app)`` runs any ASGI app under uvicorn in a thread on a free port and
stops it on exit. ``echo_app`` answers:

- ``/echo``: ``{"headers": {name: value}}`` (names lowercase);
- ``/status/<code>``: the same body with that status;
- ``/redirect/<n>``: a 302 to ``/redirect/<n-1>``, and ``/redirect/0`` to ``/echo``;
- ``/stream``: the echo body sent in several chunks.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import uvicorn

Scope = dict[str, Any]


async def echo_app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while True:  # drain the request body
        message = await receive()
        if not message.get("more_body"):
            break
    path: str = scope["path"]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    body = json.dumps({"headers": headers, "path": path}).encode()
    status = 200
    extra: list[tuple[bytes, bytes]] = []
    if path.startswith("/status/"):
        status = int(path.rpartition("/")[2])
    elif path.startswith("/redirect/"):
        n = int(path.rpartition("/")[2])
        status = 302
        target = "/echo" if n == 0 else f"/redirect/{n - 1}"
        extra.append((b"location", target.encode()))
    response_headers = [(b"content-type", b"application/json"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": response_headers})
    if path == "/stream":
        for i in range(0, len(body), 16):
            await send({"type": "http.response.body", "body": body[i : i + 16], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.body", "body": body})


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: the status line and the body go out in
    # separate writes, which Nagle's algorithm would hold for a delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", ws="none", http="h11"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class SpanRecords(logging.Handler):
    """Collects the span records written to the ``logtrace.span`` logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle() calls this under the handler's own lock.
        self.records.append(record)

    def wait(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` records arrived: a server writes its span record
        after sending the response, so possibly after the client has it."""
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            time.sleep(0.005)

    def fields(self, kind: str | None = None) -> list[dict[str, Any]]:
        out = []
        for record in list(self.records):
            fields = dict(record.__dict__)
            if kind is None or fields.get("span.kind") == kind:
                out.append(fields)
        return out


@contextmanager
def capture_spans() -> Iterator[SpanRecords]:
    logger = logging.getLogger("logtrace.span")
    handler = SpanRecords()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def parse_traceparent(value: str) -> tuple[str, str, str]:
    """(trace_id, parent span id, flags) of a ``traceparent`` value."""
    version, trace_id, span_id, flags = value.split("-")
    assert version == "00"
    return trace_id, span_id, flags


class _JSONResponse(Protocol):
    def json(self) -> Any: ...


def sent_parent(response: _JSONResponse) -> tuple[str, str]:
    """(trace_id, parent span id) of the ``traceparent`` that ``echo_app`` received."""
    trace_id, parent, _ = parse_traceparent(response.json()["headers"]["traceparent"])
    return trace_id, parent


class _Hop(Protocol):
    @property
    def request(self) -> Any: ...


class _RedirectedResponse(_JSONResponse, _Hop, Protocol):
    @property
    def history(self) -> list[Any]: ...


def check_one_client_span_per_hop(
    response: _RedirectedResponse, records: list[dict[str, Any]], caller_span_id: str
) -> None:
    """Two redirects then a 200: three client spans under the caller, one per hop,
    each the parent named in the ``traceparent`` that hop sent."""
    assert [r["http.response.status_code"] for r in records] == [302, 302, 200]
    assert {r["parent_span_id"] for r in records} == {caller_span_id}
    hops = [*response.history, response]
    sent = [parse_traceparent(h.request.headers["traceparent"])[1] for h in hops]
    assert sent == [r["span_id"] for r in records]
    assert len(set(sent)) == 3
    assert sent_parent(response)[1] == records[-1]["span_id"]
