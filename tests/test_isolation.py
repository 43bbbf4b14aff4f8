"""Concurrent requests never see each other's context.

Each request carries its own ``traceparent``; the application checks at
several suspension points that the context it sees is its own, and the
tests check that requests really overlapped, so that they can fail.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from typing import Any

from _asgi import http_scope
from servers import run_uvicorn_thread, run_wsgi_threaded
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from logtrace import current
from logtrace.asgi import Message, TraceMiddleware
from logtrace.wsgi import WSGITraceMiddleware

N = 1000


def trace_id(n: int) -> str:
    return f"{n + 1:032x}"


def parent_id(n: int) -> str:
    return f"{n + 1:016x}"


def traceparent(n: int) -> str:
    return f"00-{trace_id(n)}-{parent_id(n)}-01"


class InFlight:
    """Counts requests in progress and remembers the most at once."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.lock = threading.Lock()

    def enter(self) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self) -> None:
        with self.lock:
            self.now -= 1


def asgi_app(in_flight: InFlight, mixups: list[str], pause: float) -> Any:
    async def check_in_background(expected: str) -> None:
        await asyncio.sleep(0)
        ctx = current()
        if ctx is None or ctx.trace_id != expected:
            mixups.append(f"background task of {expected} saw {ctx}")

    async def endpoint(request: Request) -> Response:
        in_flight.enter()
        try:
            ctx = current()
            assert ctx is not None
            for _ in range(3):
                await asyncio.sleep(random.random() * pause)
                if current() is not ctx:
                    mixups.append(f"{ctx.trace_id} saw {current()}")
        finally:
            in_flight.leave()
        return PlainTextResponse(
            f"{ctx.trace_id} {ctx.parent_span_id} {ctx.span_id}",
            background=BackgroundTask(check_in_background, ctx.trace_id),
        )

    return TraceMiddleware(Starlette(routes=[Route("/", endpoint)]))


def check_answer(n: int, body: str, traceresponse: str, span_ids: set[str]) -> None:
    seen_trace, seen_parent, seen_span = body.split()
    assert (seen_trace, seen_parent) == (trace_id(n), parent_id(n))
    assert traceresponse == f"00-{trace_id(n)}-{seen_span}-01"
    assert seen_span not in span_ids
    span_ids.add(seen_span)


class TestAsyncio:
    def test_1000_concurrent_requests_in_process(self) -> None:
        in_flight, mixups = InFlight(), []
        app = asgi_app(in_flight, mixups, pause=0.002)

        async def one(n: int) -> tuple[str, str]:
            sent: list[Message] = []
            scope = http_scope("/", [(b"traceparent", traceparent(n).encode())])
            inbox = [{"type": "http.request", "body": b"", "more_body": False}]

            async def receive() -> Message:
                if inbox:
                    return inbox.pop()
                await asyncio.sleep(60)
                return {"type": "http.disconnect"}

            async def send(message: Message) -> None:
                sent.append(message)

            await app(scope, receive, send)
            headers = dict(sent[0]["headers"])
            body = b"".join(m.get("body", b"") for m in sent[1:])
            return body.decode(), headers[b"traceresponse"].decode()

        async def everything() -> list[tuple[str, str]]:
            return await asyncio.gather(*(one(n) for n in range(N)))

        answers = asyncio.run(everything())
        span_ids: set[str] = set()
        for n, (body, tr) in enumerate(answers):
            check_answer(n, body, tr, span_ids)
        assert mixups == []
        assert in_flight.most > N // 2  # they really ran at the same time

    def test_1000_concurrent_requests_through_uvicorn(self) -> None:
        in_flight, mixups = InFlight(), []
        app = asgi_app(in_flight, mixups, pause=0.01)
        with run_uvicorn_thread(app, access_log=False, backlog=N * 2) as server:

            async def one(n: int) -> tuple[int, str, str]:
                # A bare HTTP/1.1 exchange on its own connection: a thousand at once.
                reader, writer = await asyncio.open_connection(server.host, server.port)
                writer.write(
                    f"GET / HTTP/1.1\r\nHost: test\r\ntraceparent: {traceparent(n)}\r\n"
                    "Connection: close\r\n\r\n".encode()
                )
                answer = await reader.read()
                writer.close()
                await writer.wait_closed()
                head, _, body = answer.decode().partition("\r\n\r\n")
                status_line, *lines = head.split("\r\n")
                headers = dict(line.split(": ", 1) for line in lines)
                return int(status_line.split()[1]), body, headers["traceresponse"]

            async def everything() -> list[tuple[int, str, str]]:
                return await asyncio.gather(*(one(n) for n in range(N)))

            answers = asyncio.run(everything())
        span_ids: set[str] = set()
        for n, (status, body, tr) in enumerate(answers):
            assert status == 200
            check_answer(n, body, tr, span_ids)
        assert mixups == []
        assert in_flight.most > 50


class TestThreadedWSGI:
    def test_concurrent_requests_in_a_threaded_server(self) -> None:
        in_flight, mixups = InFlight(), []

        def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            in_flight.enter()
            try:
                ctx = current()
                assert ctx is not None
                for _ in range(3):
                    time.sleep(random.random() * 0.01)
                    if current() is not ctx:
                        mixups.append(f"{ctx.trace_id} saw {current()}")
            finally:
                in_flight.leave()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [f"{ctx.trace_id} {ctx.parent_span_id} {ctx.span_id}".encode()]

        requests = 300
        with run_wsgi_threaded(WSGITraceMiddleware(app)) as server:

            def one(n: int) -> tuple[int, str, str]:
                connection = HTTPConnection(server.host, server.port, timeout=30)
                try:
                    connection.request("GET", "/", headers={"traceparent": traceparent(n)})
                    answer = connection.getresponse()
                    body = answer.read().decode()
                    return answer.status, body, answer.headers["traceresponse"]
                finally:
                    connection.close()

            with ThreadPoolExecutor(32) as pool:
                responses = list(pool.map(one, range(requests)))
        span_ids: set[str] = set()
        for n, (status, body, tr) in enumerate(responses):
            assert status == 200
            check_answer(n, body, tr, span_ids)
        assert mixups == []
        assert in_flight.most > 4
