"""The Spark engine writes what the local engine writes, byte for byte (Spark in local[2])."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import REPO, run

from logtrace.stitch import Options, Summary, _plan, parse_timestamp, stitch
from logtrace.testing import SynthConfig, generate

if not os.environ.get("CI"):  # CI installs the spark extra: there the tests must run
    pytest.importorskip("pyspark", reason="the spark extra is not installed")

from pyspark.sql import SparkSession

from logtrace.stitch import spark

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module")
def session() -> Iterator[SparkSession]:
    built = (
        SparkSession.builder.master("local[2]")
        .appName("logtrace tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    built.sparkContext.setLogLevel("ERROR")
    yield built
    built.stop()


@pytest.fixture(scope="module")
def synth_logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Skewed clocks, rotated and gzipped files, foreign, untraced and corrupt lines."""
    out = tmp_path_factory.mktemp("synth")
    res = generate(str(out), SynthConfig(traces=100, seed=5, corrupt_rate=0.02, noise_rate=0.05))
    assert any(f.endswith(".gz") for f in res.files)
    return res.files


@pytest.fixture(scope="module")
def loose_logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """No client span records and drifting clocks: the estimate brackets calls."""
    out = tmp_path_factory.mktemp("loose")
    config = SynthConfig(traces=500, seed=9, client_spans=False, drift_ppm=40.0, rate_per_s=2.0)
    return generate(str(out), config).files


@pytest.fixture(scope="module")
def orphan_logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Trace and span IDs but no parent IDs (OpenTelemetry logging, ECS,
    Datadog): calls and clocks are inferred from containment."""
    out = tmp_path_factory.mktemp("orphans")
    return generate(str(out), SynthConfig(traces=400, seed=3, parent_ids=False)).files


@pytest.fixture(scope="module")
def tail_logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Real services without parent IDs whose callees log after answering
    (a background task): links judged without the callees' last line."""
    from test_tree_inferred_servers import _chain

    logs = _chain(tmp_path_factory.mktemp("tails"), 30.0, background_ms=5.0)
    return [str(path) for path in sorted(logs.iterdir())]


def _line(ts: str, trace: str | None, span: str | None, parent: str | None, msg: str) -> bytes:
    record: dict[str, Any] = {"timestamp": ts, "message": msg}
    if trace:
        record.update(trace_id=trace, span_id=span, parent_span_id=parent)
    return json.dumps(record).encode()


