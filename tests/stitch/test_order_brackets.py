"""Where times leave the order open, the caller's own lines bracket a call
(rule 4 of the ordering rules), and a caller's line says nothing of a call it
may have come before or after (rule 3 without a span record).

Both are run through ``logtrace stitch`` and ``logtrace grep`` on real files,
with ``--no-skew-correction`` (the order is the rules' alone, not a clock
estimate's): the two print each trace in the same order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _stitchutil import cli, stitch_jsonl

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER, CALLEE = "00f067aa0ba902b7", "53995c3f42cd8ad8"


def _line(when: str, service: str, span: str, message: str, **extra: Any) -> str:
    record = {"timestamp": f"2026-11-18T11:06:{when}Z", "service": service}
    record |= {"trace_id": TRACE, "span_id": span, "message": message, **extra}
    return json.dumps(record)


def _write(tmp_path: Path, caller: list[str], callee: list[str]) -> list[str]:
    paths = []
    for name, lines in (("gateway.log", caller), ("inventory.log", callee)):
        path = tmp_path / name
        path.write_text("".join(line + "\n" for line in lines))
        paths.append(str(path))
    return paths


def _orders(tmp_path: Path, paths: list[str]) -> tuple[list[str], list[str]]:
    stitched = [
        r["record"]["message"]
        for r in stitch_jsonl(tmp_path / "out.jsonl", "-q", "--no-skew-correction", *paths)
    ]
    grepped = cli("grep", "--no-skew-correction", TRACE, *paths)
    assert grepped.returncode == 0, grepped.stderr
    printed = [
        json.loads(line.partition(b":")[2])["message"] for line in grepped.stdout.splitlines()
    ]
    return stitched, printed


class TestBrackets:
    def test_a_callee_to_the_millisecond_goes_between_the_call_and_the_answer(
        self, tmp_path: Path
    ) -> None:
        # The callee writes whole milliseconds: its first line shares the
        # millisecond of the caller's "calling", its last that of "answered".
        # Its span lasts three milliseconds, so neither caller line can be
        # on the other side of it.
        caller = [
            _line("40.000100", "gateway", CALLER, "request received"),
            _line("40.001600", "gateway", CALLER, "calling inventory"),
            _line("40.004300", "gateway", CALLER, "inventory answered"),
            _line("40.004500", "gateway", CALLER, "request done"),
        ]
        callee = [
            _line("40.001", "inventory", CALLEE, "stock lookup", parent_span_id=CALLER),
            _line("40.004", "inventory", CALLEE, "stock found", parent_span_id=CALLER),
        ]
        stitched, grepped = _orders(tmp_path, _write(tmp_path, caller, callee))
        assert stitched == [
            "request received",
            "calling inventory",
            "stock lookup",
            "stock found",
            "inventory answered",
            "request done",
        ]
        assert grepped == stitched

    def test_a_callee_within_one_millisecond_of_a_caller_line_stays_open(
        self, tmp_path: Path
    ) -> None:
        # The whole callee fits one millisecond with the caller's line: it may
        # have run before or after it, and the caller's line bounds nothing.
        # The callee's lines spread over their millisecond, as without a call.
        caller = [
            _line("40.000100", "gateway", CALLER, "request received"),
            _line("40.001200", "gateway", CALLER, "calling inventory"),
            _line("40.005000", "gateway", CALLER, "request done"),
        ]
        callee = [
            _line("40.001", "inventory", CALLEE, "stock lookup", parent_span_id=CALLER),
            _line("40.001", "inventory", CALLEE, "stock found", parent_span_id=CALLER),
        ]
        stitched, grepped = _orders(tmp_path, _write(tmp_path, caller, callee))
        # 1.000 .. 2.000 ms shared by two lines: at 1.333 and 1.667, around 1.2.
        assert stitched == [
            "request received",
            "calling inventory",
            "stock lookup",
            "stock found",
            "request done",
        ]
        assert grepped == stitched


class TestCallerWithoutRecord:
    def test_a_caller_line_after_the_call_does_not_pull_the_callee_after_it(
        self, tmp_path: Path
    ) -> None:
        # The caller logs once, after its call returned, and writes no span
        # record: its first line is not when the request went out.
        caller = [_line("40.009000", "gateway", CALLER, "order placed")]
        callee = [
            _line("40.002000", "inventory", CALLEE, "stock lookup", parent_span_id=CALLER),
            _line("40.006000", "inventory", CALLEE, "stock found", parent_span_id=CALLER),
        ]
        stitched, grepped = _orders(tmp_path, _write(tmp_path, caller, callee))
        assert stitched == ["stock lookup", "stock found", "order placed"]
        assert grepped == stitched

    def test_a_span_record_still_bounds_the_call(self, tmp_path: Path) -> None:
        # With its span record the caller says when it started: a callee line
        # stamped before that (an unsynchronised clock left uncorrected) goes
        # after the start, inside the call.
        caller = [
            _line("40.009000", "gateway", CALLER, "order placed"),
            _line(
                "40.010000",
                "gateway",
                CALLER,
                "GET /order",
                **{"span.kind": "server", "span.start": "2026-11-18T11:06:40.001000Z"},
            ),
        ]
        callee = [
            _line("40.000500", "inventory", CALLEE, "stock lookup", parent_span_id=CALLER),
            _line("40.006000", "inventory", CALLEE, "stock found", parent_span_id=CALLER),
        ]
        stitched, grepped = _orders(tmp_path, _write(tmp_path, caller, callee))
        assert stitched == ["stock lookup", "stock found", "order placed", "GET /order"]
        assert grepped == stitched
