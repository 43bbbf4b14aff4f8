"""``logtrace stitch`` end to end on real generated files."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import cli, run, stitch_jsonl

from logtrace.testing import SynthConfig, SynthResult, generate

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    root = tmp_path_factory.mktemp("synth")
    return generate(str(root), SynthConfig(traces=120, seed=7, skew_ms=25.0))


@pytest.fixture(scope="module")
def stitched(synth: SynthResult, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("out") / "out.jsonl"
    return stitch_jsonl(out, "-q", *synth.files)


def _truth(synth: SynthResult) -> dict[str, list[tuple[int, int]]]:
    with open(synth.truth, encoding="utf-8") as fh:
        fh.readline()
        return {obj["trace_id"]: [tuple(x) for x in obj["records"]] for obj in map(json.loads, fh)}


class TestOrdering:
    def test_traces_come_out_in_true_order(
        self, synth: SynthResult, stitched: list[dict[str, Any]]
    ) -> None:
        index = {f: i for i, f in enumerate(synth.files)}
        got: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for r in stitched:
            if r["trace_id"] is not None:
                got[r["trace_id"]].append((index[r["file"]], r["line"]))
        truth = _truth(synth)
        exact = sum(got[t] == want for t, want in truth.items())
        assert exact / len(truth) >= 0.95

    def test_raw_timestamps_would_not(self, synth: SynthResult, tmp_path: Path) -> None:
        records = stitch_jsonl(tmp_path / "raw.jsonl", "-q", "--no-skew-correction", *synth.files)
        index = {f: i for i, f in enumerate(synth.files)}
        got: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for r in records:
            if r["trace_id"] is not None:
                got[r["trace_id"]].append((index[r["file"]], r["line"]))
            assert r["offset_ms"] in (0.0, None)
        truth = _truth(synth)
        assert sum(got[t] == want for t, want in truth.items()) / len(truth) < 0.5

    def test_offsets_match_the_clocks_that_wrote_the_files(
        self, synth: SynthResult, stitched: list[dict[str, Any]]
    ) -> None:
        applied = {r["service"]: r["offset_ms"] for r in stitched if r["offset_ms"] is not None}
        ref = "gateway"
        for service, true_s in synth.offsets_s.items():
            want = (true_s - synth.offsets_s[ref]) * 1e3
            # offset_ms is what was applied: raw - corrected.
            assert applied[service] == pytest.approx(want, abs=0.5)

    def test_one_file_is_one_clock(self, stitched: list[dict[str, Any]]) -> None:
        last: dict[tuple[str, str], int] = {}
        for r in stitched:
            if r["trace_id"] is None:
                continue
            key = (r["trace_id"], r["file"])
            assert r["line"] > last.get(key, 0)
            last[key] = r["line"]

    def test_traces_in_start_order_and_unattributed_last(
        self, stitched: list[dict[str, Any]]
    ) -> None:
        firsts: list[str] = []
        seen: set[str | None] = set()
        tail = False
        for r in stitched:
            if r["trace_id"] is None:
                tail = True
                assert r["reason"]
                continue
            assert not tail, "a trace record after the unattributed lines"
            if r["trace_id"] not in seen:
                seen.add(r["trace_id"])
                firsts.append(r["timestamp"])
        assert firsts == sorted(firsts)

    def test_keeps_raw_timestamp_in_record(self, stitched: list[dict[str, Any]]) -> None:
        moved = [
            r
            for r in stitched
            if r["offset_ms"] and "timestamp" in r["record"] and r["trace_id"] is not None
        ]
        assert moved
        assert all(r["record"]["timestamp"] != r["timestamp"] for r in moved)


class TestTree:
    def _write(self, path: Path, records: list[dict[str, Any]]) -> None:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))

    def test_depth_and_orphans(self, tmp_path: Path) -> None:
        base = {"trace_id": TRACE, "level": "info"}
        self._write(
            tmp_path / "front.log",
            [
                {
                    **base,
                    "timestamp": "2026-11-24T10:00:00.000Z",
                    "span_id": "a" * 16,
                    "message": "root",
                },
                {
                    **base,
                    "timestamp": "2026-11-24T10:00:00.001Z",
                    "span_id": "b" * 16,
                    "parent_span_id": "a" * 16,
                    "message": "child",
                },
            ],
        )
        self._write(
            tmp_path / "back.log",
            [
                {
                    **base,
                    "timestamp": "2026-11-24T10:00:00.002Z",
                    "span_id": "c" * 16,
                    "parent_span_id": "b" * 16,
                    "message": "grandchild",
                },
                {
                    **base,
                    "timestamp": "2026-11-24T10:00:00.003Z",
                    "span_id": "d" * 16,
                    "parent_span_id": "9" * 16,
                    "message": "orphan",
                },
                {
                    **base,
                    "timestamp": "2026-11-24T10:00:00.004Z",
                    "span_id": "e" * 16,
                    "parent_span_id": "d" * 16,
                    "message": "under the orphan",
                },
            ],
        )
        records = stitch_jsonl(
            tmp_path / "o.jsonl",
            "-q",
            "--no-skew-correction",
            str(tmp_path / "front.log"),
            str(tmp_path / "back.log"),
        )
        depth = {r["record"]["message"]: r["depth"] for r in records}
        assert depth == {"root": 0, "child": 1, "grandchild": 2, "orphan": 1, "under the orphan": 2}
        code, _ = run(
            "stitch",
            "-q",
            "-o",
            str(tmp_path / "o.txt"),
            str(tmp_path / "back.log"),
            str(tmp_path / "front.log"),
        )
        assert code == 0
        text = (tmp_path / "o.txt").read_text()
        assert "[orphan]" in text
        assert text.count("[orphan") == 1

    def test_same_span_id_in_two_traces_is_two_spans(self, tmp_path: Path) -> None:
        other = "5" * 32
        base = {"timestamp": "2026-11-24T10:00:00Z", "span_id": "a" * 16}
        self._write(
            tmp_path / "x.log",
            [
                {**base, "trace_id": TRACE, "message": "root one"},
                {**base, "trace_id": other, "parent_span_id": "b" * 16, "message": "child two"},
                {**base, "trace_id": other, "span_id": "b" * 16, "message": "root two"},
            ],
        )
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", str(tmp_path / "x.log"))
        depth = {r["record"]["message"]: r["depth"] for r in records}
        assert depth == {"root one": 0, "child two": 1, "root two": 0}

    def test_spellings_of_one_id_are_one_trace(self, tmp_path: Path) -> None:
        base = {"timestamp": "2026-11-24T10:00:00Z", "service": "a", "level": "info"}
        self._write(
            tmp_path / "x.log",
            [
                {**base, "trace_id": TRACE, "span_id": "A" * 16, "message": "lower"},
                {**base, "trace_id": TRACE.upper(), "span_id": "a" * 16, "message": "upper"},
                {**base, "trace_id": "not an id!", "message": "bad"},
                {**base, "trace_id": TRACE[-8:], "message": "short"},
            ],
        )
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", str(tmp_path / "x.log"))
        by_msg = {r["record"]["message"]: r for r in records}
        assert by_msg["lower"]["trace_id"] == by_msg["upper"]["trace_id"] == TRACE
        assert by_msg["lower"]["span_id"] == by_msg["upper"]["span_id"] == "a" * 16
        assert by_msg["bad"]["trace_id"] is None and by_msg["bad"]["reason"] == "no trace id"
        assert by_msg["short"]["trace_id"] == TRACE[-8:].rjust(32, "0")

    def test_cycle_of_parents_does_not_hang(self, tmp_path: Path) -> None:
        base = {"trace_id": TRACE, "timestamp": "2026-11-24T10:00:00Z"}
        self._write(
            tmp_path / "x.log",
            [
                {**base, "span_id": "1" * 16, "parent_span_id": "2" * 16},
                {**base, "span_id": "2" * 16, "parent_span_id": "1" * 16},
            ],
        )
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", str(tmp_path / "x.log"))
        assert len(records) == 2


class TestFilters:
    def test_trace(
        self, synth: SynthResult, stitched: list[dict[str, Any]], tmp_path: Path
    ) -> None:
        wanted = stitched[0]["trace_id"]
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", "--trace", wanted.upper(), *synth.files)
        assert records and {r["trace_id"] for r in records} == {wanted}
        assert [r for r in stitched if r["trace_id"] == wanted] == records

    def test_errors(self, synth: SynthResult, tmp_path: Path) -> None:
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", "--errors", *synth.files)
        by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            by_trace[r["trace_id"]].append(r)
        assert by_trace
        for recs in by_trace.values():
            assert any(
                str(r["record"].get("level", "")).lower() == "error"
                or "error.type" in r["record"]
                or "exception.type" in r["record"]
                or int(r["record"].get("http.response.status_code", 0) or 0) >= 500
                for r in recs
            )

    def test_service(self, synth: SynthResult, tmp_path: Path) -> None:
        leaf = list(synth.offsets_s)[-1]
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", "--service", leaf, *synth.files)
        traces = {r["trace_id"] for r in records}
        for t in traces:
            assert any(r["service"] == leaf for r in records if r["trace_id"] == t)

    def test_since_until(
        self, stitched: list[dict[str, Any]], synth: SynthResult, tmp_path: Path
    ) -> None:
        starts = sorted({r["timestamp"] for r in stitched if r["trace_id"]})
        mid = starts[len(starts) // 2]
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", "--since", mid, *synth.files)
        first: dict[str, str] = {}
        for r in records:
            if r["trace_id"]:
                first.setdefault(r["trace_id"], r["timestamp"])
        assert first and all(t >= mid for t in first.values())


class TestText:
    def test_control_characters_are_escaped(self, tmp_path: Path) -> None:
        log = tmp_path / "evil.log"
        log.write_text(
            json.dumps(
                {
                    "trace_id": TRACE,
                    "timestamp": "2026-11-24T10:00:00Z",
                    "message": "\x1b[2J\x1b]0;pwned\x07 hi",
                }
            )
            + "\n"
        )
        proc = cli("stitch", str(log))
        assert proc.returncode == 0
        assert b"\x1b" not in proc.stdout and b"\x07" not in proc.stdout
        assert b"\\e[2J" in proc.stdout

    def test_text_reordering_characters_are_escaped(self, tmp_path: Path) -> None:
        log = tmp_path / "bidi.log"
        message = "refund \u202eredro\u202c ok\u2028next\u2066x\u2069"
        record = {"trace_id": TRACE, "timestamp": "2026-11-24T10:00:00Z", "message": message}
        log.write_text(json.dumps(record) + "\n", encoding="utf-8")
        proc = cli("stitch", str(log))
        assert proc.returncode == 0
        out = proc.stdout.decode("utf-8")
        assert not any(c in out for c in "\u202e\u202c\u2028\u2066\u2069")
        assert "\\u202e" in out and "\\u2028" in out

    def test_no_colour_when_not_a_terminal(self, synth: SynthResult) -> None:
        proc = cli("stitch", *synth.files)
        assert proc.returncode == 0
        assert b"\x1b[" not in proc.stdout
        assert b"trace " in proc.stdout

    def test_summary_on_stderr(self, synth: SynthResult) -> None:
        proc = cli("stitch", "--format", "jsonl", *synth.files)
        err = proc.stderr.decode()
        assert f"{len(synth.files)} files" in err and "traces" in err
        assert "clock offsets" in err and "unparseable" in err


class TestExitCodes:
    def test_missing_file_names_it(self, tmp_path: Path) -> None:
        code, err = run("stitch", str(tmp_path / "nope.log"))
        assert code == 2
        assert "nope.log" in err and len(err.strip().splitlines()) == 1

    def test_unreadable_file(self, tmp_path: Path) -> None:
        code, err = run("stitch", "-o", str(tmp_path / "no" / "dir" / "out"), str(tmp_path))
        assert code == 2 and "out" in err

    def test_usage_error(self) -> None:
        assert run("stitch", "--format", "xml", "x")[0] == 2

    def test_strict(self, tmp_path: Path) -> None:
        log = tmp_path / "a.log"
        log.write_bytes(b'{"trace_id": "' + TRACE.encode() + b'"}\n\x00\x01\x02\x03\n')
        assert run("stitch", "-q", "-o", str(tmp_path / "o"), str(log))[0] == 0
        assert run("stitch", "-q", "--strict", "-o", str(tmp_path / "o"), str(log))[0] == 1

    def test_glob_directory_and_stdin(self, tmp_path: Path) -> None:
        (tmp_path / "d" / "sub").mkdir(parents=True)
        (tmp_path / "d" / "sub" / "a.log").write_text(json.dumps({"trace_id": TRACE}) + "\n")
        (tmp_path / "b.log").write_text(json.dumps({"trace_id": TRACE}) + "\n")
        out = tmp_path / "o.jsonl"
        records = stitch_jsonl(out, "-q", str(tmp_path / "d"), str(tmp_path / "*.log"))
        assert sorted(Path(r["file"]).name for r in records) == ["a.log", "b.log"]
        proc = cli(
            "stitch", "--format", "jsonl", "-", stdin=b'{"trace_id": "' + TRACE.encode() + b'"}\n'
        )
        rec = json.loads(proc.stdout)
        assert rec["file"] == "-" and rec["trace_id"] == TRACE


def test_memory_budget_spills_the_table_with_the_same_output(
    synth: SynthResult, stitched: list[dict[str, Any]], tmp_path: Path
) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    records = stitch_jsonl(
        tmp_path / "o.jsonl", "-q", "--memory", "64K", "--tmp-dir", str(spill), *synth.files
    )
    assert records == stitched
    assert list(spill.iterdir()) == []  # spill files are removed after the run


@pytest.mark.parametrize("fmt", ["html", "chrome"])
def test_a_whole_run_page_beyond_the_budget_says_how_to_narrow_it(
    synth: SynthResult, tmp_path: Path, fmt: str
) -> None:
    out = str(tmp_path / "page")
    code, err = run("stitch", "--format", fmt, "--memory", "64K", "-o", out, *synth.files)
    assert code == 0
    assert f"warning: the {fmt} output holds every trace" in err
    assert "--errors" in err
    code, err = run(
        "stitch", "--format", fmt, "--memory", "64K", "--errors", "-o", out, *synth.files
    )
    assert code == 0 and "warning" not in err
    code, err = run("stitch", "--format", fmt, "-o", out, *synth.files)
    assert code == 0 and "warning" not in err


def test_memory_sizes() -> None:
    from logtrace.cli import parse_size

    assert parse_size("512M") == 512 << 20
    assert parse_size("2g") == 2 << 30
    assert parse_size("1.5GiB") == int(1.5 * (1 << 30))
    assert parse_size("4096") == 4096
    assert run("stitch", "--memory", "lots", "x")[0] == 2


@pytest.mark.parametrize("pure", [False, True], ids=["c", "python"])
def test_opentelemetry_console_ids_join_the_w3c_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    """OpenTelemetry's console exporter writes ``0x`` before the hex IDs; its
    lines belong to the same trace as a logtrace line with the plain ID."""
    if pure:
        monkeypatch.setenv("LOGTRACE_PURE_PYTHON", "1")
    trace = "5d0f2c6a1b7e4e0a9c3d8f1e2a4b6c7d"
    (tmp_path / "gateway.log").write_text(
        json.dumps(
            {
                "timestamp": "2026-11-24T10:00:00.100000Z",
                "level": "info",
                "message": "checkout start",
                "trace_id": trace,
                "span_id": "1111111111111111",
            }
        )
        + "\n"
    )
    (tmp_path / "worker.log").write_text(
        json.dumps(
            {
                "body": "charge card",
                "severity_text": "INFO",
                "timestamp": "2026-11-24T10:00:00.200000Z",
                "trace_id": "0x" + trace,
                "span_id": "0x2222222222222222",
                "resource": {"attributes": {"service.name": "worker"}},
            }
        )
        + "\n"
    )
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(tmp_path))
    assert [r["trace_id"] for r in records] == [trace, trace]
