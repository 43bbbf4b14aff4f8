"""Spans whose logs name no parent: calls, clocks and the tree from containment.

The generator writes what OpenTelemetry's logging instrumentation, ECS and
Datadog logs carry (a trace and a span ID, no parent, no span records) and
knows every span's true parent and every clock's true offset.
"""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from logtrace.stitch import Options, Summary, stitch
from logtrace.stitch._clocks import ClockModel
from logtrace.stitch._containment import Links
from logtrace.stitch._linked_clocks import keep_loose
from logtrace.testing import SynthConfig, SynthResult, generate


def _stitch(logs: Path, out: Path, **options: Any) -> tuple[Summary, list[dict[str, Any]]]:
    with open(out, "wb") as fh:
        summary = stitch([str(logs)], fh, Options(format="jsonl", **options))
    return summary, [json.loads(line) for line in out.read_bytes().splitlines()]


def _truth(res: SynthResult) -> dict[str, str | None]:
    parents: dict[str, str | None] = {}
    with open(res.truth, encoding="utf-8") as fh:
        fh.readline()
        for line in fh:
            parents.update(json.loads(line)["parents"])
    return parents


@pytest.fixture(scope="module")
def parentless(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    cfg = SynthConfig(traces=200, seed=11, skew_ms=25.0, parent_ids=False)
    return generate(str(tmp_path_factory.mktemp("noparent")), cfg)


def test_the_generator_writes_no_parent(parentless: SynthResult) -> None:
    kinds: Counter[str] = Counter()
    for path in parentless.files:
        if path.endswith(".gz"):
            continue
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if "parent" in line or '"span.kind"' in line:
                pytest.fail(f"a parent or a span record in {path}: {line}")
            for key in ('"trace":{"id"', '"otelTraceID"', '"dd.trace_id"'):
                kinds[key] += key in line
    assert all(kinds.values()) and len(kinds) == 3, kinds
    parents = _truth(parentless)
    assert sum(p is None for p in parents.values()) == 200  # one root per trace


def test_calls_clocks_and_tree_are_inferred(parentless: SynthResult, tmp_path: Path) -> None:
    summary, out = _stitch(Path(parentless.files[0]).parent, tmp_path / "out.jsonl")
    (note,) = summary.notes
    assert note.startswith("parents inferred from containment"), note

    # Clocks: every offset within 1 ms of the truth, measured against the
    # reference the summary names (its interval zero both ways).
    assert summary.reference is not None
    assert summary.offset_bounds_ms[summary.reference] == (0.0, 0.0)
    true = parentless.offsets_s
    for name, ms in summary.offsets_ms.items():
        want = (true[name] - true["gateway"]) * 1e3
        assert abs(ms - summary.offsets_ms["gateway"] - want) < 1.0, (name, ms, want)

    # Tree: the parent inferred for nearly every span is its true parent, and marked.
    truth = _truth(parentless)
    heads = {r["span_id"]: r for r in out if r["span_id"] is not None}
    right = sum(truth[s] == r["parent_span_id"] for s, r in heads.items())
    assert right >= 0.85 * len(heads), (right, len(heads))
    for span, rec in heads.items():
        if truth[span] is None:
            assert rec["depth"] == 0 and rec["parent_span_id"] is None
            assert "parent_inferred" not in rec
        elif rec["parent_span_id"] is not None:
            assert rec["parent_inferred"] is True and rec["depth"] >= 1


def test_partitions_change_nothing(parentless: SynthResult, tmp_path: Path) -> None:
    logs = Path(parentless.files[0]).parent
    whole, _ = _stitch(logs, tmp_path / "whole.jsonl")
    parts, _ = _stitch(logs, tmp_path / "parts.jsonl", partitions=3)
    assert (tmp_path / "whole.jsonl").read_bytes() == (tmp_path / "parts.jsonl").read_bytes()
    assert whole.notes == parts.notes and whole.offsets_ms == parts.offsets_ms


def test_too_few_traces_infer_nothing(tmp_path: Path) -> None:
    res = generate(str(tmp_path), SynthConfig(traces=3, seed=2, parent_ids=False))
    summary, out = _stitch(tmp_path / "logs", tmp_path / "out.jsonl")
    (note,) = summary.notes
    assert note.startswith(
        "spans whose parent is not logged: no calls inferred (fewer than 8 traces"
    )
    assert set(summary.offsets_ms.values()) == {0.0}
    traced = [r for r in out if r["trace_id"] is not None]
    assert traced and all(r["depth"] == 0 and "parent_inferred" not in r for r in traced)
    assert len({r["trace_id"] for r in traced}) == res.traces


def _ecs(ts: float, service: str, trace: int, span: int, message: str) -> str:
    stamp = f"2026-03-01T10:00:{ts:09.6f}Z"
    return json.dumps(
        {
            "@timestamp": stamp,
            "log.level": "info",
            "message": message,
            "service": {"name": service},
            "trace": {"id": f"{trace + 1:032x}"},
            "span": {"id": f"{span + 1:016x}"},
        }
    )


def test_spans_that_merely_overlap_infer_nothing(tmp_path: Path) -> None:
    """Two services whose spans overlap one way in some traces and the other
    way in as many: no call between them is believable."""
    logs = tmp_path / "logs"
    logs.mkdir()
    lines: dict[str, list[str]] = {"a": [], "b": []}
    for t in range(24):
        base = t * 0.5
        outer, inner = ("a", "b") if t % 2 else ("b", "a")
        for name, start, end in ((outer, base, base + 0.010), (inner, base + 0.002, base + 0.006)):
            span = 2 * t + (name == "b")
            lines[name].append(_ecs(start, name, t, span, "start"))
            lines[name].append(_ecs(end, name, t, span, "end"))
    for name, text in lines.items():
        (logs / f"{name}.log").write_text("\n".join(text) + "\n", encoding="utf-8")
    summary, out = _stitch(logs, tmp_path / "out.jsonl")
    assert summary.notes == [
        "spans whose parent is not logged: no calls inferred (containment inconsistent for a/b)"
    ]
    assert all("parent_inferred" not in r and r["depth"] == 0 for r in out)


def test_logs_with_parent_ids_are_left_alone(tmp_path: Path) -> None:
    generate(str(tmp_path), SynthConfig(traces=40, seed=5, client_spans=False))
    summary, out = _stitch(tmp_path / "logs", tmp_path / "out.jsonl")
    assert summary.notes == []
    assert not any("parent_inferred" in r for r in out)


@pytest.fixture(scope="module")
def parallel_branches(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    """Enough traces that parallel calls often put a callee inside a span
    of another branch as well as inside its true caller's."""
    cfg = SynthConfig(traces=1600, seed=7, skew_ms=25.0, parent_ids=False)
    return generate(str(tmp_path_factory.mktemp("branches")), cfg)


def test_offsets_recovered_to_tens_of_microseconds(
    parallel_branches: SynthResult, tmp_path: Path
) -> None:
    """Calls whose caller is in doubt (a span of a parallel branch contains
    the callee too) bound no clock: every offset within 30 µs of the truth."""
    summary, _ = _stitch(Path(parallel_branches.files[0]).parent, tmp_path / "out.jsonl")
    true = parallel_branches.offsets_s
    got = summary.offsets_ms
    errors = {
        name: round((ms - got["gateway"]) * 1e3 - (true[name] - true["gateway"]) * 1e6, 1)
        for name, ms in got.items()
    }
    assert all(abs(us) < 30 for us in errors.values()), errors


@pytest.mark.parametrize("seed", [1, 3, 11])
def test_one_clock_applies_no_offset(tmp_path: Path, seed: int) -> None:
    """Services on one clock: the calls are inferred, every offset is exactly
    zero (these seeds once made containment invent skews of 0.1 to 7 ms)."""
    generate(str(tmp_path), SynthConfig(traces=300, seed=seed, skew_ms=0.0, parent_ids=False))
    summary, out = _stitch(tmp_path / "logs", tmp_path / "out.jsonl")
    (note,) = summary.notes
    assert note.startswith("parents inferred from containment"), note
    assert "one clock" in note, note
    assert set(summary.offsets_ms.values()) == {0.0}, summary.offsets_ms
    assert any(r.get("parent_inferred") for r in out)


def test_skewed_clocks_are_not_taken_for_one(tmp_path: Path) -> None:
    """Clocks ±1 ms apart push callees out of their callers: not one clock."""
    generate(str(tmp_path), SynthConfig(traces=200, seed=11, skew_ms=1.0, parent_ids=False))
    summary, _ = _stitch(tmp_path / "logs", tmp_path / "out.jsonl")
    (note,) = summary.notes
    assert note.startswith("parents inferred from containment"), note
    assert "one clock" not in note, note
    assert set(summary.offsets_ms.values()) != {0.0}, summary.offsets_ms


@pytest.mark.parametrize("seed", [1, 11])
def test_links_most_traces_agree_on_come_first(tmp_path: Path, seed: int) -> None:
    """A pair of services whose spans fit together at a wrong offset in a few
    dozen traces (a service called from two others) bounds that offset
    tightly; the links of every trace must still decide (these seeds were
    off by 5 and 7 ms when the tightest links came first)."""
    res = generate(
        str(tmp_path), SynthConfig(traces=300, seed=seed, skew_ms=25.0, parent_ids=False)
    )
    summary, _ = _stitch(tmp_path / "logs", tmp_path / "out.jsonl")
    true, got = res.offsets_s, summary.offsets_ms
    for name, ms in got.items():
        want = (true[name] - true["gateway"]) * 1e3
        assert abs(ms - got["gateway"] - want) < 0.05, (name, ms, want)


def test_a_parallel_sibling_that_contains_a_callee(tmp_path: Path) -> None:
    """A callee of the gateway running beside a sibling branch whose span
    contains it is hung under the sibling (the shortest span around it); the
    sibling was busy with a call of its own meanwhile, and the gateway could
    have made the call, so the call bounds no clock (it had put the pair
    about 0.2 ms off)."""
    res = generate(str(tmp_path), SynthConfig(traces=600, seed=3, skew_ms=25.0, parent_ids=False))
    summary, _ = _stitch(tmp_path / "logs", tmp_path / "out.jsonl")
    true, got = res.offsets_s, summary.offsets_ms
    for name, ms in got.items():
        want = (true[name] - true["gateway"]) * 1e3
        assert abs(ms - got["gateway"] - want) < 0.05, (name, ms, want)


@pytest.mark.parametrize("seed", [5, 15, 42])
def test_first_clocks_from_where_callees_fit(tmp_path: Path, seed: int) -> None:
    """Containment alone put these seeds' first clocks up to 1.3 ms off (its
    interval is lopsided by how long callers work before and after their
    calls), and the calls inferred and bracketed on them kept the error.
    Where each callee fits between its caller's records starts them within
    tens of microseconds; on seed 15 every call of inventory is in doubt, and
    inventory keeps that first offset rather than none."""
    res = generate(
        str(tmp_path), SynthConfig(traces=300, seed=seed, skew_ms=25.0, parent_ids=False)
    )
    summary, _ = _stitch(tmp_path / "logs", tmp_path / "out.jsonl")
    true, got = res.offsets_s, summary.offsets_ms
    errors = {
        name: round((ms - got["gateway"]) * 1e3 - (true[name] - true["gateway"]) * 1e6, 1)
        for name, ms in got.items()
    }
    assert all(abs(us) < 30 for us in errors.values()), errors
    assert not summary.uncorrected, summary.uncorrected


def test_ecs_lines_to_the_millisecond(tmp_path: Path) -> None:
    """ecs-logging writes ``@timestamp`` to the millisecond. Such a line was
    written some time within its millisecond: containment, the record gaps
    and the bracketing take it as that interval. Taken as a point, a caller
    line read as "before the callee" while its millisecond was not, and
    every offset moved by up to half of it (users was 1.7 ms off)."""
    res = generate(str(tmp_path), SynthConfig(traces=600, seed=5, skew_ms=25.0, parent_ids=False))
    micro = re.compile(rb'("@timestamp":"[0-9T:.-]{23})\d{3}Z"')
    coarse = 0
    for path in (tmp_path / "logs").iterdir():
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data, n = micro.subn(rb'\1Z"', fh.read())
        with opener(path, "wb") as fh:
            fh.write(data)
        coarse += n
    assert coarse > 1000
    summary, _ = _stitch(tmp_path / "logs", tmp_path / "out.jsonl")
    true, got = res.offsets_s, summary.offsets_ms
    errors = {
        name: round((ms - got["gateway"]) * 1e3 - (true[name] - true["gateway"]) * 1e6)
        for name, ms in got.items()
    }
    assert all(abs(us) < 150 for us in errors.values()), errors


class TestKeepLoose:
    """A service no inferred call bounds keeps the offset the links gave it."""

    GROUPS = dict.fromkeys(("db", "gateway", "pricing"), "db")
    """db, the group's first service, is the one the calls leave unbounded."""

    def test_measured_from_a_service_the_calls_bound(self) -> None:
        # The links put db 13.8 ms ahead of the gateway, pricing 6.3 ms
        # behind, all relative to db; the calls bound the gateway and
        # pricing, with the gateway at 0.
        previous = {
            "db": ClockModel(0.0),
            "gateway": ClockModel(-0.0138),
            "pricing": ClockModel(-0.0201),
        }
        solved = {
            "db": ClockModel(0.0),
            "gateway": ClockModel(0.0, low_s=0.0, high_s=0.0),
            "pricing": ClockModel(-0.0063, low_s=-0.008, high_s=-0.004),
        }
        links = Links(groups=self.GROUPS, offsets={"db": (0.0, 0.0), "pricing": (0.0, 1.0)})
        kept = keep_loose(solved, previous, links)
        assert kept["db"].offset_s == pytest.approx(0.0138)
        assert kept["gateway"] == solved["gateway"]
        assert kept["pricing"] == solved["pricing"]

    def test_bounded_less_than_the_links_keeps_its_offset(self) -> None:
        # The calls bound pricing across 69 ms, its middle 29 ms off the
        # links' first offset; containment allows it 8.5 ms either way.
        previous = {
            "db": ClockModel(0.0),
            "gateway": ClockModel(0.0),
            "pricing": ClockModel(-0.0273),
        }
        solved = {
            "db": ClockModel(0.0, low_s=0.0, high_s=0.0),
            "gateway": ClockModel(0.0, low_s=-0.001, high_s=0.001),
            "pricing": ClockModel(-0.0565, low_s=-0.091, high_s=-0.022),
        }
        links = Links(
            groups=self.GROUPS,
            offsets={"db": (0.0, 0.0), "gateway": (0.0, 0.002), "pricing": (-0.0265, 0.0085)},
        )
        kept = keep_loose(solved, previous, links)
        assert kept["pricing"].offset_s == pytest.approx(-0.0273)
        assert (kept["pricing"].low_s, kept["pricing"].high_s) == pytest.approx((-0.035, -0.022))
        assert kept["gateway"] == solved["gateway"]
        # Bounded as tightly as the links allow: the calls' offset stands.
        links = replace(links, offsets={**links.offsets, "pricing": (-0.0265, 0.035)})
        assert keep_loose(solved, previous, links)["pricing"] == solved["pricing"]

    def test_the_groups_first_service_is_judged_by_its_calls_alone(self) -> None:
        # On one clock the links measure pricing from db, the group's first
        # service, at 0 +/- 0: they say nothing of db's own clock, which the
        # calls bound 4.9 ms wide.
        solved = {
            "db": ClockModel(0.0, low_s=-0.0003, high_s=0.0046),
            "gateway": ClockModel(0.0, low_s=0.0, high_s=0.0),
            "pricing": ClockModel(0.0, low_s=-0.0027, high_s=0.0084),
        }
        links = Links(
            groups=self.GROUPS,
            offsets=dict.fromkeys(self.GROUPS, (0.0, 0.0)),
            allowed={"db": (0.0, 0.0), "gateway": (-0.003, 0.009), "pricing": (0.0003, 0.006)},
        )
        kept = keep_loose(solved, dict.fromkeys(self.GROUPS, ClockModel(0.0)), links)
        assert kept["db"] == solved["db"]

    def test_none_bounded_keeps_every_offset(self) -> None:
        previous = {name: ClockModel(k * 0.001) for k, name in enumerate(self.GROUPS)}
        solved = {name: ClockModel(0.0) for name in self.GROUPS}
        links = Links(groups=self.GROUPS, offsets=dict.fromkeys(self.GROUPS, (0.0, 1.0)))
        kept = keep_loose(solved, previous, links)
        assert {k: m.offset_s for k, m in kept.items()} == pytest.approx(
            {"db": 0.0, "gateway": 0.001, "pricing": 0.002}
        )
