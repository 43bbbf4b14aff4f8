"""Celery: a real worker (prefork, one child) and a real Redis broker, both started here.

One producer process queues tasks in several shapes (a task, a retried task, a
chain, a chord, a failing task, a task queued outside any span), each under a
span of its own; the worker runs them. The tests read the two processes' log
files, as an operator would, and stitch them with ``python -m logtrace stitch``.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _broker import (
    environment,
    read_json_lines,
    run_producer,
    run_redis,
    run_worker,
    wait_for_consumers,
    wait_until_ready,
)

TASKS = textwrap.dedent(
    """
    import logging
    import os

    from celery import Celery
    from celery.utils.log import get_task_logger

    import logtrace
    from logtrace.celery import instrument

    app = Celery("lttasks", broker=os.environ["LT_BROKER"], backend=os.environ["LT_BROKER"])
    app.conf.update(
        broker_connection_retry_on_startup=True,
        worker_prefetch_multiplier=1,
        task_acks_late=False,
    )
    instrument(app)
    # As a user would: in the task module, for the producer and the worker alike.
    logtrace.configure_logging(os.environ["LT_SERVICE"], filename=os.environ["LT_LOG"])

    log = logging.getLogger("lttasks")
    task_log = get_task_logger(__name__)


    @app.task
    def add(x, y):
        log.info("adding %s and %s", x, y)
        task_log.info("task logger: adding")
        return x + y


    @app.task(bind=True, max_retries=3)
    def flaky(self):
        log.info("flaky attempt %s", self.request.retries)
        if self.request.retries < 2:
            raise self.retry(exc=ConnectionError("not yet"), countdown=0)
        return "ok"


    @app.task
    def total(values):
        log.info("summing %s values", len(values))
        return sum(values)


    @app.task
    def boom():
        log.info("about to fail")
        raise ValueError("boom")


    @app.task
    def span_lines():
        # Whether span records here are written straight to logtrace's handler.
        from logtrace._records import line_handler, settings

        return line_handler(settings.level, settings.names) is not None
    """
)

PRODUCER = textwrap.dedent(
    """
    import json

    from celery import chain, chord

    from logtrace import current, span
    from lttasks import add, boom, flaky, span_lines, total

    out = {}
    with span("checkout"):
        out["single"] = [current().trace_id, current().span_id, add.delay(2, 3).get(timeout=60)]
    with span("sync"):
        out["retry"] = [current().trace_id, current().span_id, flaky.delay().get(timeout=60)]
    with span("pipeline"):
        result = chain(add.s(1, 2), add.s(3), add.s(4)).apply_async().get(timeout=60)
        out["chain"] = [current().trace_id, current().span_id, result]
    with span("fanout"):
        result = chord([add.s(i, i) for i in range(3)], total.s()).apply_async().get(timeout=60)
        out["chord"] = [current().trace_id, current().span_id, result]
    with span("doomed"):
        failed = boom.delay()
        failed.get(timeout=60, propagate=False)
        out["failure"] = [current().trace_id, current().span_id, failed.state]
    untraced = add.delay(10, 10)
    out["untraced"] = [None, untraced.id, untraced.get(timeout=60)]
    out["span_lines"] = [None, None, span_lines.delay().get(timeout=60), span_lines()]
    print(json.dumps(out))
    """
)


@dataclass
class Run:
    directory: Path
    scenarios: dict[str, list[Any]]
    producer_log: Path
    worker_log: Path

    def producer(self) -> list[dict[str, Any]]:
        return read_json_lines(self.producer_log)

    def worker(self) -> list[dict[str, Any]]:
        return read_json_lines(self.worker_log)

    def trace(self, scenario: str) -> str:
        trace_id: str = self.scenarios[scenario][0]
        return trace_id

    def spans(self, records: list[dict[str, Any]], kind: str, trace: str) -> list[dict[str, Any]]:
        return [r for r in records if r.get("span.kind") == kind and r.get("trace_id") == trace]


# single, retry, chain, chord, failure, untraced, span_lines
EXPECTED_CONSUMER_RECORDS = 1 + 3 + 3 + 4 + 1 + 1 + 1


@pytest.fixture(scope="module", params=["prefork", "threads"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Everything queued and run once per worker pool: prefork (Celery's default,
    the task in a forked child) and threads (the task in a pool thread)."""
    pool: str = request.param
    directory = tmp_path_factory.mktemp(f"celery-{pool}")
    (directory / "lttasks.py").write_text(TASKS)
    (directory / "producer.py").write_text(PRODUCER)
    producer_log, worker_log = directory / "api.log", directory / "worker.log"
    with run_redis(directory) as broker:
        worker_env = environment(
            directory, LT_BROKER=broker, LT_SERVICE="worker", LT_LOG=str(worker_log)
        )
        with run_worker("lttasks", directory, worker_env, [f"--pool={pool}", "--concurrency=1"]):
            wait_until_ready(worker_log, directory)
            done = run_producer(directory, broker, producer_log)
            wait_for_consumers(worker_log, EXPECTED_CONSUMER_RECORDS)
        yield Run(directory, json.loads(done.stdout), producer_log, worker_log)


