"""A trace's heading (start, length) and the time column agree, and a line
timed to the millisecond or the second stretches its trace no further than
its interval requires; the clock summary names its reference and says what
bounds each clock; the JSON lines carry the keys docs/cli.md lists."""

from __future__ import annotations

import json
import math
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import KEYS, REPO, run, stitch_jsonl, stitch_text

from logtrace._stitch_command import _print_summary
from logtrace.stitch import Summary
from logtrace.stitch._model import clock_note
from logtrace.stitch._timeline import relative_ms
from logtrace.testing import SynthConfig, generate

REQUEST = "834cc97122ae940646a2fe69012eead3"  # fine lines and a whole-second access line
MILLIS = "49e36428ac2639acbc13565bf20fabdb"  # only millisecond lines
BEFORE = "5b0d3e2f1a4c4e8f9a7b6c5d4e3f2a1b"  # a millisecond line before the fine ones
LINE = re.compile(r"^\s+([+-]\S*)ms ")


def _json(ts: str, trace: str, span: str, message: str, service: str) -> str:
    return json.dumps(
        {"timestamp": ts, "level": "INFO", "message": message, "service": service}
        | {"trace_id": trace, "span_id": span}
    )


def _asctime(ts: str, trace: str, span: str, message: str) -> str:
    return json.dumps(
        {"asctime": ts, "levelname": "INFO", "name": "app", "message": message}
        | {"otelTraceID": trace, "otelSpanID": span, "otelServiceName": "clerk"}
    )


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("extent")
    (d / "app.jsonl").write_text(
        "\n".join(
            [
                _json("2026-12-06T05:14:45.939675Z", REQUEST, "a1", "request", "app"),
                _json("2026-12-06T05:14:45.953592Z", REQUEST, "a1", "calling", "app"),
                _json("2026-12-06T05:14:46.216703Z", REQUEST, "a1", "answered", "app"),
                _json("2026-12-06T05:20:00.950123Z", BEFORE, "b1", "late start", "app"),
                _json("2026-12-06T05:20:00.960456Z", BEFORE, "b1", "late end", "app"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    access = '127.0.0.1 - - [06/Dec/2026:05:14:{:02d} +0000] "GET /flask/0 HTTP/1.1" 200 8 '
    (d / "app-access.log").write_text(
        access.format(45)
        + f"traceparent=00-{REQUEST}-3adc61cce5c6280d-03\n"
        # More whole seconds, so that the file reads as one of whole seconds.
        + "".join(access.format(50 + k) + "\n" for k in range(5)),
        encoding="utf-8",
    )
    (d / "clerk.log").write_text(
        "\n".join(
            [
                _asctime("2026-12-06 05:12:51,290", MILLIS, "c1", "received"),
                _asctime("2026-12-06 05:12:51,290", MILLIS, "c1", "calling"),
                _asctime("2026-12-06 05:12:51,320", MILLIS, "c1", "answered"),
                _asctime("2026-12-06 05:20:00,900", BEFORE, "c2", "early"),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return d


@pytest.fixture(scope="module")
def text(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    return stitch_text(logs, tmp_path_factory.mktemp("text") / "out.txt")


def traces(text: str) -> dict[str, tuple[str, float, list[tuple[float, str]]]]:
    """Per trace: the heading's start and length, and each line's time and text."""
    out = {}
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        m = re.match(r"trace (\S+)  (\S+)  ([\d.]+) ms$", lines[0])
        if m:
            shown = [(float(t), line) for line in lines[1:] for t in LINE.findall(line)]
            out[m[1]] = (m[2], float(m[3]), shown)
    return out


class TestHeadingAndTimeColumn:
    def test_a_whole_second_line_does_not_stretch_a_finely_timed_request(self, text: str) -> None:
        start, length, lines = traces(text)[REQUEST]
        assert start == "2026-12-06T05:14:45.939675Z"
        assert length == pytest.approx(277.028)
        (access,) = [t for t, line in lines if "GET /flask/0" in line]
        assert access == 0.0  # its second holds the request's start

    def test_a_millisecond_trace_starts_at_its_first_line(self, text: str) -> None:
        start, length, lines = traces(text)[MILLIS]
        assert start == "2026-12-06T05:12:51.290000Z"
        assert length == pytest.approx(30.0)
        assert [t for t, _ in lines] == [0.0, 0.0, 30.0]

    def test_a_millisecond_line_before_the_fine_ones_stretches_only_to_its_end(
        self, text: str
    ) -> None:
        start, length, lines = traces(text)[BEFORE]
        # ,900 lasts until .901: the trace need not start before.
        assert start == "2026-12-06T05:20:00.901000Z"
        assert length == pytest.approx(59.456)
        assert sorted(t for t, _ in lines) == pytest.approx([0.0, 49.123, 59.456])

    def test_every_line_is_inside_its_heading(self, text: str) -> None:
        found = traces(text)
        assert len(found) == 3
        for _, length, lines in found.values():
            times = [t for t, _ in lines]
            assert min(times) == 0.0 and max(times) == pytest.approx(length)
        assert "+-" not in text

    def test_traces_come_out_by_the_start_shown(self, text: str) -> None:
        starts = [start for start, _, _ in traces(text).values()]
        assert starts == sorted(starts)

    def test_the_html_heading_and_times_agree_with_the_text(
        self, logs: Path, tmp_path: Path
    ) -> None:
        out = tmp_path / "out.html"
        code, err = run("stitch", "-q", "--format", "html", "-o", str(out), str(logs))
        assert code == 0, err
        page = out.read_text(encoding="utf-8")
        assert '<span class="when">2026-12-06T05:14:45.939675Z</span>' in page
        assert '<span class="dur">277.028 ms</span>' in page
        assert '<span class="t">+-' not in page and '<span class="t">-' not in page


class TestRelativeTimes:
    @pytest.mark.parametrize(
        ("seconds", "shown"),
        [(-0.0005, "-0.500ms"), (0.0, "+0.000ms"), (-0.0, "+0.000ms"), (0.004402, "+4.402ms")],
    )
    def test_a_sign_is_written_once(self, seconds: float, shown: str) -> None:
        assert relative_ms(seconds) == shown

    def test_an_unknown_time_shows_nothing(self) -> None:
        assert relative_ms(math.nan) == ""


def _skewed(directory: Path) -> Path:
    """The two-service example with inventory's clock 40 ms ahead (docs/stitching.md)."""
    shutil.copytree(REPO / "examples" / "two_services" / "logs", directory)
    path = directory / "inventory.jsonl"
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        for key in ("timestamp", "span.start"):
            if key in record:
                t = datetime.fromisoformat(record[key].replace("Z", "+00:00"))
                record[key] = (t + timedelta(milliseconds=40)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


class TestClockSummary:
    def test_the_reference_is_named_when_offsets_are_not_zero(self, tmp_path: Path) -> None:
        logs = _skewed(tmp_path / "skewed")
        code, err = run("stitch", "-o", str(tmp_path / "out.txt"), str(logs))
        assert code == 0, err
        (line,) = [x for x in err.splitlines() if "clock offsets applied" in x]
        assert "clock offsets applied (ahead of storefront's clock) [" in line
        assert "storefront +0.000 ms (reference)" in line
        offset = float(re.search(r"inventory ([+-][\d.]+) ms", line)[1])  # type: ignore[index]
        assert 35 < offset < 45

    def test_a_clock_nothing_bounds_says_so(self) -> None:
        assert clock_note(0.0, -math.inf, math.inf) == "+0.000 ms [no calls bound it]"
        assert clock_note(0.0, -math.inf, 1.888) == "+0.000 ms [-inf, +1.888]"
        assert clock_note(0.0, 0.0, 0.0) == "+0.000 ms (reference)"

    def test_one_sided_bounds_are_told_from_none(self, capsys: pytest.CaptureFixture[str]) -> None:
        summary = Summary(
            offsets_ms={"gateway": 0.0, "leaf": 0.0, "access": 0.0, "orders": -0.96},
            offset_bounds_ms={
                "gateway": (0.0, 0.0),
                "leaf": (-math.inf, 1.216),
                "access": (-math.inf, math.inf),
                "orders": (-math.inf, 1.888),
            },
            uncorrected=["access", "leaf"],
        )
        assert summary.reference == "gateway"
        _print_summary(summary, True)
        err = capsys.readouterr().err
        assert "clock offsets applied (ahead of gateway's clock)" in err
        assert "access +0.000 ms [no calls bound it]" in err
        assert "orders -0.960 ms [-inf, +1.888]" in err
        assert "left uncorrected, no calls bound their clocks: access\n" in err
        assert "left uncorrected, calls bound their clocks on one side only: leaf\n" in err

    def test_without_a_reference_in_sight_none_is_named(self) -> None:
        summary = Summary(offsets_ms={"a": 0.0}, offset_bounds_ms={"a": (-1.0, 2.0)})
        assert summary.reference is None


def _documented_keys() -> set[str]:
    """The keys docs/cli.md's "JSON lines output" section names."""
    doc = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    section = doc.split("### JSON lines output", 1)[1].split("\nOrder:", 1)[0]
    return set(re.findall(r"`([a-z_]+)`", section)) - {"null", "true"}  # values, not keys


@pytest.fixture(scope="module")
def parentless(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The JSON lines of logs that name no parent (so parents are inferred)."""
    d = tmp_path_factory.mktemp("parentless")
    generate(str(d), SynthConfig(traces=60, seed=11, skew_ms=5.0, parent_ids=False))
    return stitch_jsonl(d / "out.jsonl", str(d / "logs"))


class TestJsonLinesKeys:
    def test_every_key_written_is_documented(self, parentless: list[dict[str, Any]]) -> None:
        documented = _documented_keys()
        assert documented >= KEYS
        assert documented - KEYS == {"parent_inferred", "reason", "mark"}
        for record in parentless:
            assert KEYS <= set(record) <= documented, set(record)

    def test_parent_inferred_stands_beside_an_inferred_parent_only(
        self, parentless: list[dict[str, Any]]
    ) -> None:
        flagged = [r for r in parentless if "parent_inferred" in r]
        assert flagged
        for record in flagged:
            assert record["parent_inferred"] is True and record["parent_span_id"] is not None
            keys = list(record)
            assert keys.index("parent_inferred") == keys.index("parent_span_id") + 1
