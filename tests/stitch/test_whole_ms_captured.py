"""Captured real runs of services that log trace and span IDs but no parent,
with times to the whole millisecond, whose callees work after they answer.
Each run (gzipped): 80 requests through httpx, the clocks shifted in the
services' logging.

- ``dd_stream_background_two_clients_shifted``: Datadog's tracer in its
  documented text format. A FastAPI gateway calls orders (FastAPI,
  streaming some answers, a ``BackgroundTasks`` job in others), which calls
  stock (Flask under gunicorn, some requests failing with a logged
  traceback); two clients at once; orders +26 ms, stock -28 ms. Each httpx
  call logs one line of its own client span when it returns.
- ``ecs_calls_in_a_row_two_clients_shifted``: ecs-logging with Elastic's
  agent. The gateway (FastAPI) calls orders (Flask under gunicorn, two sync
  workers, retrying some of its calls), then stock itself; orders calls
  stock (FastAPI, two uvicorn workers, streaming some answers, a job in
  others); two clients at once; orders -18 ms, stock +29 ms.
- ``otel_text_django_stream_background_shifted``: OpenTelemetry's logging
  instrumentation in its own text format. The gateway (FastAPI) calls
  orders (Django ASGI, a line after its answer), which calls stock (FastAPI,
  streaming some answers, a job traced as a span of its own in others);
  orders -29 ms, stock +23 ms.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _stitchutil import stitched_traces, wrong_calls

CAPTURED = Path(__file__).parent / "captured"


def _assert_true_story(run: str, shifts: dict[str, float], within: float, tmp_path: Path) -> None:
    """Every clock within ``within`` ms of its shift and inside the interval
    shown, every call of the 80 in order under its caller."""
    summary, traces = stitched_traces(CAPTURED / run, tmp_path / "o.jsonl", every_line=False)
    for name, shift in shifts.items():
        got = summary.offsets_ms[name] - summary.offsets_ms["gateway"]
        assert abs(got - shift) <= within, summary.offsets_ms
        low, high = summary.offset_bounds_ms[name]
        assert low <= shift <= high, (name, low, high)
    assert len([t for t in traces.values() if len(t) > 4]) == 80
    assert wrong_calls(traces) == 0


class TestFewCallsBoundingAService:
    def test_the_links_offset_stands(self, tmp_path: Path) -> None:
        """The first offsets, from where stock fits between orders' lines,
        put stock 0.7 ms off. The gateway writes no line while orders works,
        so ``gateway -> stock`` is kept beside the link through orders; in
        the first round of inferred calls, whose doubt is the links' own
        uncertainty (8.5 ms for stock), a one-line client span of orders or
        of the gateway could contain nearly every stock span: 162 calls in
        doubt. The two left bounded stock across 69 ms, and their middle put
        it 7 ms off: 79 traces of 80 out of order, 52 stock spans under the
        gateway. Calls that bound a service less than containment does say
        less than the links did: the links' offset stands."""
        shifts = {"gateway": 0.0, "orders": 26.0, "stock": -28.0}
        _assert_true_story("dd_stream_background_two_clients_shifted", shifts, 1.0, tmp_path)


class TestWorkAfterTheAnswer:
    def test_two_callers_as_tight(self, tmp_path: Path) -> None:
        """Stock's job writes its line after stock answered. Orders hears
        back after that line in 65 traces of 80, the gateway (calling stock
        itself, after orders) in 79: the two pairs fit stock's spans without
        their last line as tightly, and the first one taken, the gateway,
        showed no work after the answer. Stock's whole spans then fitted
        orders only 2 to 5 ms off: the link ``orders -> stock`` broke the
        links' consistency and went, stock came out 5 ms off and its
        request spans hung under the gateway in 78 traces."""
        shifts = {"gateway": 0.0, "orders": -18.0, "stock": 29.0}
        _assert_true_story("ecs_calls_in_a_row_two_clients_shifted", shifts, 1.0, tmp_path)

    def test_a_job_of_its_own_fitting_the_call(self, tmp_path: Path) -> None:
        """Stock's job is a span of its own, one line written 2 to 8 ms
        after stock answered, while orders still works. That line fits
        between orders' lines 2 to 4 ms off (the request takes 2 to 3 ms to
        reach stock, and the times are whole milliseconds), where the
        request spans fit too: the densest fits put stock 3 ms off. In every
        trace, stock's request span lies between orders' "call stock" and
        the next line at steady positions, a stretch the fits pack less
        densely at. Those positions were set aside because the gateway holds
        stock between its lines in more traces, as a sibling called beside
        the real caller does; but the gateway holds orders as often, and
        stock inside it: a caller's caller, no rival. Stock was 4 ms off,
        with 54 traces of 80 out of order."""
        shifts = {"gateway": 0.0, "orders": -29.0, "stock": 23.0}
        _assert_true_story("otel_text_django_stream_background_shifted", shifts, 1.5, tmp_path)


@pytest.mark.parametrize(
    "run",
    [
        "dd_stream_background_two_clients_shifted",
        "ecs_calls_in_a_row_two_clients_shifted",
        "otel_text_django_stream_background_shifted",
    ],
)
def test_links_inferred_and_marked(tmp_path: Path, run: str) -> None:
    summary, _ = stitched_traces(CAPTURED / run, tmp_path / "o.jsonl", every_line=False)
    (note,) = summary.notes
    assert note.startswith("parents inferred from containment"), note
    assert "gateway -> orders" in note and "orders -> stock" in note, note
