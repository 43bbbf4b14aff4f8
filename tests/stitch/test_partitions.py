"""Big inputs: a run cut into trace partitions writes what a run of one partition writes."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import REPO

from logtrace.stitch import (
    Options,
    Summary,
    _calls,
    _pipeline,
    _plan,
    _scan,
    _spool,
    _stage,
    stitch,
)
from logtrace.stitch._partition import partition_count, partition_of_traces
from logtrace.testing import SynthConfig, generate

TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"


def _run(paths: list[str], **kwargs: object) -> tuple[bytes, Summary]:
    out = io.BytesIO()
    summary = stitch(paths, out, Options(**kwargs))  # type: ignore[arg-type]
    return out.getvalue(), summary


def _same(paths: list[str], count: int, **kwargs: object) -> bytes:
    whole, expected = _run(paths, **kwargs)
    cut, got = _run(paths, partitions=count, **kwargs)
    assert cut == whole
    assert got == expected
    return whole


@pytest.fixture(scope="module")
def synth_logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Skewed clocks, rotated and gzipped files, foreign, untraced and corrupt lines."""
    out = tmp_path_factory.mktemp("synth")
    res = generate(str(out), SynthConfig(traces=400, seed=5, corrupt_rate=0.01, noise_rate=0.05))
    assert any(f.endswith(".gz") for f in res.files)
    return res.files


@pytest.fixture(scope="module")
def loose_logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """No client span records and drifting clocks: the estimate brackets calls."""
    out = tmp_path_factory.mktemp("loose")
    res = generate(
        str(out),
        SynthConfig(
            traces=500,
            seed=9,
            client_spans=False,
            drift_ppm=40.0,
            corrupt_rate=0.005,
            rate_per_s=2.0,
        ),
    )
    return res.files