@pytest.fixture(scope="module")
def hostile_logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Lines that are not what they look like, line breaks of every kind, a
    last line without its newline, and lines without a trace."""
    out = tmp_path_factory.mktemp("hostile")
    front = out / "front.log"
    front.write_bytes(
        b"\n".join(
            [
                _line("2026-01-01T00:00:00.000Z", TRACE, "a1", None, "start"),
                b"plain text without any id",
                b"\xff\xfe binary \x00 bytes trace_id=" + TRACE.encode(),
                b'{"timestamp": "2026-01-01T00:00:00.5Z", "trace_id": "' + OTHER.encode(),
                b"",
                b"   ",
                _line("2026-01-01T00:00:01.000Z", OTHER, "b1", None, "other \u2028 sep"),
                b'{"deep": ' + b"[" * 300 + b"]" * 300 + b"}",
                b"level=info trace_id=" + TRACE.encode() + b" span_id=a2 msg=logfmt",
                _line("2026-01-01T00:00:02.000Z", TRACE, "a1", None, "end") + b"\r",
                b"lone\rcarriage\rreturns",
                b"x" * 70_000,
                b'{"timestamp": "not a time", "trace_id": "' + TRACE.encode() + b'"}',
            ]
        )
        + b"\n"
        + _line("2026-01-01T00:00:03.000Z", None, None, None, "no trace")
        + b'\n{"cut'
    )
    back = out / "back.log"
    back.write_bytes(
        b"\n".join(
            [
                _line("2026-01-01T00:00:00.300Z", TRACE, "c1", "a1", "called"),
                _line("2026-01-01T00:00:01.200Z", OTHER, "d1", "b1", "called too"),
                b"\xc3\x28 invalid utf-8",
                _line("2026-01-01T00:00:00.900Z", TRACE, "c1", "a1", "done"),
            ]
        )
        + b"\n"
    )
    return [str(front), str(back)]


def _local(paths: list[str], **kwargs: Any) -> tuple[bytes, Summary]:
    out = io.BytesIO()
    summary = stitch(paths, out, Options(**kwargs))
    return out.getvalue(), summary


def _spark(
    session: SparkSession, paths: Any, partitions: int = 3, **kwargs: Any
) -> tuple[bytes, Summary]:
    out = io.BytesIO()
    result = spark.stitch(session, paths, Options(**kwargs), partitions, out)
    if isinstance(result, Summary):
        return out.getvalue(), result
    result.close()
    return out.getvalue(), result.summary


def _same_summary(got: Summary, expected: Summary) -> None:
    assert (got.files, got.records, got.traces, got.written_traces) == (
        expected.files,
        expected.records,
        expected.traces,
        expected.written_traces,
    )
    assert (got.unattributed, got.unparseable) == (expected.unattributed, expected.unparseable)
    assert got.offsets_ms == expected.offsets_ms
    assert got.drift_ppm == expected.drift_ppm
    assert sorted(got.warnings) == sorted(expected.warnings)


class TestSameBytes:
    def test_synthetic_logs(self, session: SparkSession, synth_logs: list[str]) -> None:
        expected, summary = _local(synth_logs, format="jsonl")
        got, spark_summary = _spark(session, synth_logs, format="jsonl")
        assert expected.count(b"\n") > 10_000
        assert b'"reason":' in expected  # unattributed lines are in it
        assert got == expected
        _same_summary(spark_summary, summary)

    def test_bracketed_calls_and_drift(self, session: SparkSession, loose_logs: list[str]) -> None:
        expected, summary = _local(loose_logs, format="jsonl")
        assert any(v != 0.0 for v in summary.drift_ppm.values())
        got, spark_summary = _spark(session, loose_logs, partitions=2, format="jsonl")
        assert got == expected
        _same_summary(spark_summary, summary)

    def test_calls_inferred_from_containment(
        self, session: SparkSession, orphan_logs: list[str]
    ) -> None:
        expected, summary = _local(orphan_logs, format="jsonl")
        assert any(v != 0.0 for v in summary.offsets_ms.values())
        assert b'"parent_inferred":true' in expected
        got, spark_summary = _spark(session, orphan_logs, partitions=3, format="jsonl")
        assert got == expected
        _same_summary(spark_summary, summary)
        assert spark_summary.notes == summary.notes

    def test_callees_that_log_after_answering(
        self, session: SparkSession, tail_logs: list[str]
    ) -> None:
        expected, summary = _local(tail_logs, format="jsonl")
        assert abs(summary.offsets_ms["inventory"] - summary.offsets_ms["gateway"] - 30.0) < 1.0
        got, spark_summary = _spark(session, tail_logs, partitions=2, format="jsonl")
        assert got == expected
        _same_summary(spark_summary, summary)
        assert spark_summary.notes == summary.notes

    def test_calls_placed_by_their_caller_records(self, session: SparkSession) -> None:
        """Gathered calls with shifted clocks, bounded by the caller's records
        at the same positions in every trace: summed per partition."""
        captured = Path(__file__).parent / "captured" / "otel_fan_out_shifted_apart"
        logs = sorted(str(path) for path in captured.iterdir())
        expected, summary = _local(logs, format="jsonl")
        assert abs(summary.offsets_ms["orders"] - summary.offsets_ms["gateway"] - 27.0) < 1.0
        got, spark_summary = _spark(session, logs, partitions=3, format="jsonl")
        assert got == expected
        _same_summary(spark_summary, summary)
        assert spark_summary.notes == summary.notes

    def test_hostile_lines(self, session: SparkSession, hostile_logs: list[str]) -> None:
        expected, summary = _local(hostile_logs, format="jsonl")
        assert summary.unparseable >= 3 and summary.unattributed >= 3
        lines = [json.loads(line) for line in expected.split(b"\n")[:-1]]
        long = [r["line"] for r in lines if r["record"] == {"message": "x" * 70_000}]
        assert long == [14]  # lone carriage returns end lines too
        got, spark_summary = _spark(session, hostile_logs, partitions=5, format="jsonl")
        assert got == expected
        _same_summary(spark_summary, summary)

    def test_byte_ranges_of_large_files(
        self, session: SparkSession, synth_logs: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        expected, _ = _local(synth_logs, format="jsonl", jobs=1)
        monkeypatch.setattr(_plan, "CHUNK", 64 << 10)  # planned on the driver
        sources = _plan.expand_paths(synth_logs, "")
        assert len(_plan.plan_tasks(sources, 2)) > len(sources) + 3
        assert _spark(session, synth_logs, format="jsonl")[0] == expected


class TestFilteredRuns:
    @pytest.mark.parametrize("fmt", ["text", "html"])
    def test_one_trace(self, session: SparkSession, hostile_logs: list[str], fmt: str) -> None:
        expected, summary = _local(hostile_logs, format=fmt, traces=[TRACE])
        got, spark_summary = _spark(session, hostile_logs, format=fmt, traces=[TRACE])
        assert TRACE.encode() in expected
        assert OTHER.encode() not in expected
        assert got == expected
        _same_summary(spark_summary, summary)

    @pytest.mark.parametrize(("fmt", "errors"), [("jsonl", True)])
    def test_a_time_window(
        self, session: SparkSession, synth_logs: list[str], fmt: str, errors: bool
    ) -> None:
        whole, _ = _local(synth_logs, format="jsonl")
        times = sorted(json.loads(line)["timestamp"] or "" for line in whole.split(b"\n")[:-1])
        kwargs: dict[str, Any] = {
            "format": fmt,
            "since": parse_timestamp(times[len(times) // 3]),
            "errors_only": errors,
        }
        expected, summary = _local(synth_logs, **kwargs)
        assert 0 < summary.written_traces < summary.traces
        got, spark_summary = _spark(session, synth_logs, **kwargs)
        assert got == expected
        _same_summary(spark_summary, summary)

    def test_text_of_a_whole_run_is_refused(
        self, session: SparkSession, synth_logs: list[str]
    ) -> None:
        with pytest.raises(ValueError, match="filtered runs only"):
            spark.stitch(session, synth_logs, Options(format="text"), out=io.BytesIO())


class TestOutputs:
    def test_binary_file_frame_reads_the_same_lines(
        self, session: SparkSession, hostile_logs: list[str]
    ) -> None:
        folder = str(Path(hostile_logs[0]).parent)
        expected, _ = _local([folder], format="jsonl")  # the files in name order
        frame = session.read.format("binaryFile").load(folder)
        got, summary = _spark(session, frame, format="jsonl")
        uri = frame.select("path").first()[0].rpartition("/")[0]  # type: ignore[index]
        assert uri.startswith("file:")
        assert got.replace(f'"file":"{uri}/'.encode(), f'"file":"{folder}/'.encode()) == expected
        assert summary.files == 2

    def test_part_files_and_records(
        self, session: SparkSession, synth_logs: list[str], tmp_path: Path
    ) -> None:
        expected, _ = _local(synth_logs, format="jsonl")
        result = spark.stitch(session, synth_logs, Options(format="jsonl"), 3)
        assert isinstance(result, spark.Stitched)
        try:
            result.write_parts(str(tmp_path / "parts"))
            parts = sorted((tmp_path / "parts").glob("part-*"))
            assert len(parts) > 1
            written = [line for p in parts for line in p.read_bytes().split(b"\n")[:-1]]
            assert sorted(written) == sorted(expected.split(b"\n")[:-1])
            # Each part file is in the merged order of its own traces.
            order = {line: k for k, line in enumerate(expected.split(b"\n")[:-1])}
            for p in parts:
                at = [order[line] for line in p.read_bytes().split(b"\n")[:-1]]
                assert at == sorted(at)
            assert result.summary.written_traces == result.summary.traces > 0
            records = result.records()
            assert records.count() == expected.count(b"\n")
            untraced = records.where("trace_id is null").count()
            assert untraced == expected.count(b'"trace_id":null')
        finally:
            result.close()


class TestCommand:
    def test_engine_spark_writes_the_local_bytes(
        self, session: SparkSession, synth_logs: list[str], tmp_path: Path
    ) -> None:
        local, spark_out = tmp_path / "local.jsonl", tmp_path / "spark.jsonl"
        code, _ = run("stitch", "--format", "jsonl", "-o", str(local), *synth_logs)
        assert code == 0
        # The module's session is the one getOrCreate gives: no second JVM.
        code, err = run("stitch", "--engine", "spark", "-o", str(spark_out), *synth_logs)
        assert code == 0, err
        assert "traces" in err
        assert spark_out.read_bytes() == local.read_bytes()

    def test_engine_spark_refuses_text_of_a_whole_run(self, synth_logs: list[str]) -> None:
        code, err = run("stitch", "--engine", "spark", "--format", "text", *synth_logs)
        assert code == 2
        assert "filtered runs only" in err


def test_the_local_engine_never_loads_pyspark(synth_logs: list[str]) -> None:
    code = (
        "import io, sys\n"
        "from logtrace.stitch import Options, stitch\n"
        f"stitch({synth_logs!r}, io.BytesIO(), Options(format='jsonl'))\n"
        "assert not [m for m in sys.modules if m.startswith(('pyspark', 'py4j'))]\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
