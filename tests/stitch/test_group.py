"""Grouping: span indexes mean (trace, span ID), whichever path computes them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from _stitchutil import stitch_jsonl

from logtrace.stitch import Options, _group, stitch
from logtrace.stitch._model import ROW_DTYPE
from logtrace.stitch._trace_halves import low_half_partners, partition_key


def _rows(rng: np.random.Generator, n: int, spans: int, traces: int) -> np.ndarray:
    rows = np.zeros(n, dtype=ROW_DTYPE)
    span = rng.integers(-1, spans, n)
    rows["span"] = span
    rows["parent"] = np.where(rng.random(n) < 0.3, -1, rng.integers(0, spans, n))
    # Each span ID belongs to one trace unless ``traces`` lets them collide.
    owner = rng.integers(0, traces, spans)
    rows["trace"] = np.where(span >= 0, owner[np.maximum(span, 0)], rng.integers(0, traces, n))
    parent = rows["parent"]
    has = parent >= 0
    parent[has & (owner[np.maximum(parent, 0)] != rows["trace"])] = -1
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_quick_split_matches_the_general_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = _rows(rng, 5000, 800, 40)
    used = np.union1d(rows["span"][rows["span"] >= 0], rows["parent"][rows["parent"] >= 0])
    remap = np.full(800, -1)
    remap[used] = np.arange(len(used))
    for name in ("span", "parent"):
        column = rows[name]
        column[column >= 0] = remap[column[column >= 0]]
    names = [f"{i:016x}" for i in range(len(used))]
    quick_rows, slow_rows = rows.copy(), rows.copy()
    quick = _group.split_without_collisions(quick_rows, names)
    assert quick is not None
    general = _group.split_general(slow_rows, names)
    assert quick[0] == general[0]
    assert np.array_equal(quick[1], general[1])
    assert np.array_equal(quick_rows, slow_rows)


def test_a_span_id_in_two_traces_is_two_spans(tmp_path: Path) -> None:
    span = "00f067aa0ba902b7"
    lines = [
        {
            "timestamp": "2026-03-01T10:00:00.000001Z",
            "level": "INFO",
            "service": "a",
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": span,
            "message": "one",
        },
        {
            "timestamp": "2026-03-01T10:00:00.000002Z",
            "level": "INFO",
            "service": "a",
            "trace_id": "5bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": span,
            "message": "two",
        },
        {
            "timestamp": "2026-03-01T10:00:00.000003Z",
            "level": "INFO",
            "service": "b",
            "trace_id": "5bf92f3577b34da6a3ce929d0e0e4736",
            "span_id": "10f067aa0ba902b7",
            "parent_span_id": span,
            "message": "child",
        },
    ]
    path = tmp_path / "a.log"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    out = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    by_message = {r["record"]["message"]: r for r in out}
    assert by_message["one"]["depth"] == 0
    assert by_message["two"]["depth"] == 0
    assert by_message["child"]["depth"] == 1
    assert by_message["child"]["trace_id"] == by_message["two"]["trace_id"]
    assert [r["record"]["message"] for r in out] == ["one", "two", "child"]


@pytest.mark.parametrize("seed", range(3))
def test_hex_span_maps_match_the_dict_maps(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool = [f"{int(x):016x}" for x in rng.integers(1, 1 << 62, 300)]
    scans = [[pool[i] for i in dict.fromkeys(rng.integers(0, 300, 120).tolist())] for _ in range(4)]
    scans.append([])
    got = _group.hex_span_maps(scans)
    assert got is not None
    ids: dict[str, int] = {}
    expected = [_group.index_map(ids, names) for names in scans]
    assert got[0] == list(ids)
    for mine, theirs in zip(got[1], expected, strict=True):
        assert np.array_equal(mine, theirs)


@pytest.mark.parametrize(
    "odd", ["span-a", "00F067AA0BA902B7", "00f067aa0ba902b7ff", "00f067 a0ba902b7", "0" * 15]
)
def test_hex_span_maps_leave_other_ids_to_the_dict(odd: str) -> None:
    assert _group.hex_span_maps([["00f067aa0ba902b7", odd]]) is None


def test_row_prefix_copy_is_the_field_by_field_copy() -> None:
    from logtrace.stitch._group import copy_row_prefix
    from logtrace.stitch._model import ROW_DTYPE, ROW_FIELDS, SCAN_DTYPE

    rng = np.random.default_rng(3)
    scanned = np.zeros(1000, SCAN_DTYPE)
    for name in (*ROW_FIELDS, "start"):
        column = scanned[name]
        scanned[name] = rng.integers(0, 200, len(column)).astype(column.dtype)
    scanned["ts"][::7] = np.nan
    fast = np.zeros(1000, ROW_DTYPE)
    copy_row_prefix(fast, scanned)
    for name in ROW_FIELDS:
        assert np.array_equal(fast[name], scanned[name], equal_nan=name == "ts"), name
    strided = np.zeros(2000, ROW_DTYPE)[::2]  # not contiguous: the field-wise path
    copy_row_prefix(strided, scanned)
    assert all(np.array_equal(strided[n], fast[n], equal_nan=n == "ts") for n in ROW_FIELDS)


class TestTraceHalves:
    """A 64-bit trace ID joins the 128-bit one it is the low half of."""

    LONG = "6b15fdf200000000e4762d231b01be63"
    SHORT = "0" * 16 + LONG[16:]

    def test_a_short_id_joins_the_one_long_id_of_its_low_half(self) -> None:
        other = "7" * 32
        ids = [self.SHORT, other, self.LONG, "0" * 16 + "1" * 16, "req-1"]
        assert low_half_partners(ids) == {0: 2}
        assert partition_key(self.LONG) == partition_key(self.SHORT) == self.LONG[16:]
        assert partition_key("req-1") == "req-1"

    def test_two_long_ids_of_one_low_half_leave_the_short_one_alone(self) -> None:
        twin = "1" + self.LONG[1:]
        assert low_half_partners([self.SHORT, self.LONG, twin]) == {}

    @pytest.mark.parametrize("partitions", [1, 3])
    def test_services_logging_either_form_make_one_trace(
        self, tmp_path: Path, partitions: int
    ) -> None:
        """Datadog's gateway logs the 128-bit ID in hex; the services it calls
        got only the low half (``x-datadog-trace-id``) and log it in decimal."""
        decimal = str(int(self.LONG[16:], 16))
        lines = {
            "gateway": [(0, "asked"), (5, "answered")],
            "orders": [(1, "order asked"), (4, "order answered")],
        }
        for service, said in lines.items():
            trace = self.LONG if service == "gateway" else decimal
            records = [
                {
                    "timestamp": f"2026-03-01T10:00:00.00{ms}000Z",
                    "levelname": "INFO",
                    "dd.service": service,
                    "dd.trace_id": trace,
                    "dd.span_id": str(1000 + len(service)),
                    "message": message,
                }
                for ms, message in said
            ]
            (tmp_path / f"{service}.log").write_text(
                "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
            )
        other = {"timestamp": "2026-03-01T10:00:01Z", "dd.trace_id": "12", "message": "x"}
        with open(tmp_path / "orders.log", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(other) + "\n")
        buffer = io.BytesIO()
        stitch([str(tmp_path)], buffer, Options(format="jsonl", partitions=partitions))
        out = [json.loads(line) for line in buffer.getvalue().splitlines()]
        said = [(r["trace_id"], r["record"]["message"]) for r in out]
        assert said == [
            (self.LONG, "asked"),
            (self.LONG, "order asked"),
            (self.LONG, "order answered"),
            (self.LONG, "answered"),
            ("0" * 30 + "0c", "x"),
        ]
