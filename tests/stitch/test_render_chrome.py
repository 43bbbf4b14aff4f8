"""``logtrace stitch --format chrome``: trace-event JSON that Perfetto and chrome://tracing load."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from _renderdata import (
    EXAMPLE,
    EXAMPLE_TRACES,
    HOSTILE_TRACE,
    LEFT,
    LOOSE,
    RIGHT,
    ROOT,
    SCRIPT_MESSAGE,
    hostile_logs,
    skewed_copy,
)
from _stitchutil import run, stitch_jsonl

Event = dict[str, Any]


def chrome(out: Path, *argv: str) -> dict[str, Any]:
    code, err = run("stitch", "-q", "--format", "chrome", "-o", str(out), *argv)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"), parse_constant=_reject)
    return doc


def _reject(name: str) -> Any:
    raise AssertionError(f"non-standard JSON constant {name}")


def events(doc: dict[str, Any], ph: str) -> list[Event]:
    return [e for e in doc["traceEvents"] if e["ph"] == ph]


def spans_by_id(doc: dict[str, Any]) -> dict[str, Event]:
    return {e["args"]["span_id"]: e for e in events(doc, "X")}


def assert_well_formed(doc: dict[str, Any]) -> None:
    """Every event has the keys viewers need; the threads nest properly."""
    assert isinstance(doc["traceEvents"], list)
    for e in doc["traceEvents"]:
        for key in ("ph", "ts", "pid", "tid", "name"):
            assert key in e, (key, e)
        assert isinstance(e["ts"], int) and isinstance(e["pid"], int) and isinstance(e["tid"], int)
        if e["ph"] == "X":
            assert isinstance(e["dur"], int) and e["dur"] >= 0, e
        if e["ph"] == "i":
            assert e["s"] == "t"
    by_thread: dict[tuple[int, int], list[Event]] = defaultdict(list)
    for e in events(doc, "X"):
        by_thread[e["pid"], e["tid"]].append(e)
    for slices in by_thread.values():
        slices.sort(key=lambda e: (e["ts"], -e["dur"]))
        open_ends: list[int] = []
        for e in slices:
            while open_ends and open_ends[-1] <= e["ts"]:
                open_ends.pop()
            assert not open_ends or e["ts"] + e["dur"] <= open_ends[-1], (
                "slices overlap on a thread"
            )
            open_ends.append(e["ts"] + e["dur"])


def inside(child: Event, parent: Event) -> bool:
    return bool(
        parent["ts"] <= child["ts"]
        and child["ts"] + child.get("dur", 0) <= parent["ts"] + parent["dur"]
    )


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return chrome(tmp_path_factory.mktemp("chrome") / "trace.json", str(EXAMPLE))


class TestExampleLogs:
    def test_well_formed(self, example: dict[str, Any]) -> None:
        assert_well_formed(example)
        assert example["displayTimeUnit"] == "ms"

    def test_one_process_per_service(self, example: dict[str, Any]) -> None:
        names = {
            e["pid"]: e["args"]["name"] for e in events(example, "M") if e["name"] == "process_name"
        }
        assert sorted(names.values()) == ["inventory", "storefront"]
        for e in events(example, "X") + events(example, "i"):
            assert e["pid"] in names

    def test_every_span_and_record_of_every_trace(
        self, example: dict[str, Any], tmp_path: Path
    ) -> None:
        records = [
            r for r in stitch_jsonl(tmp_path / "all.jsonl", "-q", str(EXAMPLE)) if r["trace_id"]
        ]
        span_records = [r for r in records if r["record"].get("logger") == "logtrace.span"]
        spans = {r["span_id"] for r in records if r["span_id"]}
        assert {e["args"]["trace_id"] for e in events(example, "X")} == EXAMPLE_TRACES
        assert set(spans_by_id(example)) == spans
        instants = events(example, "i")
        assert len(instants) == len(records) - len(span_records)
        assert sorted(e["args"]["line"] for e in instants) == sorted(
            r["line"] for r in records if r not in span_records
        )

    def test_span_times_come_from_span_records(self, example: dict[str, Any]) -> None:
        client = next(e for e in events(example, "X") if e["cat"] == "client")
        assert client["name"] == "client GET"
        # The client span record says duration_ms; the drawn span is start..end of it.
        assert abs(client["dur"] / 1e3 - client["args"]["duration_ms"]) < 0.2
        assert client["args"]["url.full"].startswith("http://127.0.0.1:")

    def test_records_sit_inside_their_span(self, example: dict[str, Any]) -> None:
        spans = spans_by_id(example)
        for e in events(example, "i"):
            span = spans[e["args"]["span_id"]]
            assert inside(e, span) and (e["pid"], e["tid"]) == (span["pid"], span["tid"])

    def test_calls_between_services_are_flow_arrows(self, example: dict[str, Any]) -> None:
        spans = spans_by_id(example)
        starts = {e["id"]: e for e in events(example, "s")}
        finishes = {e["id"]: e for e in events(example, "f")}
        assert starts.keys() == finishes.keys() and len(starts) == 3  # one call per order
        for fid, start in starts.items():
            finish = finishes[fid]
            callee = next(
                e
                for e in spans.values()
                if (e["pid"], e["tid"], e["ts"]) == (finish["pid"], finish["tid"], finish["ts"])
            )
            caller = spans[callee["args"]["parent_span_id"]]
            assert caller["cat"] == "client" and callee["cat"] == "server"
            assert (start["pid"], start["tid"]) == (caller["pid"], caller["tid"])
            assert inside(start, caller) and finish["bp"] == "e"

    def test_errors_are_marked(self, example: dict[str, Any]) -> None:
        marked = {
            e["args"]["trace_id"] for e in example["traceEvents"] if e.get("args", {}).get("error")
        }
        assert marked == {"17269a0ad04edb171422a02cadf134e9"}


class TestCorrectedClocks:
    @staticmethod
    def outside(doc: dict[str, Any]) -> list[str]:
        spans = spans_by_id(doc)
        return [
            sid
            for sid, e in spans.items()
            if e["args"].get("parent_span_id") in spans
            and not inside(e, spans[e["args"]["parent_span_id"]])
        ]

    def test_children_inside_parents_after_correction(self, tmp_path: Path) -> None:
        logs = skewed_copy(tmp_path / "skewed")
        doc = chrome(tmp_path / "c.json", str(logs))
        assert_well_formed(doc)
        assert self.outside(doc) == []
        assert doc["otherData"]["clock_offsets_ms"]["inventory"] == pytest.approx(40, abs=2)

    def test_raw_clocks_put_callees_outside_their_caller(self, tmp_path: Path) -> None:
        logs = skewed_copy(tmp_path / "skewed")
        doc = chrome(tmp_path / "c.json", "--no-skew-correction", str(logs))
        assert_well_formed(doc)
        assert len(self.outside(doc)) >= 3  # every inventory server span of the three calls


class TestHostileInput:
    @pytest.fixture(scope="class")
    @staticmethod
    def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
        root = tmp_path_factory.mktemp("hostile")
        return chrome(root / "c.json", str(hostile_logs(root / "logs")))

    def test_well_formed(self, doc: dict[str, Any]) -> None:
        assert_well_formed(doc)

    def test_overlapping_spans_of_one_service_get_separate_threads(
        self, doc: dict[str, Any]
    ) -> None:
        spans = spans_by_id(doc)
        assert spans[LEFT]["pid"] == spans[RIGHT]["pid"]
        assert spans[LEFT]["tid"] != spans[RIGHT]["tid"]
        assert spans[LEFT]["tid"] == spans[ROOT]["tid"]  # drawn under its parent
        threads = [e for e in events(doc, "M") if e["name"] == "thread_name"]
        assert all(HOSTILE_TRACE[:16] in e["args"]["name"] for e in threads)

    def test_span_without_span_record_spans_its_records(self, doc: dict[str, Any]) -> None:
        loose = spans_by_id(doc)[LOOSE]
        assert loose["dur"] == 10_000  # 40 ms .. 50 ms
        assert loose["name"] == f"span {LOOSE}"

    def test_text_is_kept_as_data(self, doc: dict[str, Any]) -> None:
        messages = [e["args"]["message"] for e in events(doc, "i")]
        assert SCRIPT_MESSAGE in messages
        huge = next(m for m in messages if m.startswith("xxx"))
        assert len(huge) < 20_000 and huge.endswith("more characters)")
        assert max(len(e["name"]) for e in doc["traceEvents"]) < 300
        names = {e["args"]["name"] for e in events(doc, "M") if e["name"] == "process_name"}
        assert names == {"evil", "<i>markup</i>"}

    def test_span_records_carry_their_fields(self, doc: dict[str, Any]) -> None:
        root = spans_by_id(doc)[ROOT]
        assert root["name"] == "internal root" and root["cat"] == "internal"
        assert root["dur"] == 100_000


def test_generated_logs_with_skew_and_parallel_calls(tmp_path: Path) -> None:
    from logtrace.testing import SynthConfig, generate

    synth = generate(str(tmp_path / "logs"), SynthConfig(traces=150, seed=11, skew_ms=25.0))
    doc = chrome(tmp_path / "c.json", *synth.files)
    assert_well_formed(doc)
    assert TestCorrectedClocks.outside(doc) == []
    assert len({e["args"]["trace_id"] for e in events(doc, "X")}) == 150


def test_input_without_traces_gives_an_empty_valid_trace(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_text("started\nno trace here\n", encoding="utf-8")
    doc = chrome(tmp_path / "c.json", str(tmp_path / "app.log"))
    assert doc["traceEvents"] == []
