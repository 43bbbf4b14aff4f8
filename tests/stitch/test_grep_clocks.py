"""``logtrace grep``'s clock estimate from one trace: the stitch's evidence and rules.

The lines are as logtrace's middleware and logging setup write them on one
host: a server span record written after the answer (a background job ran
first) that states when the answer was complete, a text service whose times
are whole milliseconds and whose span record names no answer, hosts named in
the span records. On one clock grep applies no correction, and prints the
trace as the stitch does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from _stitchutil import cli, stitch_jsonl

from logtrace.stitch import grep
from logtrace.stitch._clocks import estimate_clocks
from logtrace.stitch._grep_calls import trace_calls
from logtrace.stitch._model import Source
from logtrace.stitch._parse import parse_line

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
T0 = 1_796_446_921.0  # 2026-12-05T05:02:01Z


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _asctime(t: float) -> str:
    """logging's asctime: the millisecond, truncated."""
    moment = datetime.fromtimestamp(t, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S,") + f"{moment.microsecond // 1000:03d}"


def _line(
    service: str, t: float, span: str, parent: str | None, message: str, **extra: object
) -> str:
    record: dict[str, object] = {
        "timestamp": _iso(t),
        "level": "INFO",
        "service": service,
        "logger": "logtrace.span" if "span.kind" in extra else f"{service}.app",
        "message": message,
        "trace_id": TRACE,
        "span_id": span,
    }
    if parent is not None:
        record["parent_span_id"] = parent
    record.update(extra)
    return json.dumps(record)


def _span(
    service: str, kind: str, start: float, end: float, host: str | None, **extra: object
) -> dict[str, object]:
    fields: dict[str, object] = {
        "span.kind": kind,
        "span.name": "GET",
        "span.start": _iso(start),
        "duration_ms": round((end - start) * 1e3, 3),
    }
    if host is not None:
        fields["host.name"] = host
    fields.update(extra)
    return fields


FRONT, CALL_JOB, CALL_ENTRY = "a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2", "c3c3c3c3c3c3c3c3"
JOB, ENTRY = "d4d4d4d4d4d4d4d4", "e5e5e5e5e5e5e5e5"


def _write(tmp_path: Path, host: str = "vm", worker_host: str = "vm") -> list[str]:
    """One checkout on one clock. ``worker`` answers 1.9 ms into its span
    but ends it 7 ms after ``front`` had the answer (its background job ran
    first): its span's end alone would put its clock about 10 ms ahead, as
    the first call's slow connection (13 ms from send to start) allows.
    ``ledger`` writes whole milliseconds: its first line reads 0.3 ms before
    the call was sent, and its span record, which states no answer, is
    written 2 ms after ``front`` had it (a contradiction: dropped)."""
    t = T0 + 0.0101
    front = [
        _line("front", t, FRONT, None, "checkout start"),
        _line("front", t + 0.0332, FRONT, None, "job queued"),
        _line("front", t + 0.0331, FRONT, None, "HTTP Request: GET /entry"),
        _span_line("front", t + 0.0100, t + 0.0330, CALL_JOB, host),
        _span_line("front", t + 0.0335, t + 0.0400, CALL_ENTRY, host),
        _line("front", t + 0.0402, FRONT, None, "checkout done"),
        _line("front", t + 0.0410, FRONT, None, "server POST /checkout",
              **_span("front", "server", t, t + 0.041, host, response_ms=40.5)),
    ]  # fmt: skip
    start = t + 0.0230  # 13 ms after the send: the first call opened a connection
    worker = [
        _line("worker", start + 0.0001, JOB, CALL_JOB, "job accepted"),
        _line("worker", t + 0.0395, JOB, CALL_JOB, "background job done"),
        _line("worker", t + 0.0400, JOB, CALL_JOB, "server GET /job",
              **_span("worker", "server", start, t + 0.0400, worker_host, response_ms=1.9)),
    ]  # fmt: skip
    ledger = [
        f"{_asctime(t + 0.0338)} INFO service=ledger trace_id={TRACE} span_id={ENTRY} "
        f"parent_span_id={CALL_ENTRY} entry written",
        f"{_asctime(t + 0.0380)} INFO service=ledger trace_id={TRACE} span_id={ENTRY} "
        f"parent_span_id={CALL_ENTRY} entry committed",
        f"{_asctime(t + 0.0420)} INFO service=ledger trace_id={TRACE} span_id={ENTRY} "
        f"parent_span_id={CALL_ENTRY} span.kind=server server GET /entry",
    ]
    paths = []
    for name, lines in (("front", front), ("worker", worker), ("ledger", ledger)):
        path = tmp_path / f"{name}.log"
        path.write_text("\n".join(lines) + "\n")
        paths.append(str(path))
    return paths


def _span_line(service: str, start: float, end: float, span: str, host: str | None) -> str:
    return _line(
        service, end, span, FRONT, "client GET", **_span(service, "client", start, end, host)
    )


def _offsets(paths: list[str]) -> dict[str, float]:
    matches = grep([TRACE], [Source(p, p) for p in paths], [])
    parsed = [parse_line(m.raw) for m in matches]
    services = [p[4] or "" for p in parsed]
    resolutions = [0.001 if b"," in m.raw[:24] else 0.0 for m in matches]
    edges, hosts, _ = trace_calls(parsed, services, [m.raw for m in matches], resolutions)
    return {s: m.offset_s for s, m in estimate_clocks(edges, set(services), hosts).items()}


class TestOneHost:
    def test_no_correction_on_one_clock(self, tmp_path: Path) -> None:
        offsets = _offsets(_write(tmp_path))
        assert offsets == {"front": 0.0, "worker": 0.0, "ledger": 0.0}

    def test_hosts_come_from_the_span_records_of_the_calls(self, tmp_path: Path) -> None:
        paths = _write(tmp_path)
        matches = grep([TRACE], [Source(p, p) for p in paths], [])
        parsed = [parse_line(m.raw) for m in matches]
        services = [p[4] or "" for p in parsed]
        edges, hosts, _ = trace_calls(
            parsed, services, [m.raw for m in matches], [0.0] * len(matches)
        )
        assert hosts == {"front": "vm", "worker": "vm"}  # ledger's records name none
        assert {(e.caller, e.callee) for e in edges} == {("front", "worker"), ("front", "ledger")}
        job = next(e for e in edges if e.callee == "worker")
        assert job.exact and job.answered is not None and job.end is not None
        assert job.answered < job.receive < job.end  # type: ignore[operator]

    def test_a_late_span_end_without_an_answer_is_no_skew(self, tmp_path: Path) -> None:
        """Without ``response_ms`` only the span's end, 7 ms after the caller
        had the answer, bounds the worker's clock from below: one call's late
        record, which the loose upper bound does not contradict, is no skew."""
        paths = _write(tmp_path)
        worker = Path(paths[1])
        text = worker.read_text()
        worker.write_text(text.replace(', "response_ms": 1.9', ""))
        assert "response_ms" not in worker.read_text()
        assert _offsets(paths) == {"front": 0.0, "worker": 0.0, "ledger": 0.0}

    @pytest.mark.parametrize("hosts", [("vm", "vm"), ("vm", "other")])
    def test_grep_prints_the_trace_as_stitch_does(
        self, tmp_path: Path, hosts: tuple[str, str]
    ) -> None:
        paths = _write(tmp_path, *hosts)
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", *paths)
        assert {r["service"]: r["offset_ms"] for r in records} == {
            "front": 0.0,
            "worker": 0.0,
            "ledger": 0.0,
        }
        proc = cli("grep", "-H", "-n", TRACE, *paths)
        got = [
            (n.decode(), int(k)) for n, k, _ in (r.split(b":", 2) for r in proc.stdout.splitlines())
        ]
        assert got == [(r["file"], r["line"]) for r in records]
        # In true order: the ledger lines within the call, the background job after the answer.
        texts = [x.split(b":", 2)[2] for x in proc.stdout.splitlines()]
        messages = [
            json.loads(t)["message"] if t.startswith(b"{") else t.rsplit(b" ", 1)[-1].decode()
            for t in texts
        ]
        assert messages.index("job queued") < messages.index("background job done")
        assert messages.index("HTTP Request: GET /entry") < messages.index("written")