class TestSameOutput:
    @pytest.mark.parametrize("count", [2, 7])
    @pytest.mark.parametrize("jobs", [1, 2])
    def test_synthetic_logs_give_the_same_bytes_and_summary(
        self, synth_logs: list[str], count: int, jobs: int
    ) -> None:
        out = _same(synth_logs, count, jobs=jobs)
        assert out.count(b"\n") > 20_000

    @pytest.mark.parametrize("count", [2, 5])
    def test_bracketed_calls_and_drift_give_the_same_clocks(
        self, loose_logs: list[str], count: int, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rounds = []
        bracket = _calls.bracket_partition
        estimates = []
        estimate = _calls.estimate_calls

        def counted(*args: Any, **kwargs: Any) -> Any:
            rounds.append(1)
            return bracket(*args, **kwargs)

        def estimated(*args: Any) -> Any:
            estimates.append(1)
            return estimate(*args)

        monkeypatch.setattr(_calls, "bracket_partition", counted)
        monkeypatch.setattr(_calls, "estimate_calls", estimated)
        whole, expected = _run(loose_logs)
        assert len(rounds) == 2  # one partition, two rounds
        assert len(estimates) == 3
        cut, got = _run(loose_logs, partitions=count)
        assert 2 < len(rounds) <= 2 + 2 * count
        assert len(estimates) == 6
        assert any(v != 0.0 for v in expected.drift_ppm.values())
        assert got.offsets_ms == expected.offsets_ms
        assert got.drift_ppm == expected.drift_ppm
        assert cut == whole

    @pytest.mark.parametrize("color", [False, True])
    @pytest.mark.parametrize("count", [2, 7])
    def test_text_blocks_give_the_same_bytes(
        self, synth_logs: list[str], count: int, color: bool
    ) -> None:
        out = _same(synth_logs, count, format="text", color=color)
        assert out.count(b"\ntrace ") + out.count(b"\n\x1b[1mtrace ") == 400
        assert out.count(b"lines without a trace") == 1

    @pytest.mark.parametrize("fmt", ["jsonl", "text"])
    @pytest.mark.parametrize("chunk", [(1, 1 << 20), (3, 1 << 20), (1 << 16, 2000)])
    def test_traces_merged_a_few_at_a_time(
        self,
        synth_logs: list[str],
        monkeypatch: pytest.MonkeyPatch,
        chunk: tuple[int, int],
        fmt: str,
    ) -> None:
        monkeypatch.setattr(_pipeline, "merge_chunk", lambda memory, count: chunk)
        _same(synth_logs, 5, format=fmt)

    @pytest.mark.parametrize("fmt", ["html", "chrome"])
    def test_pages_hold_only_the_selected_traces(
        self, synth_logs: list[str], monkeypatch: pytest.MonkeyPatch, fmt: str
    ) -> None:
        whole, _ = _run(synth_logs, format="jsonl")
        held = []
        group = _stage.group

        def spy(sources: Any, scans: Any, *args: Any) -> Any:
            table = group(sources, scans, *args)
            held.append(len(table.rows))
            return table

        monkeypatch.setattr(_stage, "group", spy)
        page = _same(synth_logs, 4, format=fmt, errors_only=True)
        # One table per partition for the clocks and one to choose the
        # traces, then one of just the chosen ones (the first run, of one
        # partition, holds one table).
        assert len(held) == 1 + 2 * 4 + 1
        assert held[-1] < whole.count(b"\n") // 3
        assert page.count(b"trace") > 10

    def test_the_partition_task_runs_in_another_process(
        self, synth_logs: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The per-partition work takes and returns plain data: pickled to a
        worker process and back, it writes what it writes in this one."""
        ran = []

        def elsewhere(*args: Any) -> Any:
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
                result = pool.submit(_partition_task, *args).result()
            ran.append(result)
            return result

        monkeypatch.setattr(_pipeline, "partition_task", elsewhere)
        _same(synth_logs, 3, format="text")
        assert len(ran) == 3

    def test_without_skew_correction(self, synth_logs: list[str]) -> None:
        _same(synth_logs, 3, skew_correction=False)

    @pytest.mark.parametrize(
        "filters",
        [
            {"errors_only": True},
            {"services": ["orders", "payments"]},
            {"traces": [TRACE_A]},
            {"since": 1_772_359_205.0, "until": 1_772_359_209.0},
            {"until": 1_772_359_203.0},
        ],
    )
    @pytest.mark.parametrize("fmt", ["jsonl", "text", "html", "chrome"])
    def test_filters_select_the_same_lines(
        self, synth_logs: list[str], filters: dict[str, object], fmt: str
    ) -> None:
        _same(synth_logs, 4, format=fmt, **filters)

    def test_more_partitions_than_traces(self, tmp_path: Path) -> None:
        path = tmp_path / "a.log"
        path.write_text(
            f'{{"timestamp":"2026-03-01T10:00:00.000001Z","trace_id":"{TRACE_A}","event":"x"}}\n'
            "no trace here\n"
        )
        out = _same([str(path)], 16)
        assert out.count(b"\n") == 2


def _partition_task(*args: Any) -> Any:
    """The pipeline's per-partition task as a fresh process has it."""
    return _pipeline.partition_task(*args)


def _line(ts: str, trace: str | None, span: str | None, parent: str | None, msg: str) -> str:
    record: dict[str, object] = {"timestamp": ts, "level": "info", "event": msg}
    if trace is not None:
        record["trace_id"] = trace
    if span is not None:
        record["span_id"] = span
    if parent is not None:
        record["parent_span_id"] = parent
    return json.dumps(record)


class TestCallCap:
    """Runs with more calls than the clock estimate keeps use a deterministic
    sample of traces' calls: bounded memory, nearly the same clocks."""

    def test_a_sample_of_calls_gives_nearly_the_same_clocks(
        self, synth_logs: list[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        whole, expected = _run(synth_logs)
        seen: list[int] = []
        estimate = _calls.estimate_calls

        def counted(c: Any, *args: Any) -> Any:
            seen.append(len(c.start))
            return estimate(c, *args)

        monkeypatch.setattr(_calls, "estimate_calls", counted)
        _run(synth_logs, partitions=3)
        every = seen.pop()
        assert every > 800  # more calls than the sample below keeps
        monkeypatch.setattr(_calls, "MIN_CALLS", 400)
        first, got = _run(synth_logs, partitions=3, memory=1 << 20)
        second, again = _run(synth_logs, partitions=3, memory=1 << 20)
        assert first == second and got == again  # the sample does not depend on chance
        assert seen and max(seen) <= 800
        assert got.records == expected.records
        assert first.count(b"\n") == whole.count(b"\n")  # every line still written
        for name, offset in expected.offsets_ms.items():
            assert got.offsets_ms[name] == pytest.approx(offset, abs=0.2), name

    def test_the_cap_follows_the_budget_above_a_floor(self) -> None:
        assert _calls.call_cap(1 << 20) == _calls.MIN_CALLS
        assert _calls.call_cap(64 << 30) > _calls.MIN_CALLS


class TestHostileInput:
    def test_one_span_id_in_many_traces_and_partitions(self, tmp_path: Path) -> None:
        lines = []
        for k in range(60):
            trace = f"{k + 1:032x}"
            ts = f"2026-03-01T10:00:{k % 60:02d}.000000Z"
            lines.append(_line(ts, trace, "00f067aa0ba902b7", None, "root"))
            lines.append(_line(ts, trace, "53995c3f42cd8ad8", "00f067aa0ba902b7", "child"))
        (tmp_path / "svc.log").write_text("\n".join(lines) + "\n")
        _same([str(tmp_path / "svc.log")], 6)

    def test_cycles_untimed_traces_and_odd_ids(self, tmp_path: Path) -> None:
        lines = [
            _line("2026-03-01T10:00:01.000000Z", TRACE_A, "a" * 16, "b" * 16, "cycle a"),
            _line("2026-03-01T10:00:00.000000Z", TRACE_A, "b" * 16, "a" * 16, "cycle b"),
            _line("not a time", TRACE_B, "c" * 16, None, "no time"),
            _line("2026-03-01T10:00:00.000000Z", "x" * 300, None, None, "long id"),
            _line("2026-03-01T10:00:00.000000Z", "request-7", "span-1", "span-0", "plain ids"),
            _line("2026-03-01T10:00:02.000000Z", "трасса-1", "追踪", None, "unicode ids"),
            _line("2026-03-01T10:00:02.000000Z", "trace\udcff", "s", None, "surrogate"),
            '{"timestamp": "2026-03-01T10:00:00Z", "trace_id": ',
            "\x00\x01 binary junk",
            "key=value trace_id=" + TRACE_B + " msg=logfmt",
        ]
        (tmp_path / "a.log").write_text("\n".join(lines) + "\n")
        with gzip.open(tmp_path / "b.log.1.gz", "wt") as f:
            f.write("\n".join(reversed(lines)) + "\n")
        (tmp_path / "empty.log").write_text("")
        paths = [str(tmp_path / n) for n in ("a.log", "b.log.1.gz", "empty.log")]
        for count in (2, 3, 9):
            _same(paths, count)
            _same(paths, count, format="text")

    @pytest.mark.parametrize(
        ("fmt", "filters"),
        [
            ("jsonl", {}),
            ("text", {}),
            ("html", {"since": 1_772_359_200.0}),
            ("chrome", {"until": 1_772_359_300.0}),
        ],
    )
    def test_partition_counts_one_two_and_seven_give_the_same_bytes(
        self, tmp_path: Path, fmt: str, filters: dict[str, object]
    ) -> None:
        """Whole and budgeted runs differ only in their partition count: hostile
        lines and lines without a trace are written the same with 1, 2 or 7."""
        lines = [
            _line(f"2026-03-01T10:00:{k % 60:02d}.{k:06d}Z", f"{k % 11 + 1:032x}",
                  f"{k + 1:016x}", f"{k:016x}" if k % 3 else None, f"m{k}")
            for k in range(200)
        ]  # fmt: skip
        lines += [
            "no trace here",
            "\x00\x01 binary junk",
            '{"timestamp": "2026-03-01T10:00:00Z", "trace_id": ',
            _line("2026-03-01T10:00:02.000000Z", "трасса-1", "追踪", None, "unicode ids"),
            _line("not a time", TRACE_B, "c" * 16, None, "no time"),
            "key=value trace_id=" + TRACE_A + " msg=logfmt",
        ]
        (tmp_path / "a.log").write_text("\n".join(lines) + "\n")
        (tmp_path / "b.log").write_text("\n".join(reversed(lines)) + "\n")
        paths = [str(tmp_path / "a.log"), str(tmp_path / "b.log")]
        outputs = {}
        for count in (1, 2, 7):
            out, summary = _run(paths, partitions=count, format=fmt, **filters)
            outputs[count] = (out, summary)
        assert outputs[1] == outputs[2] == outputs[7]
        assert outputs[1][1].unattributed >= 6
        assert outputs[1][0]

    @pytest.mark.parametrize("pure", ["", "1"])
    def test_scans_hand_out_segments_as_they_go(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: str
    ) -> None:
        monkeypatch.setenv("LOGTRACE_PURE_PYTHON", pure)
        monkeypatch.setattr(_scan, "SEGMENT_ROWS", 7)
        monkeypatch.setattr(_scan, "segment_block", lambda rows: 4096)
        lines = [
            _line(f"2026-03-01T10:00:{k % 60:02d}.000000Z", f"{k % 13 + 1:032x}", None, None, "m")
            for k in range(3000)
        ]
        with gzip.open(tmp_path / "svc.log.1.gz", "wt") as f:
            f.write("\n".join(lines) + "\n")
        # A last line still being written: reported as truncated, also when spilled.
        (tmp_path / "svc.log").write_text("\n".join(lines) + '\n{"timestamp": "2026-03-0')
        paths = [str(tmp_path / "svc.log.1.gz"), str(tmp_path / "svc.log")]

        spool = tmp_path / "spool"
        spool.mkdir()
        sources = _plan.expand_paths(paths, str(spool))
        segments = _scan.scan_spilled(_scan.plan_tasks(sources, 1), str(spool), 1)
        rows = {path: len(_spool.load_spilled(path)[0]) for _, path in segments if path is not None}
        # Each segment holds a few rows and only the IDs they use; the line
        # count (to number the next file's lines) is on each task's last one.
        # (The gzipped file is read a megabyte of compressed input at a time:
        # one block, one segment here.)
        assert len(segments) > 20
        assert sum(rows.values()) == 6001
        assert max(rows[p] for s, p in segments if p is not None and s.file == 1) < 100
        assert all(s.spooled_ids <= 13 for s, _ in segments)  # 13 traces, no spans
        assert [s.lines for s, _ in segments if s.lines] == [3000, 3001]
        out = _same(paths, 3)
        assert out.count(b"\n") == 6001
        assert out.endswith(b'"reason":"truncated line"}\n')

    def test_only_untraced_lines(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "noise.log"
        path.write_text("".join(f"line {i} without any id\n" for i in range(5000)))
        out = _same([str(path)], 4)
        assert out.count(b"\n") == 5000
        # Untraced lines are written a batch of scans at a time: one heading.
        paths = []
        for k in range(3):
            paths.append(str(tmp_path / f"noise{k}.log"))
            Path(paths[-1]).write_text("".join(f"{k} {i} no id\n" for i in range(20_000)))
        text = _same(paths, 4, format="text", memory=1 << 20)
        batches = []
        write = _pipeline.write

        def spy(r: Any, *args: Any, **kwargs: Any) -> Any:
            batches.append(len(r.order.rows))
            return write(r, *args, **kwargs)

        monkeypatch.setattr(_pipeline, "write", spy)
        assert _run(paths, partitions=4, format="text", memory=1 << 20)[0] == text
        assert [b for b in batches if b] == [20_000] * 3  # three batches
        assert text.count(b"lines without a trace") == 1
        assert text.count(b" no id\n") == 60_000

    def test_partitions_are_stable_and_spread(self) -> None:
        ids = [f"{k:032x}" for k in range(1000)]
        first = partition_of_traces(ids, 8)
        assert (first == partition_of_traces(ids, 8)).all()
        counts = [int((first == s).sum()) for s in range(8)]
        assert min(counts) > 80

    def test_partition_count_follows_the_budget(self) -> None:
        assert partition_count(1000, 1000, 512 << 20) == 1
        many = partition_count(10_000_000, 0, 128 << 20)
        assert many > partition_count(10_000_000, 0, 1 << 30) > 1
        # Distinct IDs take memory of their own: one per line needs more partitions.
        assert partition_count(10_000_000, 20_000_000, 128 << 20) > 2 * many


def _tree_memory(root: int) -> int:
    """Anonymous memory (proportional set size) of a process and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss_Anon:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def _peak_memory(argv: list[str], env: dict[str, str]) -> tuple[int, int]:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_memory(proc.pid))
        time.sleep(0.01)
    assert proc.stderr is not None
    proc.stderr.read()
    proc.stderr.close()
    return peak, proc.returncode


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc")
@pytest.mark.timeout(600)
def test_peak_memory_of_a_real_run_stays_within_the_budget(tmp_path: Path) -> None:
    res = generate(str(tmp_path / "big"), SynthConfig(target_bytes=250_000_000, seed=2))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    base = [sys.executable, "-m", "logtrace", "stitch", "--format", "jsonl", "--jobs", "1"]
    budget = 96 << 20
    allowance = 48 << 20  # interpreter, numpy and a scanned range before it goes to disk
    out_small = tmp_path / "small.jsonl"
    out_big = tmp_path / "big.jsonl"
    small, code = _peak_memory([*base, "--memory", "96M", "-o", str(out_small), *res.files], env)
    assert code == 0
    big, code = _peak_memory([*base, "--memory", "8G", "-o", str(out_big), *res.files], env)
    assert code == 0
    assert big > budget + allowance, "the input must be big enough to need count"
    assert small < budget + allowance, (small >> 20, big >> 20)
    # More scan workers than the budget holds: the run uses fewer.
    out_jobs = tmp_path / "jobs.jsonl"
    argv = [*base[:-2], "--jobs", "2", "--memory", "96M", "-o", str(out_jobs), *res.files]
    capped, code = _peak_memory(argv, env)
    assert code == 0
    assert capped < budget + allowance, (capped >> 20, big >> 20)
    assert _same_file(out_small, out_big)
    assert _same_file(out_jobs, out_small)


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux /proc")
@pytest.mark.timeout(600)
def test_peak_memory_with_a_trace_per_line_stays_within_the_budget(tmp_path: Path) -> None:
    """Distinct IDs cost memory of their own (strings, the tables that number
    them): a run where each line is a trace of its own is held to the budget
    too, in the scan, in each partition and in the merge."""
    path = tmp_path / "edge.log"
    with open(path, "w") as f:
        for chunk in range(6):
            f.writelines(
                f'{{"timestamp":"2026-03-01T10:{k // 60_000 % 60:02d}:{k // 1000 % 60:02d}.'
                f'{k % 1000:03d}001Z","level":"info","service":"edge","trace_id":"{k + 1:032x}",'
                f'"span_id":"{k + 1:016x}","event":"request handled"}}\n'
                for k in range(chunk * 100_000, (chunk + 1) * 100_000)
            )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    base = [sys.executable, "-m", "logtrace", "stitch", "--format", "jsonl", "--jobs", "1"]
    budget, allowance = 96 << 20, 48 << 20
    out_small = tmp_path / "small.jsonl"
    small, code = _peak_memory([*base, "--memory", "96M", "-o", str(out_small), str(path)], env)
    assert code == 0
    assert small < budget + allowance, small >> 20
    out_big = tmp_path / "big.jsonl"
    big, code = _peak_memory([*base, "--memory", "8G", "-o", str(out_big), str(path)], env)
    assert code == 0
    assert big > small
    assert _same_file(out_small, out_big)


def _same_file(one: Path, other: Path) -> bool:
    if one.stat().st_size != other.stat().st_size:
        return False
    with open(one, "rb") as a, open(other, "rb") as b:
        while True:
            x, y = a.read(1 << 24), b.read(1 << 24)
            if x != y:
                return False
            if not x:
                return True


def test_cli_with_forced_partitions_writes_the_same_file(
    tmp_path: Path, synth_logs: list[str]
) -> None:
    outputs = []
    for count in ("0", "3"):
        out = tmp_path / f"out{count}.jsonl"
        env = dict(os.environ, PYTHONPATH=str(REPO), LOGTRACE_STITCH_PARTITIONS=count)
        proc = subprocess.run(
            [sys.executable, "-m", "logtrace", "stitch", "-o", str(out), *synth_logs],
            env=env,
            capture_output=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append((out.read_bytes(), proc.stderr))
    assert outputs[0] == outputs[1]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX limits")
def test_more_partitions_than_the_open_file_limit_allows_at_first(
    tmp_path: Path, synth_logs: list[str]
) -> None:
    """The split has every partition's file open at once: the soft limit is raised."""
    import resource

    def low_limit() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    outputs = []
    for count in ("0", "300"):
        out = tmp_path / f"out{count}.txt"
        env = dict(os.environ, PYTHONPATH=str(REPO), LOGTRACE_STITCH_PARTITIONS=count)
        proc = subprocess.run(
            [sys.executable, "-m", "logtrace", "stitch", "--format", "text", "-o", str(out),
             *synth_logs],
            env=env,
            capture_output=True,
            check=False,
            timeout=300,
            preexec_fn=low_limit,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX limits")
def test_the_open_file_limit_is_put_back(tmp_path: Path) -> None:
    import resource

    path = tmp_path / "a.log"
    path.write_text(_line("2026-03-01T10:00:00.000001Z", TRACE_A, None, None, "x") + "\n")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = len(os.listdir("/proc/self/fd")) + 64 if os.path.isdir("/proc/self/fd") else 256
    if hard != resource.RLIM_INFINITY and hard < low + 400:
        pytest.skip("hard limit too low to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))
    try:
        _same([str(path)], 400)
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (low, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
