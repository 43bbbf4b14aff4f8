"""requests sessions continue the trace: one client span per request, against a real server."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from _echo import (
    capture_spans,
    check_one_client_span_per_hop,
    echo_app,
    free_port,
    parse_traceparent,
    sent_parent,
    serve,
)
from requests.adapters import HTTPAdapter

import logtrace
import logtrace.requests
from logtrace import TraceContext
from logtrace._context import CURRENT
from logtrace.propagation import Propagator


class TestSession:
    def test_request_names_a_client_span_that_is_a_child_of_the_caller(self, echo_url: str) -> None:
        with (
            capture_spans() as spans,
            logtrace.requests.Session() as session,
            logtrace.span("caller") as caller,
        ):
            response = session.get(f"{echo_url}/echo")
        [record] = spans.fields("client")
        assert sent_parent(response) == (caller.trace_id, record["span_id"])
        assert record["parent_span_id"] == caller.span_id
        assert record["span_id"] != caller.span_id

    def test_outside_any_context_the_call_starts_a_new_trace(self, echo_url: str) -> None:
        with capture_spans() as spans, logtrace.requests.Session() as session:
            trace_id, parent = sent_parent(session.get(f"{echo_url}/echo"))
        [record] = spans.fields("client")
        assert (record["trace_id"], record["span_id"]) == (trace_id, parent)
        assert record["parent_span_id"] is None

    def test_every_request_gets_a_new_client_span(self, echo_url: str) -> None:
        with logtrace.requests.Session() as session, logtrace.span("caller") as caller:
            sent = [sent_parent(session.get(f"{echo_url}/echo")) for _ in range(20)]
        assert {t for t, _ in sent} == {caller.trace_id}
        assert len({p for _, p in sent}) == 20

    def test_caller_context_stays_current_while_the_request_runs(self, echo_url: str) -> None:
        seen: list[TraceContext | None] = []

        class Watching(HTTPAdapter):
            def send(self, request: requests.PreparedRequest, *a: Any, **kw: Any) -> Any:
                seen.append(logtrace.current())
                return super().send(request, *a, **kw)

        with logtrace.requests.Session() as session, logtrace.span("caller") as caller:
            session.mount("http://", Watching())
            session.get(f"{echo_url}/echo")
            assert logtrace.current() == caller
        assert seen == [caller]

    def test_record_has_semantic_convention_attributes(self, echo_url: str) -> None:
        port = int(echo_url.rpartition(":")[2])
        url = echo_url.replace("http://", "http://bob:pw@") + "/echo?X-Goog-Signature=zz&q=1"
        with capture_spans() as spans, logtrace.requests.Session() as session:
            session.put(url, data=b"x")
        [record] = spans.fields("client")
        assert record["span.name"] == "PUT"
        assert record["http.request.method"] == "PUT"
        assert record["url.full"] == f"{echo_url}/echo?X-Goog-Signature=REDACTED&q=1"
        assert record["server.address"] == "127.0.0.1"
        assert record["server.port"] == port
        assert record["http.response.status_code"] == 200
        assert record["duration_ms"] > 0
        assert "error.type" not in record

    def test_error_status_sets_error_type(self, echo_url: str) -> None:
        with capture_spans() as spans, logtrace.requests.Session() as session:
            assert session.get(f"{echo_url}/status/500").status_code == 500
        [record] = spans.fields("client")
        assert record["error.type"] == "500"

    def test_connection_refused_is_recorded_and_raised_unchanged(self) -> None:
        url = f"http://127.0.0.1:{free_port()}/echo"
        with (
            capture_spans() as spans,
            logtrace.requests.Session() as session,
            logtrace.span("caller") as caller,
            pytest.raises(requests.ConnectionError),
        ):
            session.get(url)
        [record] = spans.fields("client")
        assert record["error.type"] == "ConnectionError"
        assert record["exception.type"] == "requests.exceptions.ConnectionError"
        assert record["parent_span_id"] == caller.span_id

    def test_each_redirect_hop_is_a_client_span_of_its_own(self, echo_url: str) -> None:
        with (
            capture_spans() as spans,
            logtrace.requests.Session() as session,
            logtrace.span("caller") as caller,
        ):
            response = session.get(f"{echo_url}/redirect/1")
        check_one_client_span_per_hop(response, spans.fields("client"), caller.span_id)

    def test_the_prepared_request_passed_in_is_left_unchanged(self, echo_url: str) -> None:
        with logtrace.requests.Session() as session:
            prepared = session.prepare_request(requests.Request("GET", f"{echo_url}/echo"))
            response = session.send(prepared)
        assert "traceparent" not in prepared.headers
        assert response.request.headers["traceparent"] == response.json()["headers"]["traceparent"]

    def test_traceparent_set_by_the_caller_is_replaced(self, echo_url: str) -> None:
        theirs = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        with capture_spans() as spans, logtrace.requests.Session() as session:
            response = session.get(f"{echo_url}/echo", headers={"traceparent": theirs})
        [record] = spans.fields("client")
        assert sent_parent(response) == (record["trace_id"], record["span_id"])

    def test_request_id_forwarded_unless_the_caller_set_one(self, echo_url: str) -> None:
        ctx = TraceContext("a" * 32, "b" * 16, None, True, False, None, "req-7")
        token = CURRENT.set(ctx)
        try:
            with logtrace.requests.Session() as session:
                forwarded = session.get(f"{echo_url}/echo").json()["headers"]
                mine = session.get(f"{echo_url}/echo", headers={"X-Request-ID": "mine"}).json()
        finally:
            CURRENT.reset(token)
        assert forwarded["x-request-id"] == "req-7"
        assert mine["headers"]["x-request-id"] == "mine"

    def test_streamed_response_span_ends_with_the_headers(self, echo_url: str) -> None:
        with (
            capture_spans() as spans,
            logtrace.requests.Session() as session,
            session.get(f"{echo_url}/stream", stream=True) as response,
        ):
            [record] = spans.fields("client")
            assert b"traceparent" in response.content
        assert record["http.response.status_code"] == 200

    def test_adapters_mounted_later_are_traced_once(self, echo_url: str) -> None:
        with capture_spans() as spans, logtrace.requests.Session() as session:
            session.mount("http://127.0.0.1", HTTPAdapter(max_retries=1))
            session.mount("http://localhost", logtrace.requests.TraceAdapter())
            adapter = session.get_adapter(f"{echo_url}/echo")
            assert isinstance(adapter, logtrace.requests.TraceAdapter)
            assert isinstance(adapter.adapter, HTTPAdapter)
            assert not isinstance(
                session.get_adapter("http://localhost/").adapter,  # type: ignore[attr-defined]
                logtrace.requests.TraceAdapter,
            )
            trace_id, parent = sent_parent(session.get(f"{echo_url}/echo"))
        [record] = spans.fields("client")
        assert (record["trace_id"], record["span_id"]) == (trace_id, parent)

    def test_trace_adapter_on_a_plain_session(self, echo_url: str) -> None:
        with capture_spans() as spans, requests.Session() as session:
            session.mount("http://", logtrace.requests.TraceAdapter())
            trace_id, parent = sent_parent(session.get(f"{echo_url}/echo"))
        [record] = spans.fields("client")
        assert (record["trace_id"], record["span_id"]) == (trace_id, parent)

    def test_explicit_propagator_decides_the_headers(self, echo_url: str) -> None:
        class Tagged(Propagator):
            def outgoing(self, context: TraceContext) -> dict[str, str]:
                return {**super().outgoing(context), "x-span": context.span_id}

        with capture_spans() as spans, logtrace.requests.Session(propagator=Tagged()) as s:
            headers = s.get(f"{echo_url}/echo").json()["headers"]
        [record] = spans.fields("client")
        assert headers["x-span"] == record["span_id"]

    def test_threads_sharing_a_session_keep_their_own_parents(self, echo_url: str) -> None:
        results: list[tuple[TraceContext, tuple[str, str]]] = []
        lock = threading.Lock()

        def work(session: requests.Session, i: int) -> None:
            with logtrace.span(f"caller-{i}") as caller:
                sent = sent_parent(session.get(f"{echo_url}/echo"))
            with lock:
                results.append((caller, sent))

        with capture_spans() as spans, logtrace.requests.Session() as session:
            threads = [threading.Thread(target=work, args=(session, i)) for i in range(32)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        records = {r["span_id"]: r for r in spans.fields("client")}
        assert len(results) == len(records) == 32
        for caller, (trace_id, parent) in results:
            assert trace_id == caller.trace_id
            assert records[parent]["parent_span_id"] == caller.span_id


class TestTracedService:
    def test_callee_server_span_parent_is_the_client_span(self) -> None:
        asgi = pytest.importorskip("logtrace.asgi")
        with (
            serve(asgi.TraceMiddleware(echo_app)) as url,
            capture_spans() as spans,
            logtrace.requests.Session() as session,
        ):
            with logtrace.span("caller") as caller:
                response = session.get(f"{url}/echo")
            spans.wait(3)
        [client] = spans.fields("client")
        [server] = spans.fields("server")
        assert server["parent_span_id"] == client["span_id"] == sent_parent(response)[1]
        assert server["trace_id"] == client["trace_id"] == caller.trace_id
        assert client["parent_span_id"] == caller.span_id
        assert response.headers["traceresponse"].split("-")[2] == server["span_id"]

    def test_threaded_wsgi_service_calling_out_keeps_each_request_apart(self) -> None:
        asgi = pytest.importorskip("logtrace.asgi")
        wsgi = pytest.importorskip("logtrace.wsgi")
        servers = pytest.importorskip("servers")

        with serve(asgi.TraceMiddleware(echo_app)) as b_url, logtrace.requests.Session() as out:

            def service_a(environ: dict[str, Any], start_response: Any) -> list[bytes]:
                server = logtrace.current()
                assert server is not None
                b = out.get(f"{b_url}/echo").json()["headers"]
                body = json.dumps({"server": server._asdict(), "b": b}).encode()
                start_response("200 OK", [("content-type", "application/json")])
                return [body]

            with (
                servers.run_wsgi_threaded(wsgi.WSGITraceMiddleware(service_a)) as a,
                capture_spans() as spans,
            ):

                def call(i: int) -> tuple[str, Any]:
                    with logtrace.span(f"caller-{i}") as caller, requests.Session() as plain:
                        headers = {"traceparent": caller.traceparent}
                        return caller.trace_id, plain.get(a.url + "/a", headers=headers).json()

                with ThreadPoolExecutor(16) as pool:
                    results = list(pool.map(call, range(32)))
                spans.wait(32 * 3 + 32)
        records = {r["span_id"]: r for r in spans.fields()}
        for trace_id, body in results:
            a_server = body["server"]
            assert a_server["trace_id"] == trace_id
            b_trace, parent, _ = parse_traceparent(body["b"]["traceparent"])
            assert b_trace == trace_id
            assert records[parent]["span.kind"] == "client"
            assert records[parent]["parent_span_id"] == a_server["span_id"]
            [b_server] = [r for r in records.values() if r["parent_span_id"] == parent]
            assert b_server["span.kind"] == "server"
