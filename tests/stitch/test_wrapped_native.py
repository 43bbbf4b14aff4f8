"""Lines wrapped by a container runtime, read by the C scanner itself.

Whole CRI lines (``F``) and Docker json-file records whose ``log`` holds a
JSON record are read in C; pieces of cut lines, lines while pieces wait, and
anything unusual go to the Python fallback. Every check scans with both paths
and compares the rows bit for bit; :func:`_declined` tells which lines the C
scanner handed to Python, so that a check fails if the fast path reads
nothing (or reads a line it should leave alone).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import nonblank_lines
from _stitchutil import pure_python as _pure
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from logtrace.stitch import _scan
from logtrace.stitch._decompress import BLOCK
from logtrace.stitch._intern import Interner
from logtrace.stitch._model import ERROR, JSON, FileScan
from logtrace.stitch._parse import PARTIALS
from logtrace.stitch._scan_python import scan_line

native = pytest.importorskip("logtrace.stitch._native_scan")

T = "4bf92f3577b34da6a3ce929d0e0e4736"
S = "00f067aa0ba902b7"
P = "53995c3f42cd8ad8"
WRAPPER_TIME = "2026-12-04T10:00:00.912345678Z"
WRAPPER_TS = 1796378400.912345678
APP = {
    "timestamp": "2026-12-04T10:00:00.250Z",
    "level": "error",
    "service": "checkout",
    "trace_id": T,
    "span_id": S,
    "message": "card declined",
}


def _record(**changes: Any) -> str:
    rec = {**APP, **changes}
    return json.dumps({k: v for k, v in rec.items() if v is not None})


def _cri(stream: str, tag: str, payload: str, when: str = WRAPPER_TIME) -> bytes:
    return f"{when} {stream} {tag} {payload}".encode()


def _docker(log: str, stream: str | None = "stdout", when: object = WRAPPER_TIME) -> bytes:
    obj: dict[str, Any] = {"log": log}
    if stream is not None:
        obj["stream"] = stream
    if when is not None:
        obj["time"] = when
    return json.dumps(obj).encode()


def _scan_both(data: bytes, block_size: int = BLOCK) -> FileScan:
    """The scan of ``data`` by both paths, asserted identical; the C one."""
    got = []
    for pure in (False, True):
        PARTIALS.clear()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "file.log")
            Path(path).write_bytes(data)
            with _pure(pure):
                task = (0, "file.log", path, 0, -1)
                got.append(_scan.scan_task(task, tmp, block_size=block_size))
    fast, slow = got
    if fast.rows.tobytes() != slow.rows.tobytes():
        assert fast.rows.tolist() == slow.rows.tolist()
    assert fast.rows.tobytes() == slow.rows.tobytes()
    assert (fast.traces, fast.spans, fast.services) == (slow.traces, slow.spans, slow.services)
    return fast


def _declined(lines: list[bytes]) -> list[int]:
    """The (0-based) lines the C scanner hands to the Python fallback."""
    PARTIALS.clear()
    block = b"\n".join(lines) + b"\n"
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    asked: list[int] = []

    def fallback(start: int, length: int) -> None:
        asked.append(starts.index(start))
        scan_line(block[start : start + length])  # keeps the pieces of cut lines

    native.Scanner(Interner("file").services).scan(block, 0, 0, fallback, PARTIALS)
    PARTIALS.clear()
    return asked


def test_whole_wrapped_lines_are_read_in_c() -> None:
    lines = [
        _cri("stdout", "F", _record()),
        _cri("stderr", "F", _record(timestamp=None)),
        _docker(_record() + "\n"),
        _docker(_record(timestamp=None) + "\n", "stderr"),
        json.dumps({"time": WRAPPER_TIME, "log": _record() + "\n"}).encode(),
    ]
    assert _declined(lines) == []
    scan = _scan_both(b"\n".join(lines) + b"\n")
    assert scan.traces == [T]
    rows = scan.rows
    assert rows["ts"][0] == pytest.approx(1796378400.25)
    assert rows["ts"][1] == WRAPPER_TS  # the payload has no time: the runtime's
    assert rows["ts"][3] == WRAPPER_TS
    assert all(rows["flags"][:2] == ERROR)  # a CRI line is text: not JSON
    assert all(rows["flags"][2:] == ERROR | JSON)  # a Docker line is JSON, as written


def test_unusual_wrapped_lines_are_left_to_python() -> None:
    lines = [
        _cri("stdout", "P", _record()[:20]),  # a piece
        _cri("stdout", "F", _record()[20:]),  # the final piece of the one before
        _cri("stdout", "F", "plain text"),
        _cri("stdout", "F", _record() + " "),
        _cri("stdout", "F", _record(), "2026-12-04T10:00:00.9+01"),  # not CRI's time
        _cri("stdout", "F", _record(), "2026-12-04T10:00:00.9"),
        _cri("stdout", "F", _record(), "2026-12-04T10:00:00.9z"),
        _docker(_record()),  # a piece: no final newline
        _docker(_record() + "\n"),  # its final piece (after the line before: Python)
        _docker("starting\n"),
        _docker(json.dumps({**APP, "message": "caf\u00e9"}, ensure_ascii=False) + "\n"),
        _docker(_record() + "\n", when=None),
        _docker(_record() + "\n", when=1796378400),
        json.dumps({"log": _record() + "\n", "attrs": {"tag": "web"}}).encode(),
        _docker(_record(trace_id=None) + "\n", 'x"events'),  # may hold many records
    ]
    assert _declined(lines) == list(range(len(lines)))
    _scan_both(b"\n".join(lines) + b"\n")


def test_pieces_interleaved_across_streams() -> None:
    whole = _record(timestamp=None, blob="x" * 50)
    lines = [
        _cri("stdout", "F", _record(span_id=P)),
        _cri("stdout", "P", whole[:40]),
        _cri("stderr", "F", _record(service="other")),  # another stream while one waits
        _cri("stderr", "P", whole[:10]),
        _cri("stdout", "P", whole[40:70]),
        _cri("stdout", "F", whole[70:], "2026-12-04T10:00:01.5+01:00"),
        _cri("stderr", "F", whole[10:]),
        _cri("stdout", "F", _record()),  # nothing waits: C again
        _docker(whole[:33], "stderr"),
        _docker(_record(service="d") + "\n", "stdout"),
        _docker(whole[33:] + "\n", "stderr"),
        _docker(_record(service="e") + "\n", "stdout"),
    ]
    assert _declined(lines) == [1, 2, 3, 4, 5, 6, 8, 9, 10]
    scan = _scan_both(b"\n".join(lines) + b"\n")
    rows = scan.rows
    assert rows["ts"][5] == pytest.approx(1796374801.5)  # the joined record has no time
    assert scan.traces[rows["trace"][5]] == T and scan.traces[rows["trace"][6]] == T


def test_pieces_across_blocks() -> None:
    """A piece at the end of one block waits for its final piece in the next."""
    whole = _record(timestamp=None, blob="y" * 300)
    lines = []
    for i in range(40):
        lines.append(_cri("stdout", "F", _record(span_id=f"{i + 1:016x}")))
        if i % 3 == 0:
            lines += [_cri("stderr", "P", whole[:150]), _cri("stderr", "F", whole[150:])]
        if i % 4 == 0:
            lines += [_docker(whole[:200], "stdout"), _docker(whole[200:] + "\n", "stdout")]
    for size in (256, 1000, 4096):
        scan = _scan_both(b"\n".join(lines) + b"\n", block_size=size)
        assert len(scan.rows) == len(lines)
        assert len(scan.spans) == 41


@pytest.mark.parametrize(
    "log",
    [
        _record(message='say "hi" \\ back') + "\n",
        _record(message="caf\u00e9") + "\n",
        _record(message="line one\nline two") + "\n",
        _record(message="tab\there, slash /, \u0001") + "\n",
        _record() + "\r\n",
        _record() + "\n\n",
        _record(service="caf\\u00e9") + "\n",
        '{"trace_id": "' + T + '",\n "span_id": "' + S + '"}\n',
        '{"trace_id": "' + T + '",\t"span_id": "' + S + '"}\n',
        _record(timestamp="2026-12-04T10:00:00.25+01:00", level="INFO") + "\n",
        _record(**{"span.kind": "server", "duration_ms": 12.5}) + "\n",
        _record(**{"span.kind": "client", "duration_ms": 3, "timestamp": None}) + "\n",
        _record(trace_id="0x" + T, parent_span_id=P) + "\n",
        _record(trace_id=None, message='"events"') + "\n",
        "level=info trace_id=" + T + " done\n",
        "\n",
        "",
    ],
)
def test_docker_log_strings(log: str) -> None:
    for ascii_only in (True, False):
        line = json.dumps(
            {"log": log, "stream": "stdout", "time": WRAPPER_TIME}, ensure_ascii=ascii_only
        )
        _scan_both(line.encode() + b"\n")


def test_docker_escapes_are_read_in_c() -> None:
    lines = [
        _docker(_record(message='say "hi" \\ back\t/') + "\n"),
        _docker(_record(message="line one\nline two") + "\n"),
        _docker(_record(message="caf\u00e9") + "\n"),  # an escape in the record's text
        _docker(_record() + "\r\n"),
        rb'{"log": "{\"trace_id\": \"\u0034bf92f3577b34da6a3ce929d0e0e4736\"}\n", "time": "'
        + WRAPPER_TIME.encode()
        + b'"}',
    ]
    lines.append(
        rb'{"log": "{\u0022trace_id\u0022: \u0022'
        + T.encode()
        + rb'\u0022}\u000a", "time": "'
        + WRAPPER_TIME.encode()
        + b'"}'
    )
    assert _declined(lines) == []
    scan = _scan_both(b"\n".join(lines) + b"\n")
    assert scan.traces == [T]
    assert scan.rows["ts"][4] == WRAPPER_TS
    assert len(scan.rows) == 6


def test_a_long_docker_record_then_short_ones() -> None:
    lines = [
        _docker(_record(span_id=P) + "\n"),
        _docker(_record(blob='"x"\\' * 600_000) + "\n"),  # 3 MB escaped, past the kept buffer
        _docker(_record(span_id=P) + "\n"),
        json.dumps({"time": WRAPPER_TIME, "log": "y" * 2_000_000}).encode(),  # a piece
    ]
    assert _declined(lines) == [3]
    scan = _scan_both(b"\n".join(lines) + b"\n")
    assert scan.spans == [P, S]


_heads = st.sampled_from(
    [
        WRAPPER_TIME + " stdout F ",
        WRAPPER_TIME + " stderr P ",
        WRAPPER_TIME + " stdout F {",
        '{"log": "',
        '{"time": "' + WRAPPER_TIME + '", "log": "{',
        '{"log": "{\\"trace_id\\": \\"',
    ]
).map(str.encode)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_heads, st.binary(max_size=40), _heads | st.just(b"")), max_size=8))
def test_any_bytes_in_a_wrapper_scan_the_same_and_lose_nothing(
    parts: list[tuple[bytes, bytes, bytes]],
) -> None:
    lines = [b"".join(p).replace(b"\n", b" ").replace(b"\r", b" ") for p in parts]
    lines = [
        line + b'", "time": "' + WRAPPER_TIME.encode() + b'"}' if i % 2 else line
        for i, line in enumerate(lines)
    ]
    data = b"\n".join(lines) + b"\n"
    scan = _scan_both(data)
    assert set(scan.rows["line"].tolist()) == {n for n, _ in nonblank_lines(data)}


_KEYS = st.sampled_from(
    [
        "timestamp",
        "time",
        "ts",
        "@timestamp",
        "level",
        "levelname",
        "service",
        "service.name",
        "trace_id",
        "traceId",
        "span_id",
        "parent_span_id",
        "span.kind",
        "duration_ms",
        "span.start",
        "message",
        "msg",
        "log",
        "stream",
        "events",
    ]
)
_VALUES = (
    st.sampled_from(
        [
            T,
            S,
            P,
            "0x" + T,
            "error",
            "INFO",
            "server",
            "checkout",
            "2026-12-04T10:00:00.25Z",
            "2026-12-04T10:00:00+01:00",
            "2026-12-04 10:00:00",
            "yesterday",
            "",
        ]
    )
    | st.text(alphabet=st.sampled_from('ab"\\/\n\t\u00e9\u0001{} '), max_size=6)
    | st.integers(-3, 1796378400250)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.none()
    | st.booleans()
)
_records = st.builds(
    lambda drop, extra, ascii_only: json.dumps(
        {**{k: v for k, v in APP.items() if k not in drop}, **extra}, ensure_ascii=ascii_only
    ),
    st.sets(st.sampled_from(sorted(APP))),
    st.dictionaries(_KEYS, _VALUES, max_size=3),
    st.booleans(),
)
"""Records like logtrace's own, some keys left out or changed: most are read in C."""
_payloads = (
    _records
    | _records
    | st.dictionaries(_KEYS, _VALUES, max_size=7).map(json.dumps)
    | st.sampled_from(["plain text", "", " ", "{", "[1]", "level=error trace_id=" + T, "{}"])
)
_times = st.sampled_from([WRAPPER_TIME, "2026-12-04T10:00:00Z"]) | st.sampled_from(
    [
        WRAPPER_TIME,
        "2026-12-04T10:00:00Z",
        "2026-12-04T10:00:00,5+01:00",
        "2026-12-04T10:00:00.123-0130",
        "2026-12-04T10:00:00.1234567890Z",
        "2026-12-04t10:00:00Z",
        "1970-01-01T00:00:00Z",
    ]
)
_streams = st.sampled_from(["stdout", "stderr"])
_cri_lines = st.builds(
    lambda w, s, t, p, tail: f"{w} {s} {t} {p}{tail}".encode(),
    _times,
    _streams,
    st.sampled_from(["F"] * 6 + ["P"]),
    _payloads,
    st.sampled_from(["", "", " "]),
)
_docker_lines = st.builds(
    lambda log, ending, stream, when, order, ascii_only: json.dumps(
        dict(
            sorted(
                # None: the key is left out
                (
                    (k, v)
                    for k, v in {"log": log + ending, "stream": stream, "time": when}.items()
                    if v is not None
                ),
                key=lambda kv: order.index(kv[0]),
            )
        ),
        ensure_ascii=ascii_only,
    ).encode(),
    _payloads,
    st.sampled_from(["\n"] * 8 + ["", "\r\n", "\n\n"]),
    _streams | st.none(),
    _times | st.none() | st.just(1796378400),
    st.permutations(["log", "stream", "time"]),
    st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_cri_lines | _docker_lines, min_size=1, max_size=14))
def test_wrapped_lines_read_in_c_give_the_python_rows(lines: list[bytes]) -> None:
    lines = [b" ".join(line.splitlines()) for line in lines]  # a payload may not break its line
    data = b"\n".join(lines) + b"\n"
    scan = _scan_both(data)
    assert set(scan.rows["line"].tolist()) == {n for n, _ in nonblank_lines(data)}
    read_in_c = set(range(len(lines))) - set(_declined(lines))
    event(f"some lines read in C: {bool(read_in_c)}")
    assert not any(b" stdout P " in lines[i] or b" stderr P " in lines[i] for i in read_in_c)
