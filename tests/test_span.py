"""``logtrace.span``: child spans as context managers and decorators."""

from __future__ import annotations

import asyncio
import logging

import pytest

import logtrace
from logtrace import span


class TestSyncContextManager:
    def test_starts_a_new_trace_when_there_is_none(self) -> None:
        with span("work") as ctx:
            assert logtrace.current() is ctx
            assert ctx.parent_span_id is None
        assert logtrace.current() is None

    def test_nested_spans_form_a_chain_and_restore_on_exit(self) -> None:
        with span("outer") as outer, span("inner") as inner:
            assert inner.trace_id == outer.trace_id
            assert inner.parent_span_id == outer.span_id
            assert logtrace.current() is inner
        assert logtrace.current() is None

    def test_restores_previous_context_when_the_block_raises(self) -> None:
        with span("outer") as outer:
            with pytest.raises(KeyError), span("failing"):
                raise KeyError("x")
            assert logtrace.current() is outer

    def test_one_span_object_cannot_be_entered_twice_at_once(self) -> None:
        s = span("once")
        with s, pytest.raises(RuntimeError, match="already open"):
            s.__enter__()


class TestAsync:
    def test_async_with_restores_context(self) -> None:
        async def main() -> None:
            async with span("a") as a:
                assert logtrace.current() is a
                async with span("b") as b:
                    assert b.parent_span_id == a.span_id
                assert logtrace.current() is a
            assert logtrace.current() is None

        asyncio.run(main())

    def test_decorated_coroutine_gets_a_span_per_call(self) -> None:
        @span("fetch")
        async def fetch() -> logtrace.TraceContext | None:
            await asyncio.sleep(0)
            return logtrace.current()

        async def main() -> None:
            with span("root") as root:
                results = await asyncio.gather(fetch(), fetch(), fetch())
            spans = [r for r in results if r is not None]
            assert len({r.span_id for r in spans}) == 3
            assert all(r.parent_span_id == root.span_id for r in spans)

        asyncio.run(main())


class TestDecorator:
    def test_decorated_function_runs_in_a_fresh_child_span_per_call(self) -> None:
        @span("compute", size=3)
        def compute(x: int) -> tuple[int, logtrace.TraceContext | None]:
            return x * 2, logtrace.current()

        with span("root") as root:
            (a, ctx_a), (b, ctx_b) = compute(1), compute(2)
        assert (a, b) == (2, 4)
        assert ctx_a is not None and ctx_b is not None
        assert ctx_a.span_id != ctx_b.span_id
        assert ctx_a.parent_span_id == ctx_b.parent_span_id == root.span_id
        assert compute.__name__ == "compute"


class TestSpanRecord:
    def test_writes_one_record_with_the_span_ids_when_it_ends(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="logtrace.span"), span("work", items=3) as ctx:
            assert not [r for r in caplog.records if r.name == "logtrace.span"]
        records = [r for r in caplog.records if r.name == "logtrace.span"]
        assert len(records) == 1
        text = repr(records[0].__dict__)
        assert ctx.span_id in text and ctx.trace_id in text
