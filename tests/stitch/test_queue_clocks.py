"""Messages between services: a consumer runs after its producer span, not inside it.

Queue delays vary from a millisecond to seconds; the stitcher must not read them
as clock skew. Real files, the real command line.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from logtrace.stitch._clocks import Edge, estimate_clocks

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record(
    service: str,
    at: datetime,
    message: str,
    trace: str,
    span: str,
    parent: str | None,
    **fields: Any,
) -> str:
    return json.dumps(
        {
            "timestamp": iso(at),
            "level": "INFO",
            "service": service,
            "logger": "t",
            "message": message,
            "trace_id": trace,
            "span_id": span,
            "parent_span_id": parent,
            **fields,
        }
    )


def span_record(
    service: str, kind: str, start: datetime, ms: float, trace: str, span: str, parent: str | None
) -> str:
    end = start + timedelta(milliseconds=ms)
    return record(
        service,
        end,
        f"{kind} x",
        trace,
        span,
        parent,
        **{"span.kind": kind, "span.name": "x", "span.start": iso(start), "duration_ms": ms},
    )


def write_logs(tmp: Path, worker_skew_ms: float, http: bool) -> tuple[Path, Path]:
    """Traces in which api queues a message for worker; with ``http``, api also
    calls worker over HTTP (exact client spans) in other traces."""
    api: list[str] = []
    worker: list[str] = []
    skew = timedelta(milliseconds=worker_skew_ms)
    for i in range(40):
        trace = f"{i + 1:032x}"
        root, prod, cons = (
            f"{i + 1:04x}000000000001",
            f"{i + 1:04x}000000000002",
            f"{i + 1:04x}000000000003",
        )
        t = T0 + timedelta(seconds=i)
        delay = timedelta(milliseconds=1 + (i * 37) % 400)  # 1 ms .. 400 ms in the queue
        api.append(span_record("api", "producer", t, 0.05, trace, prod, root))
        api.append(
            span_record("api", "internal", t - timedelta(milliseconds=1), 3, trace, root, None)
        )
        start = t + delay + skew
        worker.append(
            record("worker", start + timedelta(microseconds=50), "handling", trace, cons, prod)
        )
        worker.append(span_record("worker", "consumer", start, 2, trace, cons, prod))
    if http:
        for i in range(40):
            trace = f"{1000 + i:032x}"
            client, server = f"{1000 + i:04x}00000000000a", f"{1000 + i:04x}00000000000b"
            t = T0 + timedelta(seconds=i, milliseconds=500)
            api.append(span_record("api", "client", t, 4, trace, client, None))
            worker.append(
                span_record(
                    "worker",
                    "server",
                    t + timedelta(milliseconds=1) + skew,
                    2,
                    trace,
                    server,
                    client,
                )
            )
    a, w = tmp / "api.log", tmp / "worker.log"
    a.write_text("\n".join(sorted(api, key=lambda line: json.loads(line)["timestamp"])) + "\n")
    w.write_text("\n".join(sorted(worker, key=lambda line: json.loads(line)["timestamp"])) + "\n")
    return a, w


def stitch(*paths: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [sys.executable, "-m", "logtrace", "stitch", "--format", "jsonl", "-q", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        timeout=120,
    )
    return [json.loads(line) for line in out.stdout.splitlines()]


class TestQueueDelaysAreNotSkew:
    def test_services_linked_only_by_a_queue_keep_their_clocks(self, tmp_path: Path) -> None:
        rows = stitch(*write_logs(tmp_path, 0, http=False))
        assert {r["offset_ms"] for r in rows} == {0.0}
        for trace in {r["trace_id"] for r in rows}:
            kinds = [r["record"].get("span.kind") or "line" for r in rows if r["trace_id"] == trace]
            assert kinds.index("producer") < kinds.index("line")

    def test_http_calls_still_set_the_offset_whatever_the_queue_delays(
        self, tmp_path: Path
    ) -> None:
        rows = stitch(*write_logs(tmp_path, 250, http=True))
        offsets = {r["service"]: r["offset_ms"] for r in rows}
        assert offsets["api"] == 0.0
        assert abs(offsets["worker"] - 250) < 2


def _calls(caller: str, callee: str, skew: float, n: int = 20) -> list[Edge]:
    """Exact calls (client spans) from ``caller`` to ``callee``, whose clock is
    ``skew`` seconds ahead: 1 ms each way, 2 ms of work."""
    out = []
    for i in range(n):
        t = 1000.0 + i
        out.append(Edge(caller, callee, t, t + 0.004, t + 0.001 + skew, t + 0.003 + skew, True))
    return out


class TestOneSidedBounds:
    """:mod:`logtrace.stitch._clock_queues` through the clock estimate."""

    def test_a_consumer_only_a_queue_relates_moves_just_to_its_bound(self) -> None:
        clocks = estimate_clocks([], {"api", "worker"}, queues={("api", "worker"): -0.029})
        assert clocks["api"].offset_s == 0.0
        assert clocks["worker"].offset_s == pytest.approx(-0.029)
        assert (clocks["worker"].low_s, clocks["worker"].high_s) == (
            -math.inf,
            pytest.approx(-0.029),
        )

    def test_a_bound_zero_meets_moves_nothing(self) -> None:
        clocks = estimate_clocks([], {"api", "worker"}, queues={("api", "worker"): 0.002})
        assert clocks["worker"].offset_s == 0.0
        assert not clocks["worker"].bounded

    def test_the_services_the_consumers_calls_tie_to_it_move_with_it(self) -> None:
        # worker calls db on one clock; api reaches worker only by a queue.
        edges = _calls("api", "cache", 0.0) + _calls("worker", "db", 0.0)
        clocks = estimate_clocks(
            edges, {"api", "cache", "worker", "db"}, queues={("api", "worker"): -0.02}
        )
        assert clocks["cache"].offset_s == pytest.approx(0.0, abs=1e-9)
        assert clocks["worker"].offset_s == pytest.approx(-0.02)
        assert clocks["db"].offset_s - clocks["worker"].offset_s == pytest.approx(0.0, abs=1e-9)

    def test_a_producer_before_the_entry_service_is_ahead_as_far_as_its_bound(self) -> None:
        # billing queues messages for api, the entry service: billing is ahead.
        edges = _calls("api", "worker", 0.0)
        clocks = estimate_clocks(
            edges, {"api", "worker", "billing"}, queues={("billing", "api"): -0.015}
        )
        # billing, which nothing calls nor queues for, is the reference now:
        # the api's group moves, the difference is the same
        assert clocks["billing"].offset_s == 0.0
        assert clocks["billing"].offset_s - clocks["api"].offset_s == pytest.approx(0.015)
        assert clocks["worker"].offset_s == pytest.approx(clocks["api"].offset_s)

    def test_calls_between_the_two_services_decide_not_the_queue(self) -> None:
        # api calls worker too: the calls put it 10 ms ahead; a queue bound of
        # 5 ms contradicts them (a late timestamp, say) and moves nothing.
        edges = _calls("api", "worker", 0.010)
        clocks = estimate_clocks(edges, {"api", "worker"}, queues={("api", "worker"): 0.005})
        assert clocks["worker"].offset_s == pytest.approx(0.010, abs=1e-4)
        assert clocks["worker"].bounded

    def test_a_chain_of_queues_settles_every_consumer(self) -> None:
        queues = {("api", "worker"): -0.01, ("worker", "mailer"): -0.02}
        clocks = estimate_clocks([], {"api", "worker", "mailer"}, queues=queues)
        assert clocks["worker"].offset_s == pytest.approx(-0.01)
        assert clocks["mailer"].offset_s == pytest.approx(-0.03)


class TestQueueBoundsInTheStitch:
    def test_a_consumer_that_would_run_before_the_send_is_moved_no_further(
        self, tmp_path: Path
    ) -> None:
        # The quickest message waited 1 ms: the worker is at least 29.456 ms
        # behind (a clock off by a whole number of milliseconds would make its
        # file look timed to the millisecond, and the bound a millisecond looser).
        rows = stitch(*write_logs(tmp_path, -30.456, http=False))
        offsets = {r["service"]: r["offset_ms"] for r in rows}
        assert offsets["api"] == 0.0
        assert offsets["worker"] == pytest.approx(-29.456, abs=0.0015)
        for trace in {r["trace_id"] for r in rows}:
            mine = [r for r in rows if r["trace_id"] == trace]
            (sent,) = (
                r["record"]["span.start"]
                for r in mine
                if r["service"] == "api" and r["record"].get("span.kind") == "producer"
            )
            assert all(r["timestamp"] >= sent for r in mine if r["service"] == "worker")

    def test_the_summary_names_the_consumer_corrected_from_one_side(self, tmp_path: Path) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "logtrace", "stitch", "-o", str(tmp_path / "out.txt")]
            + [str(p) for p in write_logs(tmp_path, -30.456, http=False)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
            timeout=120,
        )
        assert "worker -29.45" in out.stderr and "[-inf, -29.45" in out.stderr, out.stderr
        assert "bound on one side only, offset may be off by more: worker\n" in out.stderr
        assert "left uncorrected" not in out.stderr

    def test_the_producer_not_its_consumer_is_the_reference(self) -> None:
        # The worker calls db; the api reaches the worker by a queue alone.
        edges = _calls("worker", "db", 0.0)
        clocks = estimate_clocks(edges, {"api", "worker", "db"}, queues={("api", "worker"): 0.004})
        assert (clocks["api"].offset_s, clocks["api"].low_s, clocks["api"].high_s) == (0.0,) * 3
        assert clocks["worker"].high_s == pytest.approx(0.004)

    def test_a_producer_outside_the_reference_group_moves_up_to_meet_it(self) -> None:
        # api (the reference) calls worker; billing queues messages for worker.
        edges = _calls("api", "worker", 0.0)
        clocks = estimate_clocks(
            edges, {"api", "worker", "billing"}, queues={("billing", "worker"): -0.015}
        )
        assert clocks["api"].offset_s == 0.0
        assert clocks["worker"].offset_s == pytest.approx(0.0, abs=1e-6)
        assert clocks["billing"].offset_s == pytest.approx(0.015, abs=1e-6)
