"""The log generator: real files, known clocks, and a truth that matches them."""

from __future__ import annotations

import calendar
import contextlib
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import REPO

from logtrace.testing import SynthConfig, SynthResult, generate


def _ts(text: str) -> float:
    sec = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    return sec + int(text[20:26]) / 1e6


def _lines(path: str) -> list[str]:
    opener: Any = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read().split("\n")[:-1]


def _truth(res: SynthResult) -> tuple[dict[str, Any], dict[str, list[tuple[int, int]]]]:
    with open(res.truth, encoding="utf-8") as fh:
        head = json.loads(fh.readline())
        body = {}
        for line in fh:
            obj = json.loads(line)
            body[obj["trace_id"]] = [(f, ln) for f, ln in obj["records"]]
    return head, body


def _json_records(res: SynthResult) -> dict[tuple[int, int], dict[str, Any]]:
    """Every logtrace JSON line by (file index, line number)."""
    out = {}
    for fi, path in enumerate(res.files):
        for number, line in enumerate(_lines(path), 1):
            if line.startswith('{"timestamp"') and '"trace_id"' in line:
                with contextlib.suppress(ValueError):
                    out[(fi, number)] = json.loads(line)
    return out


@pytest.fixture(scope="module")
def skewed(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    out = tmp_path_factory.mktemp("skewed")
    return generate(str(out), SynthConfig(traces=300, seed=5, skew_ms=25.0))


class TestFiles:
    def test_same_seed_same_bytes(self, tmp_path: Path) -> None:
        digests = []
        for name in ("a", "b"):
            res = generate(str(tmp_path / name), SynthConfig(traces=50, seed=9))
            h = hashlib.sha256()
            for path in res.files:
                h.update(Path(path).name.encode())
                h.update("\n".join(_lines(path)).encode("utf-8", "surrogateescape"))
            digests.append(h.hexdigest())
        assert digests[0] == digests[1]

    def test_one_log_per_service_some_rotated_and_gzipped(self, skewed: SynthResult) -> None:
        names = {Path(f).name for f in skewed.files}
        assert len(skewed.services) == 6
        for service in skewed.services:
            assert f"{service}.log" in names
        assert any(n.endswith(".log.2.gz") for n in names)
        assert any(n.endswith(".log.1") for n in names)
        gz = next(f for f in skewed.files if f.endswith(".gz"))
        with open(gz, "rb") as fh:
            assert fh.read(2) == b"\x1f\x8b"

    def test_size_target_is_met(self, tmp_path: Path) -> None:
        res = generate(str(tmp_path), SynthConfig(target_bytes=2_000_000, seed=2))
        assert 2_000_000 <= res.bytes < 2_600_000
        assert res.bytes == sum(
            len(("\n".join(_lines(f)) + "\n").encode("utf-8", "surrogateescape")) for f in res.files
        )

    def test_foreign_noise_and_corrupt_lines_are_present(self, tmp_path: Path) -> None:
        res = generate(str(tmp_path), SynthConfig(traces=400, seed=3, corrupt_rate=0.002))
        text = [line for f in res.files for line in _lines(f)]
        assert any('"trace.id"' in t for t in text)  # ECS
        assert any('"otelTraceID"' in t for t in text)
        assert any(t.startswith("ts=") and "trace_id=" in t for t in text)  # logfmt
        assert any(re.match(r"^\S+Z [A-Z]+ \[\w+\] .* trace_id=", t) for t in text)
        assert any("health check" in t for t in text)
        assert any("\x1b" in t or "\x00" in t or t.endswith('"ev') for t in text)

    def test_corrupt_lines_never_carry_a_trace(self, tmp_path: Path) -> None:
        res = generate(str(tmp_path), SynthConfig(traces=300, seed=4, corrupt_rate=0.01))
        _, truth = _truth(res)
        listed = {rec for recs in truth.values() for rec in recs}
        for fi, path in enumerate(res.files):
            for number, line in enumerate(_lines(path), 1):
                if re.search(r"[0-9a-f]{32}", line):
                    assert (fi, number) in listed, line
                else:
                    assert (fi, number) not in listed

    def test_ten_megabytes_in_well_under_a_second_per_megabyte(self, tmp_path: Path) -> None:
        t0 = time.perf_counter()
        generate(str(tmp_path), SynthConfig(target_bytes=10_000_000, seed=6))
        assert time.perf_counter() - t0 < 5.0


class TestTruth:
    def test_truth_lists_every_trace_line_once(self, skewed: SynthResult) -> None:
        head, truth = _truth(skewed)
        assert head["files"] == [Path(f).name for f in skewed.files]
        assert len(truth) == skewed.traces == 300
        seen = [rec for recs in truth.values() for rec in recs]
        assert len(seen) == len(set(seen))
        records = _json_records(skewed)
        for tid, recs in truth.items():
            for rec in recs:
                if rec in records:
                    assert records[rec]["trace_id"] == tid

    def test_true_offsets_restore_the_true_order(self, skewed: SynthResult) -> None:
        head, truth = _truth(skewed)
        records = _json_records(skewed)
        for recs in truth.values():
            mine = [r for r in recs if r in records]
            corrected = [
                _ts(records[r]["timestamp"]) - head["offsets_s"][records[r]["service"]]
                for r in mine
            ]
            assert corrected == sorted(corrected)
            assert len(set(corrected)) == len(corrected)  # never a tie

    def test_raw_timestamps_disagree_with_the_true_order(self, skewed: SynthResult) -> None:
        _, truth = _truth(skewed)
        records = _json_records(skewed)
        inverted = 0
        for recs in truth.values():
            raw = [_ts(records[r]["timestamp"]) for r in recs if r in records]
            inverted += raw != sorted(raw)
        assert inverted > 0.9 * len(truth)

    def test_without_skew_raw_timestamps_are_the_true_order(self, tmp_path: Path) -> None:
        res = generate(str(tmp_path), SynthConfig(traces=200, seed=8, skew_ms=0.0))
        head, truth = _truth(res)
        assert set(head["offsets_s"].values()) == {0.0}
        records = _json_records(res)
        for recs in truth.values():
            raw = [_ts(records[r]["timestamp"]) for r in recs if r in records]
            assert raw == sorted(raw)

    def test_offsets_stay_within_the_configured_skew(self, skewed: SynthResult) -> None:
        assert all(abs(v) <= 0.025 for v in skewed.offsets_s.values())
        assert len(set(skewed.offsets_s.values())) == 6


class TestSpans:
    def test_callee_runs_inside_the_client_span_on_true_clocks(self, skewed: SynthResult) -> None:
        head, _ = _truth(skewed)
        off = head["offsets_s"]
        records = list(_json_records(skewed).values())
        clients = {r["span_id"]: r for r in records if r.get("span.kind") == "client"}
        servers = [r for r in records if r.get("span.kind") == "server"]
        linked = 0
        for s in servers:
            c = clients.get(s["parent_span_id"])
            if c is None:
                continue
            linked += 1
            c0 = _ts(c["span.start"]) - off[c["service"]]
            c1 = _ts(c["timestamp"]) - off[c["service"]]
            s0 = _ts(s["span.start"]) - off[s["service"]]
            s1 = _ts(s["timestamp"]) - off[s["service"]]
            assert c0 < s0 <= s1 < c1
            assert c["service"] != s["service"]
        assert linked > 300

    def test_span_records_follow_the_record_format(self, skewed: SynthResult) -> None:
        records = list(_json_records(skewed).values())
        spans = [r for r in records if r.get("logger") == "logtrace.span"]
        assert spans
        for r in spans:
            assert r["message"] == f"{r['span.kind']} {r['span.name']}"
            assert re.fullmatch(r"[0-9a-f]{16}", r["span_id"])
            assert re.fullmatch(r"[0-9a-f]{32}", r["trace_id"])
            assert r["timestamp"].endswith("Z") and r["span.start"].endswith("Z")
            took = _ts(r["timestamp"]) - _ts(r["span.start"])
            assert took == pytest.approx(r["duration_ms"] / 1000, abs=3e-6)
        assert any(r["level"] == "ERROR" and "error.type" in r for r in spans)

    def test_retries_after_failed_calls(self, skewed: SynthResult) -> None:
        records = list(_json_records(skewed).values())
        assert any(r["message"].startswith("retrying ") for r in records)

    def test_without_client_spans_the_callee_parent_is_the_caller_span(
        self, tmp_path: Path
    ) -> None:
        res = generate(str(tmp_path), SynthConfig(traces=100, seed=10, client_spans=False))
        records = list(_json_records(res).values())
        assert not any(r.get("span.kind") == "client" for r in records)
        servers = {r["span_id"]: r for r in records if r.get("span.kind") == "server"}
        children = [r for r in servers.values() if r["parent_span_id"] is not None]
        assert children
        for r in children:
            assert r["parent_span_id"] in servers
            assert servers[r["parent_span_id"]]["service"] != r["service"]

    def test_drift_moves_clocks_apart_over_time(self, tmp_path: Path) -> None:
        res = generate(str(tmp_path), SynthConfig(traces=50, seed=11, drift_ppm=50.0))
        head, _ = _truth(res)
        assert any(v != 0.0 for v in head["drifts"].values())
        assert all(abs(v) <= 50e-6 for v in head["drifts"].values())


def test_the_stitcher_never_imports_the_generator() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import logtrace.cli, logtrace.stitch as stitch\n"
        "for m in pkgutil.iter_modules(stitch.__path__):\n"
        "    importlib.import_module('logtrace.stitch.' + m.name)\n"
        "print('logtrace.testing' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert proc.stdout.strip() == "False"