class TestOneTask:
    def test_the_task_ran(self, run: Run) -> None:
        assert run.scenarios["single"][2] == 5

    def test_publishing_is_a_producer_span_under_the_caller(self, run: Run) -> None:
        trace = run.trace("single")
        (producer,) = run.spans(run.producer(), "producer", trace)
        assert producer["parent_span_id"] == run.scenarios["single"][1]
        assert producer["service"] == "api"
        assert producer["span.name"] == "lttasks.add"
        assert producer["messaging.system"] == "celery"
        assert producer["messaging.operation.type"] == "send"
        assert producer["messaging.destination.name"] == "celery"
        assert producer["celery.task_name"] == "lttasks.add"

    def test_the_run_is_a_consumer_span_whose_parent_is_the_producer_span(self, run: Run) -> None:
        trace = run.trace("single")
        (producer,) = run.spans(run.producer(), "producer", trace)
        (consumer,) = run.spans(run.worker(), "consumer", trace)
        assert consumer["parent_span_id"] == producer["span_id"]
        assert consumer["service"] == "worker"
        assert consumer["span.name"] == "lttasks.add"
        assert consumer["messaging.message.id"] == producer["messaging.message.id"]
        assert consumer["celery.task_name"] == "lttasks.add"
        assert consumer["celery.retries"] == 0
        assert consumer["celery.state"] == "SUCCESS"
        assert consumer["duration_ms"] >= 0
        assert "error.type" not in consumer

    def test_worker_log_lines_carry_the_consumer_span(self, run: Run) -> None:
        trace = run.trace("single")
        (consumer,) = run.spans(run.worker(), "consumer", trace)
        lines = [r for r in run.worker() if r.get("trace_id") == trace and "span.kind" not in r]
        by_message = {r["message"]: r for r in lines}
        for message in ("adding 2 and 3", "task logger: adding"):
            assert by_message[message]["span_id"] == consumer["span_id"]
            assert by_message[message]["parent_span_id"] == consumer["parent_span_id"]
        # Celery's own "succeeded" line is written by the worker inside the run.
        (succeeded,) = [r for r in lines if "succeeded" in r["message"]]
        assert succeeded["span_id"] == consumer["span_id"]
        assert succeeded["logger"] == "celery.app.trace"

    def test_celerys_root_logger_hijack_did_not_undo_the_logging_setup(self, run: Run) -> None:
        """Every line of the worker's log file is logtrace's JSON, Celery's start-up included."""
        text = run.worker_log.read_text()
        assert "ready." in text
        for line in text.splitlines():
            assert json.loads(line)["service"] == "worker"
        # and nothing that was meant for the file went to the console in Celery's format
        assert "adding 2 and 3" not in (run.directory / "worker.out").read_text()

    def test_span_records_take_the_direct_path_in_the_worker_and_the_producer(
        self, run: Run
    ) -> None:
        """After Celery's logging setup, logtrace's handler is still the only one span
        records reach, so they are written without a LogRecord on both sides."""
        assert run.scenarios["span_lines"][2:] == [True, True]


