"""A queue hop and a clock that is off: a real Celery worker, a real Redis broker.

A producer queues 30 tasks, each under a span of its own, through logtrace's
Celery integration; a worker (prefork) runs them with its whole clock shifted
(``time.time`` moved, as on a host whose clock is off). Nothing but the queue
relates the two services: a task starts after it was sent, any time after.

- Worker 30 ms behind: its lines would come before the tasks were sent. The
  queue says the worker is at least (30 ms less the quickest delay) behind,
  and no more: that much is corrected, never more than the truth, and every
  task comes after its publish.
- Worker 30 ms ahead: the queue allows it (a task may wait 30 ms); nothing
  bounds the worker on that side, so it stays as written, named uncorrected.
"""

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from _broker import (
    environment,
    run_producer,
    run_redis,
    run_worker,
    wait_for_consumers,
    wait_until_ready,
)

from logtrace.stitch import Options, stitch

SHIFT = textwrap.dedent(
    """
    import os
    import time

    _shift = float(os.environ.get("CLOCK_SHIFT_MS", "0")) / 1e3
    if _shift:
        _time, _time_ns, _shift_ns = time.time, time.time_ns, round(_shift * 1e9)
        time.time = lambda: _time() + _shift
        time.time_ns = lambda: _time_ns() + _shift_ns
    """
)

TASKS = textwrap.dedent(
    """
    import shiftclock  # noqa: F401 (first: this process's clock, shifted if asked)
    import logging
    import os
    import random
    import time

    from celery import Celery

    import logtrace
    from logtrace.celery import instrument

    app = Celery("qtasks", broker=os.environ["LT_BROKER"], backend=os.environ["LT_BROKER"])
    app.conf.update(broker_connection_retry_on_startup=True, worker_prefetch_multiplier=1)
    instrument(app)
    logtrace.configure_logging(os.environ["LT_SERVICE"], filename=os.environ["LT_LOG"])
    log = logging.getLogger("qtasks")


    @app.task
    def work(n):
        log.info("task start %s", n)
        time.sleep(random.uniform(0.001, 0.003))
        log.info("task end %s", n)
        return n
    """
)

PRODUCER = textwrap.dedent(
    """
    import logging
    import random
    import time

    from logtrace import span
    from qtasks import work

    log = logging.getLogger("api")
    for n in range(30):
        with span("order"):
            log.info("enqueueing %s", n)
            result = work.delay(n)
            log.info("queued %s", n)
        result.get(timeout=60)
        time.sleep(random.uniform(0.01, 0.03))
    """
)

TASKS_RUN = 30


@pytest.fixture(scope="module", params=[-30.0, 30.0], ids=["worker-behind", "worker-ahead"])
def logs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    shift: float = request.param
    directory = tmp_path_factory.mktemp("celery-clock")
    (directory / "shiftclock.py").write_text(SHIFT)
    (directory / "qtasks.py").write_text(TASKS)
    (directory / "producer.py").write_text(PRODUCER)
    logs = directory / "logs"
    logs.mkdir()
    worker_log = logs / "worker.log"
    with run_redis(directory) as broker:
        worker_env = environment(
            directory,
            LT_BROKER=broker,
            LT_SERVICE="worker",
            LT_LOG=str(worker_log),
            CLOCK_SHIFT_MS=str(shift),
        )
        with run_worker("qtasks", directory, worker_env, ["--pool=prefork", "--concurrency=1"]):
            wait_until_ready(worker_log, directory)
            run_producer(directory, broker, logs / "api.log")
            wait_for_consumers(worker_log, TASKS_RUN)
    logs.joinpath("shift").write_text(str(shift))
    yield logs


def stitched(logs: Path) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    out = io.BytesIO()
    summary = stitch(
        [str(logs / "api.log"), str(logs / "worker.log")], out, Options(format="jsonl")
    )
    traces: dict[str, list[dict[str, Any]]] = {}
    for line in out.getvalue().splitlines():
        row = json.loads(line)
        if row["trace_id"]:
            traces.setdefault(row["trace_id"], []).append(row)
    return summary, traces


def quickest_delay_ms(traces: dict[str, list[dict[str, Any]]], shift: float) -> float:
    """The least time from a publish to its task's start, on true clocks."""
    delays = []
    for rows in traces.values():
        for consumer in (r for r in rows if r["record"].get("span.kind") == "consumer"):
            (producer,) = (r for r in rows if r["span_id"] == consumer["parent_span_id"])
            sent = producer["record"]["span.start"]
            started = consumer["record"]["span.start"]
            delays.append(
                (_epoch(started) - _epoch(sent)) * 1e3 - shift  # the worker's clock, put right
            )
    return min(delays)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class TestAQueueBoundsTheConsumersClockOnOneSide:
    def test_every_task_comes_after_the_publish_that_queued_it(self, logs: Path) -> None:
        _, traces = stitched(logs)
        tasks = [t for t in traces.values() if any(r["service"] == "worker" for r in t)]
        assert len(tasks) == TASKS_RUN
        for rows in tasks:
            messages = [r["record"].get("message", "") for r in rows]
            enqueued = next(i for i, m in enumerate(messages) if m.startswith("enqueueing"))
            published = next(
                i for i, r in enumerate(rows) if r["record"].get("span.kind") == "producer"
            )
            first_worker = min(i for i, r in enumerate(rows) if r["service"] == "worker")
            assert enqueued < first_worker, messages
            # Shown on the api's clock, no worker line runs before the publish
            # started (it may before the publish returned: its record's place).
            sent = _epoch(rows[published]["record"]["span.start"])
            assert all(_epoch(r["timestamp"]) >= sent for r in rows if r["service"] == "worker")

    def test_the_correction_is_what_the_queue_demands_and_no_more(self, logs: Path) -> None:
        shift = float(logs.joinpath("shift").read_text())
        summary, traces = stitched(logs)
        offset = summary.offsets_ms["worker"]
        low, high = summary.offset_bounds_ms["worker"]
        assert summary.offsets_ms["api"] == 0.0
        if shift < 0:
            # At least (shift + quickest delay) behind, as the queue shows; the
            # true shift lies inside the interval shown, and beyond the offset.
            quickest = quickest_delay_ms(traces, shift)
            assert offset == pytest.approx(shift + quickest, abs=0.01)
            assert offset >= shift - 0.01
            assert low == -float("inf") and low <= shift <= high
            assert "worker" not in summary.uncorrected
        else:
            assert offset == 0.0
            assert "worker" in summary.uncorrected
            assert low == -float("inf") and shift <= high
