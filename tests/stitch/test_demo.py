"""``logtrace demo``: real services, real logs, nothing left running, on Ctrl-C too."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _exportcheck import check_jaeger, check_zipkin, otlp_spans, parse_otlp, tags
from _stitchutil import REPO, run

PID = re.compile(r"^\s+(gateway|orders|inventory)\s+http://127\.0\.0\.1:\d+\s+pid (\d+)", re.M)


def _start(directory: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "logtrace", "demo", "--dir", str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=str(REPO),
    )


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _assert_all_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 5
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if not _gone(p)] == [], "a service outlived the demo"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, float]:
    """One whole run: its directory, its output and how long it took."""
    directory = tmp_path_factory.mktemp("demo")
    began = time.monotonic()
    process = _start(directory)
    output, _ = process.communicate(timeout=90)
    took = time.monotonic() - began
    assert process.returncode == 0, output
    pids = [int(pid) for _, pid in PID.findall(output)]
    assert len(pids) == 3, output
    _assert_all_gone(pids)
    return directory, output, took


@pytest.mark.timeout(180)
class TestDemo:
    def test_it_runs_in_under_30_seconds_and_says_where_everything_is(
        self, demo: tuple[Path, str, float]
    ) -> None:
        directory, output, took = demo
        assert took < 30, f"the demo took {took:.1f} s"
        assert "the story of one failing checkout (item 13)" in output
        assert "started in inventory db.select: logtrace.demo.services.StockError" in output
        assert "started in orders price order: ValueError" in output
        assert "36 answered: 28 ok, 8 failed" in output
        for name in ("gateway", "orders", "inventory"):
            log = directory / "logs" / f"{name}.jsonl"
            assert str(log.parent) in output
            lines = [json.loads(x) for x in log.read_text().splitlines()]
            assert {r["service"] for r in lines} == {name}
            assert any(r.get("logger") == "logtrace.span" for r in lines)
        report = directory / "report.html"
        assert str(report) in output and report.read_bytes().startswith(b"<!")

    def test_the_story_runs_through_all_three_services(self, demo: tuple[Path, str, float]) -> None:
        _, output, _ = demo
        story = output.split("stitched from 3 logs:")[1].split("outcomes by entry")[0]
        lines = [x for x in story.splitlines() if x.strip().startswith("+")]
        services = [x.split()[1] for x in lines]
        assert services[0] == "gateway" and {"orders", "inventory"} <= set(services)
        assert any("stock lookup failed for item 13" in x for x in lines)
        times = [float(x.split()[0].strip("+ms")) for x in lines]
        assert times == sorted(times)

    def test_the_exports_of_real_services_meet_their_formats(
        self, demo: tuple[Path, str, float]
    ) -> None:
        directory, _, _ = demo
        viewers = directory / "trace-viewers"
        jaeger = json.loads((viewers / "jaeger.json").read_text())
        check_jaeger(jaeger)
        check_zipkin(json.loads((viewers / "zipkin.json").read_text()))
        traces, logs = parse_otlp((viewers / "otlp.jsonl").read_bytes())
        assert len(traces) == 36 and len(logs) >= 36
        assert {svc for svc, _ in otlp_spans(traces)} == {"gateway", "orders", "inventory"}
        assert "traceEvents" in json.loads((viewers / "perfetto.json").read_text())
        # A failing trace: the chain of parents from the failed query up to the gateway.
        failing = [
            t for t in jaeger["data"]
            if any(s["operationName"] == "db.select" and tags(s).get("error") for s in t["spans"])
        ]  # fmt: skip
        assert len(failing) == 5
        trace = failing[0]
        by_id = {s["spanID"]: s for s in trace["spans"]}
        process = {p: v["serviceName"] for p, v in trace["processes"].items()}
        span = next(s for s in trace["spans"] if s["operationName"] == "db.select")
        chain = []
        while True:
            chain.append(process[span["processID"]])
            refs = span["references"]
            if not refs:
                break
            span = by_id[refs[0]["spanID"]]
        assert chain[0] == "inventory" and chain[-1] == "gateway" and "orders" in chain


@pytest.mark.timeout(120)
@pytest.mark.parametrize("when", ["starting", "sending"])
def test_ctrl_c_stops_every_service(tmp_path: Path, when: str) -> None:
    """SIGINT to the demo alone (its services are in sessions of their own):
    it stops them, by PID, and exits 130."""
    with _start(tmp_path) as process:
        try:
            assert process.stdout is not None
            seen = ""
            pids: list[int] = []
            wanted = 1 if when == "starting" else 3
            while len(pids) < wanted or (when == "sending" and "sending" not in seen):
                line = process.stdout.readline()
                assert line, f"the demo ended early:\n{seen}"
                seen += line
                pids = [int(pid) for _, pid in PID.findall(seen)]
            assert all(not _gone(p) for p in pids)
            process.send_signal(signal.SIGINT)
            rest, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:  # it hung: stop it and its services
                process.kill()
    assert process.returncode == 130, seen + rest
    assert "interrupted" in rest
    pids = [int(pid) for _, pid in PID.findall(seen + rest)]
    _assert_all_gone(pids)


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    code, err = run("demo")
    assert code == 2
    assert "uvicorn" in err and 'pip install "pylogtrace[demo]"' in err
