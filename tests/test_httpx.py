"""httpx clients continue the trace: one client span per request, against a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from _echo import (
    capture_spans,
    check_one_client_span_per_hop,
    echo_app,
    free_port,
    parse_traceparent,
    sent_parent,
    serve,
)

import logtrace
import logtrace.httpx
from logtrace import TraceContext
from logtrace._context import CURRENT
from logtrace.propagation import Propagator


class TestSyncClient:
    def test_request_names_a_client_span_that_is_a_child_of_the_caller(self, echo_url: str) -> None:
        with capture_spans() as spans, logtrace.httpx.Client() as client:
            with logtrace.span("caller") as caller:
                response = client.get(f"{echo_url}/echo")
            trace_id, parent = sent_parent(response)
        [record] = spans.fields("client")
        assert trace_id == caller.trace_id == record["trace_id"]
        assert parent == record["span_id"] != caller.span_id
        assert record["parent_span_id"] == caller.span_id

    def test_outside_any_context_the_call_starts_a_new_trace(self, echo_url: str) -> None:
        assert logtrace.current() is None
        with capture_spans() as spans, logtrace.httpx.Client() as client:
            trace_id, parent = sent_parent(client.get(f"{echo_url}/echo"))
        [record] = spans.fields("client")
        assert (record["trace_id"], record["span_id"]) == (trace_id, parent)
        assert record["parent_span_id"] is None
        assert logtrace.current() is None

    def test_every_request_gets_a_new_client_span(self, echo_url: str) -> None:
        with logtrace.httpx.Client() as client, logtrace.span("caller") as caller:
            sent = [sent_parent(client.get(f"{echo_url}/echo")) for _ in range(20)]
        assert {t for t, _ in sent} == {caller.trace_id}
        assert len({p for _, p in sent}) == 20

    def test_caller_context_stays_current_while_the_request_runs(self, echo_url: str) -> None:
        seen: list[TraceContext | None] = []

        class Watching(httpx.HTTPTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                seen.append(logtrace.current())
                return super().handle_request(request)

        transport = logtrace.httpx.TraceTransport(Watching())
        with httpx.Client(transport=transport) as client, logtrace.span("caller") as caller:
            client.get(f"{echo_url}/echo")
            assert logtrace.current() == caller
        assert seen == [caller]

    def test_record_has_semantic_convention_attributes(self, echo_url: str) -> None:
        port = int(echo_url.rpartition(":")[2])
        with capture_spans() as spans, logtrace.httpx.Client() as client:
            client.post(f"{echo_url}/echo?page=2", content=b"x")
        [record] = spans.fields("client")
        assert record["span.name"] == "POST"
        assert spans.records[0].getMessage() == "client POST"
        assert record["http.request.method"] == "POST"
        assert record["url.full"] == f"{echo_url}/echo?page=2"
        assert record["server.address"] == "127.0.0.1"
        assert record["server.port"] == port
        assert record["http.response.status_code"] == 200
        assert "error.type" not in record
        assert record["duration_ms"] > 0

    def test_credentials_and_signatures_stay_out_of_the_record(self, echo_url: str) -> None:
        url = echo_url.replace("http://", "http://alice:s3cret@") + "/echo?sig=abc&x=1"
        with capture_spans() as spans, logtrace.httpx.Client() as client:
            assert client.get(url).status_code == 200
        [record] = spans.fields("client")
        assert record["url.full"] == f"{echo_url}/echo?sig=REDACTED&x=1"
        assert "s3cret" not in str(spans.records[0].__dict__)

    @pytest.mark.parametrize("status", [404, 503])
    def test_error_status_sets_error_type(self, echo_url: str, status: int) -> None:
        with capture_spans() as spans, logtrace.httpx.Client() as client:
            assert client.get(f"{echo_url}/status/{status}").status_code == status
        [record] = spans.fields("client")
        assert record["http.response.status_code"] == status
        assert record["error.type"] == str(status)

    def test_connection_refused_is_recorded_and_raised_unchanged(self) -> None:
        url = f"http://127.0.0.1:{free_port()}/echo"
        with (
            capture_spans() as spans,
            logtrace.httpx.Client() as client,
            logtrace.span("caller") as caller,
            pytest.raises(httpx.ConnectError),
        ):
            client.get(url)
        [record] = spans.fields("client")
        assert record["error.type"] == "ConnectError"
        assert record["parent_span_id"] == caller.span_id
        assert "http.response.status_code" not in record
        assert record["exception.type"] == "httpx.ConnectError"

    def test_each_redirect_hop_is_a_client_span_of_its_own(self, echo_url: str) -> None:
        with (
            capture_spans() as spans,
            logtrace.httpx.Client(follow_redirects=True) as client,
            logtrace.span("caller") as caller,
        ):
            response = client.get(f"{echo_url}/redirect/1")
        check_one_client_span_per_hop(response, spans.fields("client"), caller.span_id)

    def test_traceparent_set_by_the_caller_is_replaced(self, echo_url: str) -> None:
        theirs = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        with capture_spans() as spans, logtrace.httpx.Client() as client:
            response = client.get(f"{echo_url}/echo", headers={"traceparent": theirs})
        [record] = spans.fields("client")
        assert sent_parent(response) == (record["trace_id"], record["span_id"])

    def test_request_id_of_the_request_is_forwarded(self, echo_url: str) -> None:
        ctx = TraceContext("a" * 32, "b" * 16, None, True, False, None, "req-42")
        token = CURRENT.set(ctx)
        try:
            with logtrace.httpx.Client() as client:
                headers = client.get(f"{echo_url}/echo").json()["headers"]
        finally:
            CURRENT.reset(token)
        assert headers["x-request-id"] == "req-42"

    def test_request_id_set_by_the_caller_wins(self, echo_url: str) -> None:
        ctx = TraceContext("a" * 32, "b" * 16, None, True, False, None, "req-42")
        token = CURRENT.set(ctx)
        try:
            with logtrace.httpx.Client() as client:
                response = client.get(f"{echo_url}/echo", headers={"X-Request-ID": "mine"})
        finally:
            CURRENT.reset(token)
        headers = response.json()["headers"]
        assert headers["x-request-id"] == "mine"
        assert parse_traceparent(headers["traceparent"])[0] == "a" * 32

    def test_streamed_response_span_ends_when_the_body_is_closed(self, echo_url: str) -> None:
        with capture_spans() as spans, logtrace.httpx.Client() as client:
            with client.stream("GET", f"{echo_url}/stream") as response:
                assert spans.fields("client") == []
                body = response.read()
            [record] = spans.fields("client")
        assert b"traceparent" in body
        assert record["http.response.status_code"] == 200

    def test_mounted_transports_are_traced(self, echo_url: str) -> None:
        mounts = {"http://127.0.0.1": httpx.HTTPTransport()}
        with capture_spans() as spans, logtrace.httpx.Client(mounts=mounts) as client:
            trace_id, parent = sent_parent(client.get(f"{echo_url}/echo"))
        [record] = spans.fields("client")
        assert (record["trace_id"], record["span_id"]) == (trace_id, parent)

    def test_a_trace_transport_given_to_the_client_is_not_wrapped_twice(
        self, echo_url: str
    ) -> None:
        transport = logtrace.httpx.TraceTransport()
        with capture_spans() as spans, logtrace.httpx.Client(transport=transport) as client:
            client.get(f"{echo_url}/echo")
        assert len(spans.fields("client")) == 1

    def test_explicit_propagator_decides_the_headers(self, echo_url: str) -> None:
        class Tagged(Propagator):
            def outgoing(self, context: TraceContext) -> dict[str, str]:
                return {**super().outgoing(context), "x-span": context.span_id}

        with capture_spans() as spans, logtrace.httpx.Client(propagator=Tagged()) as client:
            headers = client.get(f"{echo_url}/echo").json()["headers"]
        [record] = spans.fields("client")
        assert headers["x-span"] == record["span_id"]


class TestAsyncClient:
    def test_request_names_a_client_span_that_is_a_child_of_the_caller(self, echo_url: str) -> None:
        async def main() -> tuple[TraceContext, httpx.Response]:
            async with logtrace.httpx.AsyncClient() as client:
                with logtrace.span("caller") as caller:
                    return caller, await client.get(f"{echo_url}/echo")

        with capture_spans() as spans:
            caller, response = asyncio.run(main())
        [record] = spans.fields("client")
        assert sent_parent(response) == (caller.trace_id, record["span_id"])
        assert record["parent_span_id"] == caller.span_id
        assert record["http.response.status_code"] == 200

    def test_concurrent_calls_each_get_their_own_span_and_parent(self, echo_url: str) -> None:
        async def call(client: httpx.AsyncClient, i: int) -> tuple[TraceContext, Any]:
            async with logtrace.span(f"caller-{i}") as caller:
                await asyncio.sleep(0)
                response = await client.get(f"{echo_url}/echo")
                assert logtrace.current() == caller
                return caller, sent_parent(response)

        async def main() -> list[tuple[TraceContext, Any]]:
            async with logtrace.httpx.AsyncClient() as client:
                return await asyncio.gather(*(call(client, i) for i in range(200)))

        with capture_spans() as spans:
            results = asyncio.run(main())
        records = {r["span_id"]: r for r in spans.fields("client")}
        assert len(records) == 200
        for caller, (trace_id, parent) in results:
            assert trace_id == caller.trace_id
            assert records[parent]["parent_span_id"] == caller.span_id
            assert records[parent]["trace_id"] == caller.trace_id

    def test_caller_context_stays_current_while_the_request_runs(self, echo_url: str) -> None:
        seen: list[TraceContext | None] = []

        class Watching(httpx.AsyncHTTPTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                seen.append(logtrace.current())
                return await super().handle_async_request(request)

        async def main() -> TraceContext:
            transport = logtrace.httpx.AsyncTraceTransport(Watching())
            async with httpx.AsyncClient(transport=transport) as client:
                with logtrace.span("caller") as caller:
                    await client.get(f"{echo_url}/echo")
                    assert logtrace.current() == caller
                    return caller

        caller = asyncio.run(main())
        assert seen == [caller]

    def test_connection_refused_is_recorded_and_raised_unchanged(self) -> None:
        url = f"http://127.0.0.1:{free_port()}/echo"

        async def main() -> None:
            async with logtrace.httpx.AsyncClient() as client:
                await client.get(url)

        with capture_spans() as spans, pytest.raises(httpx.ConnectError):
            asyncio.run(main())
        [record] = spans.fields("client")
        assert record["error.type"] == "ConnectError"

    def test_redirect_hops_and_streamed_bodies(self, echo_url: str) -> None:
        async def main() -> httpx.Response:
            async with (
                logtrace.httpx.AsyncClient(follow_redirects=True) as client,
                client.stream("GET", f"{echo_url}/redirect/0") as response,
            ):
                await response.aread()
                return response

        with capture_spans() as spans:
            response = asyncio.run(main())
        records = spans.fields("client")
        assert [r["http.response.status_code"] for r in records] == [302, 200]
        assert sent_parent(response)[1] == records[-1]["span_id"]
        assert len({r["trace_id"] for r in records}) == 2  # no caller: each hop roots a trace


class TestTwoServices:
    """Service A (TraceMiddleware) calls service B (TraceMiddleware) through httpx."""

    @pytest.fixture(scope="class")
    @staticmethod
    def services() -> Iterator[tuple[str, str]]:
        asgi = pytest.importorskip("logtrace.asgi")
        with serve(asgi.TraceMiddleware(echo_app)) as b_url:

            async def service_a(scope: dict[str, Any], receive: Any, send: Any) -> None:
                if scope["type"] != "http":
                    return
                server = logtrace.current()
                assert server is not None
                async with logtrace.httpx.AsyncClient() as client:
                    b = (await client.get(f"{b_url}/echo")).json()

                # A sync client from a worker thread (what run_in_threadpool does).
                def call_b_sync() -> Any:
                    with logtrace.httpx.Client() as sync_client:
                        return sync_client.get(f"{b_url}/echo").json()

                b_sync = await asyncio.to_thread(call_b_sync)
                assert logtrace.current() == server
                body = json.dumps(
                    {"server": server._asdict(), "b": b["headers"], "b_sync": b_sync["headers"]}
                ).encode()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})

            with serve(asgi.TraceMiddleware(service_a)) as a_url:
                yield a_url, b_url

    def test_callee_parent_is_the_callers_client_span(self, services: tuple[str, str]) -> None:
        a_url, _ = services
        with (
            capture_spans() as spans,
            logtrace.httpx.Client() as client,
            logtrace.span("test") as root,
        ):
            response = client.get(f"{a_url}/a")
            spans.wait(6)  # the test span's own record comes when its block ends
        body = response.json()
        a_server = body["server"]
        records = spans.fields()
        by_id = {r["span_id"]: r for r in records}

        # test -> A: the test's client span is A's server span's parent.
        [test_client] = [
            r for r in records if r["parent_span_id"] == root.span_id and r["span.kind"] == "client"
        ]
        assert a_server["parent_span_id"] == test_client["span_id"]
        assert by_id[a_server["span_id"]]["span.kind"] == "server"
        assert by_id[a_server["span_id"]]["url.path"] == "/a"

        # A -> B, once async and once sync: B's server parent == A's client span.
        for headers in (body["b"], body["b_sync"]):
            trace_id, parent, _ = parse_traceparent(headers["traceparent"])
            a_client = by_id[parent]
            assert a_client["span.kind"] == "client"
            assert a_client["parent_span_id"] == a_server["span_id"]
            [b_server] = [r for r in records if r["parent_span_id"] == parent]
            assert b_server["span.kind"] == "server"
            assert b_server["url.path"] == "/echo"
            assert trace_id == root.trace_id

        assert {r["trace_id"] for r in records} == {root.trace_id}
        assert sorted(r["span.kind"] for r in records) == sorted(
            ["internal", "client", "server", "client", "server", "client", "server"]
        )
        assert response.headers["traceresponse"].split("-")[2] == a_server["span_id"]


class TestConfiguredFormats:
    def test_b3_and_a_renamed_request_id_header(self, echo_url: str) -> None:
        propagator = Propagator(
            inject=("tracecontext", "b3", "request-id"), request_id_header="x-correlation-id"
        )
        ctx = TraceContext("a" * 32, "b" * 16, None, True, False, None, "req-9")
        token = CURRENT.set(ctx)
        try:
            with capture_spans() as spans, logtrace.httpx.Client(propagator=propagator) as c:
                headers = c.get(f"{echo_url}/echo", headers={"b3": "stale"}).json()["headers"]
        finally:
            CURRENT.reset(token)
        [record] = spans.fields("client")
        assert headers["b3"].split("-")[:2] == ["a" * 32, record["span_id"]]
        assert parse_traceparent(headers["traceparent"])[1] == record["span_id"]
        assert headers["x-correlation-id"] == "req-9"
        assert "x-request-id" not in headers

    def test_set_default_applies_to_existing_clients(self, echo_url: str) -> None:
        from logtrace import propagation

        before = propagation.get_default()
        with logtrace.httpx.Client() as client:
            propagation.set_default(Propagator(inject=("b3multi",)))
            try:
                headers = client.get(f"{echo_url}/echo").json()["headers"]
            finally:
                propagation.set_default(before)
        assert "traceparent" not in headers
        assert "x-b3-spanid" in headers
