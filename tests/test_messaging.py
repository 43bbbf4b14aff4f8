"""Message headers: the producer writes a producer span into the carrier, the consumer
continues it as a consumer span; dict and Kafka-style list carriers, sync and async."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

import pytest

from logtrace import TraceContext, consumer_span, current, inject_headers, producer_span, span
from logtrace._context import CURRENT
from logtrace.messaging import extract_context
from logtrace.propagation import Propagator

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def kinds(records: list[logging.LogRecord], kind: str) -> list[logging.LogRecord]:
    return [r for r in records if getattr(r, "span.kind", None) == kind]


class TestInject:
    def test_dict_carrier_gets_the_producer_span_and_its_record(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        headers: dict[str, Any] = {"content-type": "application/json"}
        with span("checkout") as caller:
            ctx = inject_headers(headers, "send orders", **{"messaging.system": "kafka"})
            assert current() == caller  # the caller's span stays current
        assert ctx.trace_id == caller.trace_id
        assert ctx.parent_span_id == caller.span_id
        assert headers == {
            "content-type": "application/json",
            "traceparent": f"00-{ctx.trace_id}-{ctx.span_id}-03",
        }
        (record,) = kinds(span_records, "producer")
        assert record.__dict__["span.name"] == "send orders"
        assert record.__dict__["messaging.system"] == "kafka"
        assert record.__dict__["messaging.operation.type"] == "send"
        assert (record.trace_id, record.span_id, record.parent_span_id) == (  # type: ignore[attr-defined]
            ctx.trace_id,
            ctx.span_id,
            caller.span_id,
        )

    def test_list_carrier_gets_bytes_values_as_kafka_clients_need(self) -> None:
        headers: list[tuple[str, Any]] = [("key", b"v")]
        ctx = inject_headers(headers)
        assert headers == [("key", b"v"), ("traceparent", ctx.traceparent.encode())]

    def test_trace_headers_already_in_the_carrier_are_replaced(self) -> None:
        stale = f"00-{TRACE}-{PARENT}-01"
        pairs: list[tuple[str, Any]] = [("Traceparent", stale.encode()), ("a", b"1")]
        ctx = inject_headers(pairs)
        assert pairs == [("a", b"1"), ("traceparent", ctx.traceparent.encode())]
        mapping: dict[str, Any] = {"TraceParent": stale}
        ctx = inject_headers(mapping)
        assert mapping == {"traceparent": ctx.traceparent}

    def test_outside_any_span_a_new_trace_starts(self) -> None:
        headers: dict[str, Any] = {}
        ctx = inject_headers(headers)
        assert ctx.parent_span_id is None
        assert headers["traceparent"] == ctx.traceparent

    def test_each_message_is_a_producer_span_of_its_own(self) -> None:
        with span("batch"):
            ids = {inject_headers({}).span_id for _ in range(20)}
        assert len(ids) == 20

    def test_propagator_formats_and_request_id_and_tracestate(self) -> None:
        caller = Propagator().incoming(
            {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "a=1", "x-request-id": "r-1"}
        )
        token = CURRENT.set(caller)
        try:
            headers: dict[str, Any] = {}
            ctx = inject_headers(headers, propagator=Propagator(inject=("b3", "request-id")))
        finally:
            CURRENT.reset(token)
        assert headers == {"b3": f"{TRACE}-{ctx.span_id}-1-{caller.span_id}", "x-request-id": "r-1"}


class TestProducerSpan:
    def test_the_record_covers_the_send_and_names_its_failure(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        headers: list[tuple[str, Any]] = []
        with pytest.raises(ConnectionError), producer_span("send orders", headers) as ctx:
            assert headers == [("traceparent", ctx.traceparent.encode())]
            raise ConnectionError("broker down")
        (record,) = kinds(span_records, "producer")
        assert record.__dict__["error.type"] == "ConnectionError"
        assert record.span_id == ctx.span_id  # type: ignore[attr-defined]

    def test_async_with(self, span_records: list[logging.LogRecord]) -> None:
        async def send() -> TraceContext:
            async with producer_span("send", {}) as ctx:
                await asyncio.sleep(0.01)
                return ctx

        ctx = asyncio.run(send())
        (record,) = kinds(span_records, "producer")
        assert record.span_id == ctx.span_id  # type: ignore[attr-defined]
        assert record.__dict__["duration_ms"] >= 5


class TestConsumerSpan:
    @pytest.mark.parametrize(
        "carrier",
        [
            {"traceparent": f"00-{TRACE}-{PARENT}-01"},
            {"Traceparent": f"00-{TRACE}-{PARENT}-01".encode()},
            [("traceparent", f"00-{TRACE}-{PARENT}-01".encode())],
            [("TRACEPARENT", f"00-{TRACE}-{PARENT}-01"), ("empty", None), ("n", 3)],
        ],
        ids=["dict-str", "dict-bytes", "list-bytes", "list-mixed"],
    )
    def test_continues_the_producer_span_from_any_carrier(
        self, carrier: Any, span_records: list[logging.LogRecord]
    ) -> None:
        with consumer_span("process orders", carrier, **{"messaging.system": "kafka"}) as ctx:
            assert current() == ctx
            assert (ctx.trace_id, ctx.parent_span_id) == (TRACE, PARENT)
        assert current() is None
        (record,) = kinds(span_records, "consumer")
        assert record.__dict__["span.name"] == "process orders"
        assert record.__dict__["messaging.operation.type"] == "process"
        assert record.__dict__["messaging.system"] == "kafka"
        assert (record.trace_id, record.span_id, record.parent_span_id) == (  # type: ignore[attr-defined]
            TRACE,
            ctx.span_id,
            PARENT,
        )

    def test_a_round_trip_keeps_request_id_and_tracestate(self) -> None:
        caller = Propagator().incoming(
            {"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "a=1", "x-request-id": "r-1"}
        )
        token = CURRENT.set(caller)
        try:
            headers: list[tuple[str, Any]] = []
            sent = inject_headers(headers)
        finally:
            CURRENT.reset(token)
        with consumer_span("process", headers) as ctx:
            assert (ctx.trace_id, ctx.parent_span_id) == (TRACE, sent.span_id)
            assert ctx.tracestate == "a=1"
            assert ctx.request_id == "r-1"

    def test_failure_is_on_the_record_and_the_context_restored(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        with span("poll-loop") as loop_ctx:
            with pytest.raises(ValueError), consumer_span("process", {}):
                raise ValueError("bad message")
            assert current() == loop_ctx
        (record,) = kinds(span_records, "consumer")
        assert record.__dict__["error.type"] == "ValueError"

    def test_message_without_headers_is_a_child_of_the_running_span(self) -> None:
        with span("poll-loop") as loop_ctx, consumer_span("process", {"other": "x"}) as ctx:
            assert (ctx.trace_id, ctx.parent_span_id) == (loop_ctx.trace_id, loop_ctx.span_id)

    @pytest.mark.parametrize("carrier", [None, {}, [("traceparent", b"garbage")]])
    def test_message_without_valid_headers_outside_any_span_starts_a_trace(
        self, carrier: Any
    ) -> None:
        with consumer_span("process", carrier) as ctx:
            assert ctx.parent_span_id is None

    def test_duplicated_traceparent_in_a_list_is_not_continued(self) -> None:
        pairs = [
            ("traceparent", f"00-{TRACE}-{PARENT}-01".encode()),
            ("traceparent", f"00-{TRACE}-{'1' * 16}-01".encode()),
        ]
        assert extract_context(pairs).trace_id != TRACE

    def test_untrusting_propagator_links_instead_of_continuing(self) -> None:
        ctx = extract_context(
            {"traceparent": f"00-{TRACE}-{PARENT}-01"}, propagator=Propagator(trust_incoming=False)
        )
        assert ctx.trace_id != TRACE
        assert ctx.link == f"00-{TRACE}-{PARENT}-01"

    def test_cannot_be_entered_twice(self) -> None:
        cm = consumer_span("process", {})
        with cm, pytest.raises(RuntimeError, match="already open"), cm:
            pass

    def test_async_with_many_concurrent_messages(self) -> None:
        async def handle(i: int) -> tuple[str, TraceContext | None]:
            sent = inject_headers(headers := [])  # type: ignore[var-annotated]
            async with consumer_span("process", headers):
                await asyncio.sleep(0.001 * (i % 5))
                seen = current()
            return sent.span_id, seen

        async def main() -> list[tuple[str, TraceContext | None]]:
            return await asyncio.gather(*(handle(i) for i in range(100)))

        for sent_span, seen in asyncio.run(main()):
            assert seen is not None
            assert seen.parent_span_id == sent_span


class TestConsumerDecorator:
    def test_sync_handler_gets_a_span_per_call(self, span_records: list[logging.LogRecord]) -> None:
        @consumer_span("process orders", headers_from=lambda message: message["headers"])
        def handle(message: dict[str, Any]) -> TraceContext | None:
            return current()

        messages = [{"headers": []} for _ in range(3)]
        sent = [inject_headers(m["headers"]) for m in messages]
        seen = [handle(m) for m in messages]
        assert [s.parent_span_id for s in seen if s] == [s.span_id for s in sent]
        assert len(kinds(span_records, "consumer")) == 3
        assert handle.__name__ == "handle"

    def test_async_handler(self, span_records: list[logging.LogRecord]) -> None:
        @consumer_span("process", headers_from=lambda headers, body: headers)
        async def handle(headers: dict[str, Any], body: bytes) -> TraceContext | None:
            await asyncio.sleep(0)
            return current()

        headers: dict[str, Any] = {}
        sent = inject_headers(headers)
        seen = asyncio.run(handle(headers, b"{}"))
        assert seen is not None
        assert seen.parent_span_id == sent.span_id
        assert len(kinds(span_records, "consumer")) == 1

    def test_decorator_needs_headers_from(self) -> None:
        with pytest.raises(TypeError, match="headers_from"):
            consumer_span("process")(lambda: None)


class TestThroughAQueueBetweenThreads:
    def test_many_messages_each_continue_their_own_trace(
        self, span_records: list[logging.LogRecord]
    ) -> None:
        """Producer threads put (headers, body) on a real queue; a consumer thread handles them."""
        box: queue.Queue[tuple[list[tuple[str, Any]], int] | None] = queue.Queue()
        produced: dict[int, TraceContext] = {}
        consumed: dict[int, TraceContext] = {}

        def produce(i: int) -> None:
            with span("request", n=i):
                headers: list[tuple[str, Any]] = []
                produced[i] = inject_headers(headers, "send jobs")
                box.put((headers, i))

        def consume() -> None:
            while (item := box.get()) is not None:
                headers, i = item
                with consumer_span("process jobs", headers) as ctx:
                    consumed[i] = ctx

        consumer = threading.Thread(target=consume)
        consumer.start()
        producers = [threading.Thread(target=produce, args=(i,)) for i in range(50)]
        for t in producers:
            t.start()
        for t in producers:
            t.join(10)
        box.put(None)
        consumer.join(10)
        assert sorted(consumed) == list(range(50))
        for i, sent in produced.items():
            assert consumed[i].trace_id == sent.trace_id
            assert consumed[i].parent_span_id == sent.span_id
        assert len(kinds(span_records, "producer")) == len(kinds(span_records, "consumer")) == 50


class TestRequestIdHeader:
    def test_a_request_id_already_in_the_carrier_is_kept(self) -> None:
        caller = Propagator().incoming(
            {"traceparent": f"00-{TRACE}-{PARENT}-01", "x-request-id": "from-request"}
        )
        token = CURRENT.set(caller)
        try:
            mapping: dict[str, Any] = {"X-Request-ID": "set-by-hand"}
            inject_headers(mapping)
            pairs: list[tuple[str, Any]] = [("x-request-id", b"set-by-hand")]
            inject_headers(pairs)
            fresh: dict[str, Any] = {}
            inject_headers(fresh)
        finally:
            CURRENT.reset(token)
        assert mapping["X-Request-ID"] == "set-by-hand"
        assert "x-request-id" not in mapping
        assert [v for k, v in pairs if k == "x-request-id"] == [b"set-by-hand"]
        assert fresh["x-request-id"] == "from-request"
