"""Helpers for the stitcher tests: run the command, read its JSON lines."""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from pathlib import Path
from typing import Any

from logtrace.cli import main

REPO = Path(__file__).resolve().parents[2]
KEYS = {
    "trace_id",
    "span_id",
    "parent_span_id",
    "service",
    "depth",
    "timestamp",
    "offset_ms",
    "file",
    "line",
    "record",
}


def run(*argv: str) -> tuple[int, str]:
    """``logtrace ARGV`` in-process: exit code and stderr."""
    err = io.StringIO()
    with redirect_stderr(err):
        code = main(list(argv))
    return code, err.getvalue()


def cli(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """``python -m logtrace ARGV`` as a real process."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "logtrace", *argv],
        input=stdin,
        capture_output=True,
        env=env,
        check=False,
        timeout=120,
    )


def stitch_text(logs: Path, out: Path) -> str:
    """``logtrace stitch -q`` of ``logs`` in-process: the text written to ``out``."""
    code, err = run("stitch", "-q", "-o", str(out), str(logs))
    assert code == 0, err
    return out.read_text(encoding="utf-8")


def stitch_jsonl(out: Path, *argv: str) -> list[dict[str, Any]]:
    code, err = run("stitch", "--format", "jsonl", "-o", str(out), *argv)
    assert code == 0, err
    # Split on "\n" only: str.splitlines() would also cut at U+0085 or U+2028 inside strings.
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b"", "the output must end with a newline"
    return [json.loads(line, parse_constant=_reject) for line in lines[:-1]]


def _reject(name: str) -> Any:
    raise AssertionError(f"non-standard JSON constant {name} in the output")


def nonblank_lines(data: bytes) -> list[tuple[int, bytes]]:
    """(1-based line number, line without ending) of every non-blank line."""
    out = []
    for number, raw in enumerate(re.split(rb"\r\n|\n|\r", data), 1):  # a CR alone ends a line
        if raw.strip():
            out.append((number, raw))
    return out


@contextmanager
def pure_python(on: bool) -> Iterator[None]:
    """The stitcher without its C extensions (``on``) or with them, as set
    before on the way out."""
    old = os.environ.get("LOGTRACE_PURE_PYTHON")
    if on:
        os.environ["LOGTRACE_PURE_PYTHON"] = "1"
    else:
        os.environ.pop("LOGTRACE_PURE_PYTHON", None)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LOGTRACE_PURE_PYTHON", None)
        else:
            os.environ["LOGTRACE_PURE_PYTHON"] = old


def stitched_traces(
    logs: Path, out: Path, every_line: bool = True
) -> tuple[Any, dict[str, list[dict[str, Any]]]]:
    """Stitch the directory ``logs`` to JSON lines in ``out`` with the
    library; assert every line of the logs came out (unless not
    ``every_line``: a traceback's lines are continuation lines of the record
    that logged it), and return the summary and the output's rows per trace
    (lines without a trace left out)."""
    from collections import defaultdict

    from logtrace.stitch import Options, stitch

    with open(out, "wb") as fh:
        summary = stitch([str(logs)], fh, Options(format="jsonl"))
    rows = [json.loads(line) for line in out.read_bytes().splitlines()]
    if every_line:
        written = 0
        for path in logs.iterdir():
            data = path.read_bytes()
            written += len((gzip.decompress(data) if path.suffix == ".gz" else data).splitlines())
        assert len(rows) == written
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["trace_id"] is not None:
            traces[row["trace_id"]].append(row)
    return summary, traces


CALL_ID = re.compile(r"cid:(\w+)>(\w+)#\d+")
"""The call a line of the captured tree and fan-out runs names: ``cid:caller>callee#n``."""

MARKER = re.compile(r"(?:^| - )(call|recv|done|answer) ")
"""What a line of the captured runs says it does: its message begins with
the word (a text-format line: after the ``" - "`` that ends its fields)."""


def wrong_calls(traces: dict[str, list[dict[str, Any]]]) -> int:
    """Traces with a callee's request span under another service than the
    caller its ``cid`` names, its ``recv`` line before the caller's ``call``
    line, or its ``done`` line after the caller's ``answer`` line."""
    wrong = 0
    for rows in traces.values():
        service_of = {r["span_id"]: r["service"] for r in rows if r["span_id"]}
        called: dict[str, int] = {}
        done: dict[str, int] = {}
        answered: dict[str, int] = {}
        bad = False
        for i, row in enumerate(rows):
            text = str(row["record"].get("message", ""))
            found = CALL_ID.search(text)
            word = MARKER.search(text)
            if found is None or word is None:
                continue
            callee = row["service"] == found.group(2)
            if word.group(1) == "call":
                called[found.group(0)] = i
            elif word.group(1) == "answer":
                answered[found.group(0)] = i
            elif word.group(1) == "done" and callee:
                done[found.group(0)] = i
            elif word.group(1) == "recv" and callee:
                parent = service_of.get(row["parent_span_id"] or "")
                at = called.get(found.group(0))
                bad |= parent != found.group(1) or at is None
        bad |= any(answered.get(call, len(rows)) < at for call, at in done.items())
        wrong += bad
    return wrong


def assert_true_story(logs: Path, shifts: dict[str, float], out: Path, within: float = 2.0) -> Any:
    """Every clock within ``within`` ms of its shift, every call right (see
    :func:`wrong_calls`); the summary."""
    summary, traces = stitched_traces(logs, out)
    for name, shift in shifts.items():
        got = summary.offsets_ms[name] - summary.offsets_ms["gateway"]
        assert abs(got - shift) < within, summary.offsets_ms
    assert wrong_calls(traces) == 0
    return summary


def one_trace_table(
    rows: Any, n_spans: int, services: list[str], data_paths: list[str] | None = None
) -> Any:
    """A :class:`Table` of ``rows`` (``ROW_DTYPE``) in one trace ``t``, with
    spans ``s0``... and the files ``data_paths`` (none read back if empty)."""
    import numpy as np

    from logtrace.stitch._model import Table

    return Table(
        sources=[],
        data_paths=data_paths or [],
        rows=rows,
        file=np.zeros(len(rows), dtype=np.int32),
        span_start=np.full(n_spans, np.nan),
        traces=["t"],
        spans=[f"s{k}" for k in range(n_spans)],
        span_trace=np.zeros(n_spans, dtype=np.int32),
        services=services,
        warnings=[],
    )
