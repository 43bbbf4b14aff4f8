"""The trace context, its IDs, and the ContextVar that holds it."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

import logtrace
from logtrace import TraceContext
from logtrace._context import CURRENT, child_or_root
from logtrace._ids import new_span_id, new_trace_id

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


class TestIds:
    def test_trace_ids_are_32_lowercase_hex_and_distinct(self) -> None:
        ids = {new_trace_id() for _ in range(2000)}
        assert len(ids) == 2000
        assert all(HEX32.fullmatch(i) for i in ids)
        assert "0" * 32 not in ids

    def test_span_ids_are_16_lowercase_hex_and_distinct(self) -> None:
        ids = {new_span_id() for _ in range(2000)}
        assert len(ids) == 2000
        assert all(HEX16.fullmatch(i) for i in ids)


class TestTraceContext:
    def test_is_immutable(self) -> None:
        ctx = TraceContext.new_root()
        with pytest.raises(AttributeError):
            ctx.trace_id = "0" * 32  # type: ignore[misc]

    def test_new_root_starts_a_sampled_trace_with_random_ids(self) -> None:
        ctx = TraceContext.new_root()
        assert ctx.parent_span_id is None
        assert ctx.sampled and ctx.random
        assert HEX32.fullmatch(ctx.trace_id) and HEX16.fullmatch(ctx.span_id)

    def test_child_keeps_trace_flags_state_and_request_id(self) -> None:
        parent = TraceContext("a" * 32, "b" * 16, None, False, True, "k=v", "req-1", "00-x")
        child = TraceContext.child_of(parent)
        assert child.trace_id == parent.trace_id
        assert child.parent_span_id == parent.span_id
        assert child.span_id != parent.span_id
        assert (child.sampled, child.random, child.tracestate, child.request_id) == (
            False,
            True,
            "k=v",
            "req-1",
        )
        assert child.link is None

    def test_new_root_keeps_the_request_id_sampling_and_link_given(self) -> None:
        link = f"00-{'a' * 32}-{'b' * 16}-01"
        ctx = TraceContext.new_root(sampled=False, request_id="req-1", link=link)
        assert (ctx.parent_span_id, ctx.sampled, ctx.random, ctx.tracestate) == (
            None,
            False,
            True,
            None,
        )
        assert (ctx.request_id, ctx.link) == ("req-1", link)
        assert ctx.trace_id != "a" * 32

    def test_from_incoming_is_a_new_span_under_the_callers(self) -> None:
        ctx = TraceContext.from_incoming("a" * 32, "b" * 16, True, False, "k=v", "req-1")
        assert ctx == ("a" * 32, ctx.span_id, "b" * 16, True, False, "k=v", "req-1", None)
        assert HEX16.fullmatch(ctx.span_id) and ctx.span_id != "b" * 16
        assert type(ctx) is TraceContext

    def test_child_or_root_is_a_child_of_the_current_context(self) -> None:
        assert child_or_root().parent_span_id is None
        parent = TraceContext("a" * 32, "b" * 16)
        token = CURRENT.set(parent)
        try:
            child = child_or_root()
        finally:
            CURRENT.reset(token)
        assert (child.trace_id, child.parent_span_id) == (parent.trace_id, parent.span_id)

    @pytest.mark.parametrize(
        ("sampled", "random", "flags"),
        [(False, False, "00"), (True, False, "01"), (False, True, "02"), (True, True, "03")],
    )
    def test_traceparent_encodes_sampled_and_random_flags(
        self, sampled: bool, random: bool, flags: str
    ) -> None:
        ctx = TraceContext("a" * 32, "b" * 16, None, sampled, random)
        assert ctx.traceparent == f"00-{'a' * 32}-{'b' * 16}-{flags}"


class TestCurrent:
    def test_is_none_outside_any_span(self) -> None:
        assert logtrace.current() is None

    def test_is_isolated_between_asyncio_tasks(self) -> None:
        async def worker(i: int) -> tuple[int, str]:
            ctx = TraceContext(f"{i:032x}", f"{i + 1:016x}")
            CURRENT.set(ctx)
            await asyncio.sleep(0)
            await asyncio.sleep(0.001 * (i % 3))
            seen = logtrace.current()
            assert seen is not None
            return i, seen.trace_id

        async def main() -> list[tuple[int, str]]:
            return await asyncio.gather(*(worker(i) for i in range(1, 501)))

        for i, trace_id in asyncio.run(main()):
            assert trace_id == f"{i:032x}"
        assert logtrace.current() is None

    def test_is_isolated_between_threads(self) -> None:
        seen: dict[int, str | None] = {}
        barrier = threading.Barrier(16)

        def worker(i: int) -> None:
            CURRENT.set(TraceContext(f"{i:032x}", f"{i:016x}"))
            barrier.wait()
            ctx = logtrace.current()
            seen[i] = ctx.trace_id if ctx else None

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(1, 17)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert seen == {i: f"{i:032x}" for i in range(1, 17)}
        assert logtrace.current() is None
