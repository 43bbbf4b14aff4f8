"""Span records in logtrace's own text format carry their fields as ``key=value`` pairs.

``configure_logging(json=False)`` writes a span record as a text line whose
message is followed by ``span.kind='client' span.start='...Z'
duration_ms=10.227 ... response_ms=8.02``. The stitcher read such lines as
records without fields (written when the span ended): a caller's send was
then not in the logs, and a Django service whose ``request_finished``
handler logs after the answer, bounded by its span's end alone, came out
12 ms ahead on one clock. They are read as the JSON records are now.

A captured run (gzipped) of five services on one clock, 60 requests: a
FastAPI gateway calling orders (Flask on gunicorn, two sync workers) and
pricing (Django ASGI, logging from ``response.close()``), orders calling
stock (FastAPI, streaming some answers and running a background job in
others), stock calling db.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _stitchutil import pure_python, stitched_traces

from logtrace.stitch._model import KIND_CLIENT, SPAN_RECORD
from logtrace.stitch._parse import parse_line
from logtrace.stitch._timestamps import parse_timestamp

RUN = Path(__file__).parent / "captured" / "text_format_records_one_clock"
LINE = (
    "2026-12-07T04:16:20.652171Z INFO     gateway logtrace.span: client GET "
    "trace_id=8a26f0b62236f48a1266682437380165 span_id=72a72ee33c186fc3 "
    "parent_span_id=a0ac10b4380a1bb5 span.kind='client' span.name='GET' "
    "span.start='2026-12-07T04:16:20.641907Z' duration_ms=10.227 host.name='vm'"
)


class TestTheLine:
    def test_is_a_client_span_record_with_its_start(self) -> None:
        trace, span, parent, ts, _, flags, _, start = parse_line(LINE.encode())
        assert (trace, span, parent) == (
            "8a26f0b62236f48a1266682437380165",
            "72a72ee33c186fc3",
            "a0ac10b4380a1bb5",
        )
        assert flags & SPAN_RECORD and flags & KIND_CLIENT
        assert start == parse_timestamp("2026-12-07T04:16:20.641907Z")
        assert ts == parse_timestamp("2026-12-07T04:16:20.652171Z")

    def test_without_its_start_it_starts_its_duration_before_its_time(self) -> None:
        line = LINE.replace("span.start='2026-12-07T04:16:20.641907Z' ", "")
        _, _, _, ts, _, flags, _, start = parse_line(line.encode())
        assert flags & SPAN_RECORD
        assert ts is not None and start == pytest.approx(ts - 0.010227)

    @pytest.mark.parametrize(
        "change",
        [
            ("duration_ms=10.227", "duration_ms=nan"),
            ("duration_ms=10.227", ""),
            ("span.kind='client' ", ""),
        ],
    )
    def test_without_a_kind_or_a_finite_duration_it_is_a_plain_line(
        self, change: tuple[str, str]
    ) -> None:
        _, _, _, _, _, flags, _, start = parse_line(LINE.replace(*change).encode())
        assert not flags & SPAN_RECORD and start is None


@pytest.mark.parametrize("pure", [False, True])
def test_on_one_clock_nothing_is_corrected(tmp_path: Path, pure: bool) -> None:
    with pure_python(pure):
        summary, traces = stitched_traces(RUN, tmp_path / "out.jsonl", every_line=False)
    assert len(traces) == 60
    assert set(summary.offsets_ms.values()) == {0.0}
    for name, (low, high) in summary.offset_bounds_ms.items():
        assert low <= 0.0 <= high and high - low < 5.0, (name, low, high)