class TestRetries:
    def test_every_attempt_stays_in_the_trace_one_under_the_other(self, run: Run) -> None:
        trace = run.trace("retry")
        assert run.scenarios["retry"][2] == "ok"
        (first_publish,) = run.spans(run.producer(), "producer", trace)
        consumers = run.spans(run.worker(), "consumer", trace)
        republished = run.spans(run.worker(), "producer", trace)
        assert [c["celery.retries"] for c in consumers] == [0, 1, 2]
        assert [c["celery.state"] for c in consumers] == ["RETRY", "RETRY", "SUCCESS"]
        assert consumers[0]["celery.retry_reason"] == "ConnectionError"
        assert consumers[0]["parent_span_id"] == first_publish["span_id"]
        # attempt n publishes attempt n+1 from inside its own span
        assert len(republished) == 2
        for attempt, (publish, following) in enumerate(
            zip(republished, consumers[1:], strict=True)
        ):
            assert publish["parent_span_id"] == consumers[attempt]["span_id"]
            assert publish["celery.retries"] == attempt + 1
            assert following["parent_span_id"] == publish["span_id"]
        assert len({c["messaging.message.id"] for c in consumers}) == 1


class TestChainAndChord:
    def test_a_chain_is_one_trace_each_step_published_by_the_step_before(self, run: Run) -> None:
        trace = run.trace("chain")
        assert run.scenarios["chain"][2] == 10
        (first_publish,) = run.spans(run.producer(), "producer", trace)
        consumers = run.spans(run.worker(), "consumer", trace)
        publishes = {p["span_id"]: p for p in run.spans(run.worker(), "producer", trace)}
        assert len(consumers) == 3
        assert consumers[0]["parent_span_id"] == first_publish["span_id"]
        for before, after in itertools.pairwise(consumers):
            publish = publishes[after["parent_span_id"]]
            assert publish["parent_span_id"] == before["span_id"]

    def test_a_chord_is_one_trace_the_callback_under_a_header_task(self, run: Run) -> None:
        trace = run.trace("chord")
        assert run.scenarios["chord"][2] == 0 + 2 + 4
        caller = run.scenarios["chord"][1]
        header_publishes = run.spans(run.producer(), "producer", trace)
        assert len(header_publishes) == 3
        assert {p["parent_span_id"] for p in header_publishes} == {caller}
        consumers = run.spans(run.worker(), "consumer", trace)
        names = sorted(c["span.name"] for c in consumers)
        assert names == ["lttasks.add"] * 3 + ["lttasks.total"]
        (callback,) = [c for c in consumers if c["span.name"] == "lttasks.total"]
        (callback_publish,) = run.spans(run.worker(), "producer", trace)
        assert callback["parent_span_id"] == callback_publish["span_id"]
        header_runs = {c["span_id"] for c in consumers if c["span.name"] == "lttasks.add"}
        assert callback_publish["parent_span_id"] in header_runs


class TestFailuresAndEdges:
    def test_a_failed_task_has_its_error_on_the_consumer_record(self, run: Run) -> None:
        trace = run.trace("failure")
        assert run.scenarios["failure"][2] == "FAILURE"
        (consumer,) = run.spans(run.worker(), "consumer", trace)
        assert consumer["celery.state"] == "FAILURE"
        assert consumer["error.type"] == "ValueError"
        assert consumer["exception.type"] == "ValueError"
        assert consumer["level"] == "INFO"

    def test_a_task_queued_outside_any_span_starts_a_trace_at_the_producer(self, run: Run) -> None:
        task_id = run.scenarios["untraced"][1]
        (producer,) = [r for r in run.producer() if r.get("messaging.message.id") == task_id]
        assert producer["parent_span_id"] is None
        (consumer,) = run.spans(run.worker(), "consumer", producer["trace_id"])
        assert consumer["parent_span_id"] == producer["span_id"]


