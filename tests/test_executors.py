"""Thread pools: work handed to threads keeps the submitter's trace (real pools, many traces)."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar

import pytest

from logtrace import ContextExecutor, TraceContext, TraceContextFilter, current, in_context, span

TRACES = 200


def seen_after_a_nap(_: int = 0) -> TraceContext | None:
    """The context a task sees, read after a random pause so that tasks interleave."""
    time.sleep(random.random() / 500)
    return current()


class TestThePlainPoolLosesTheTrace:
    def test_thread_pool_executor_runs_tasks_outside_the_trace(self) -> None:
        """Why the helpers exist: a plain pool's worker threads see no trace."""
        with ThreadPoolExecutor(4) as pool, span("request"):
            assert pool.submit(current).result() is None


class TestContextExecutor:
    def test_a_task_sees_the_span_it_was_submitted_from(self) -> None:
        with ContextExecutor(2) as pool, span("request") as ctx:
            assert pool.submit(current).result() == ctx

    def test_many_concurrent_traces_each_task_sees_its_own(self) -> None:
        """Submitters in many threads at once, tasks on a small shared pool."""
        with ContextExecutor(8) as pool:

            def submit_from_a_request(i: int) -> tuple[TraceContext, TraceContext | None]:
                with span("request", n=i) as ctx:
                    return ctx, pool.submit(seen_after_a_nap).result()

            with ThreadPoolExecutor(16) as requests:
                pairs = list(requests.map(submit_from_a_request, range(TRACES)))
        assert len({ctx.trace_id for ctx, _ in pairs}) == TRACES
        for ctx, seen in pairs:
            assert seen == ctx

    def test_map_carries_the_context_to_every_item(self) -> None:
        with ContextExecutor(4) as pool, span("batch") as ctx:
            assert list(pool.map(seen_after_a_nap, range(50))) == [ctx] * 50

    def test_the_context_is_the_one_at_submit_time(self) -> None:
        gate = threading.Event()

        def wait_then_read() -> TraceContext | None:
            gate.wait(5)
            return current()

        with ContextExecutor(1) as pool:
            with span("first") as first:
                future = pool.submit(wait_then_read)
            with span("second"):
                gate.set()
                assert future.result() == first

    def test_changes_inside_a_task_stay_in_the_task(self) -> None:
        var: ContextVar[str] = ContextVar("var", default="outside")

        def change() -> str:
            var.set("inside")
            with span("in-thread"):
                pass
            return var.get()

        with ContextExecutor(2) as pool, span("request") as ctx:
            assert [f.result() for f in [pool.submit(change) for _ in range(10)]] == ["inside"] * 10
            assert var.get() == "outside"
            assert current() == ctx

    def test_log_lines_in_the_thread_carry_the_ids(self) -> None:
        records: list[logging.LogRecord] = []
        handler = logging.Handler()
        handler.emit = records.append  # type: ignore[method-assign]
        handler.addFilter(TraceContextFilter())
        logger = logging.getLogger("test.executors")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            with ContextExecutor(2) as pool, span("request") as ctx:
                pool.submit(logger.info, "resizing").result()
        finally:
            logger.removeHandler(handler)
        assert [(r.trace_id, r.span_id) for r in records] == [(ctx.trace_id, ctx.span_id)]  # type: ignore[attr-defined]

    def test_is_a_thread_pool_executor(self) -> None:
        with ContextExecutor(max_workers=1, thread_name_prefix="lt") as pool:
            assert isinstance(pool, ThreadPoolExecutor)
            assert pool.submit(lambda: threading.current_thread().name).result().startswith("lt")


class TestInContext:
    def test_run_in_executor_with_many_concurrent_requests(self) -> None:
        """asyncio requests, each in its own trace, handing work to the default executor."""

        async def request(i: int) -> tuple[TraceContext, TraceContext | None]:
            async with span("request", n=i) as ctx:
                loop = asyncio.get_running_loop()
                return ctx, await loop.run_in_executor(None, in_context(seen_after_a_nap), i)

        async def main() -> list[tuple[TraceContext, TraceContext | None]]:
            return await asyncio.gather(*(request(i) for i in range(TRACES)))

        pairs = asyncio.run(main())
        assert len({ctx.trace_id for ctx, _ in pairs}) == TRACES
        for ctx, seen in pairs:
            assert seen == ctx

    def test_run_in_executor_without_it_loses_the_trace(self) -> None:
        async def request() -> TraceContext | None:
            async with span("request"):
                return await asyncio.get_running_loop().run_in_executor(None, current)

        assert asyncio.run(request()) is None

    def test_one_bound_function_called_from_many_threads_at_once(self) -> None:
        """Each call runs in its own copy: no "context already entered" error."""
        with span("request") as ctx:
            bound = in_context(seen_after_a_nap)
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(bound, range(100))) == [ctx] * 100

    def test_a_thread_started_by_hand(self) -> None:
        seen: list[TraceContext | None] = []
        with span("request") as ctx:
            thread = threading.Thread(target=in_context(lambda: seen.append(current())))
        thread.start()
        thread.join(5)
        assert seen == [ctx]

    def test_keeps_the_function_s_name_and_arguments(self) -> None:
        def resize(width: int, *, height: int) -> tuple[int, int]:
            return width, height

        bound = in_context(resize)
        assert bound.__name__ == "resize"
        assert bound(3, height=4) == (3, 4)

    def test_exceptions_reach_the_caller(self) -> None:
        def fail() -> None:
            raise KeyError("x")

        with ContextExecutor(1) as pool, pytest.raises(KeyError):
            pool.submit(in_context(fail)).result()