def stitch_jsonl(run: Run, *extra: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "logtrace",
            "stitch",
            "--format",
            "jsonl",
            "-q",
            *extra,
            str(run.producer_log),
            str(run.worker_log),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(run.directory),
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


class TestStitch:
    def test_the_stitch_shows_the_task_after_its_queueing_under_the_producer_span(
        self, run: Run
    ) -> None:
        trace = run.trace("single")
        rows = stitch_jsonl(run, "--trace", trace)
        assert {r["trace_id"] for r in rows} == {trace}
        messages = [r["record"]["message"] for r in rows]
        producer_at = messages.index("producer lttasks.add")
        consumer_at = messages.index("consumer lttasks.add")
        adding_at = messages.index("adding 2 and 3")
        assert producer_at < adding_at < consumer_at
        producer, consumer, adding = rows[producer_at], rows[consumer_at], rows[adding_at]
        assert (producer["service"], consumer["service"]) == ("api", "worker")
        assert consumer["parent_span_id"] == producer["span_id"]
        assert adding["span_id"] == consumer["span_id"]
        assert adding["depth"] == consumer["depth"] == producer["depth"] + 1

    @pytest.mark.parametrize("scenario", ["single", "retry", "chain", "chord", "failure"])
    def test_in_every_trace_each_task_comes_after_the_publish_that_queued_it(
        self, run: Run, scenario: str
    ) -> None:
        """Queue delays vary; the stitcher must not read them as clock skew."""
        rows = stitch_jsonl(run, "--trace", run.trace(scenario))
        position = {r["span_id"]: i for i, r in reversed(list(enumerate(rows)))}
        producers = {
            r["span_id"]: i
            for i, r in enumerate(rows)
            if r["record"].get("span.kind") == "producer"
        }
        consumers = [r for r in rows if r["record"].get("span.kind") == "consumer"]
        assert consumers
        for consumer in consumers:
            queued_at = producers[consumer["parent_span_id"]]
            assert position[consumer["span_id"]] > queued_at  # its first line
            assert consumer["depth"] == rows[queued_at]["depth"] + 1
        assert {r["offset_ms"] for r in rows} == {0.0}


class TestInProcess:
    """Without a broker: an eager run, and switching the integration off."""

    @pytest.fixture
    def eager_app(self) -> Iterator[Any]:
        from celery import Celery

        from logtrace.celery import instrument, uninstrument

        app = Celery("eager", broker="memory://", backend="cache+memory://")
        app.conf.task_always_eager = True
        instrument(app)
        try:
            yield app
        finally:
            uninstrument()

    def test_an_eager_run_is_a_consumer_span_under_the_caller(
        self, eager_app: Any, span_records: list[Any]
    ) -> None:
        from logtrace import current, span

        seen: list[Any] = []

        @eager_app.task
        def work() -> None:
            seen.append(current())

        with span("request") as caller:
            work.delay()
        (consumer,) = [r for r in span_records if r.__dict__["span.kind"] == "consumer"]
        assert seen[0].trace_id == caller.trace_id
        assert seen[0].parent_span_id == caller.span_id
        assert consumer.span_id == seen[0].span_id
        assert consumer.__dict__["celery.state"] == "SUCCESS"
        assert current() is None

    def test_uninstrument_stops_the_spans(self, eager_app: Any, span_records: list[Any]) -> None:
        from logtrace import current
        from logtrace.celery import uninstrument

        seen: list[Any] = []

        @eager_app.task
        def work() -> None:
            seen.append(current())

        uninstrument()
        work.delay()
        assert seen == [None]
        assert not [r for r in span_records if r.__dict__["span.kind"] == "consumer"]
