"""The C scanner gives exactly the rows and ID tables of the pure-Python one.

Every check scans the same bytes twice, once with ``LOGTRACE_PURE_PYTHON``
set, and compares rows bit for bit (NaN timestamps included) and the
interned trace, span and service tables.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import string
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import nonblank_lines
from _stitchutil import pure_python as _pure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtrace.stitch import _plan, _scan
from logtrace.stitch._decompress import BLOCK
from logtrace.stitch._intern import Interner
from logtrace.stitch._model import ERROR, JSON, KIND_CLIENT, SPAN_RECORD, TRUNCATED, FileScan
from logtrace.stitch._native import native_enabled, native_scan
from logtrace.stitch._plan import expand_paths
from logtrace.stitch._scan_native import scan_block_native
from logtrace.testing import SynthConfig, generate

native = pytest.importorskip("logtrace.stitch._native_scan")

REPO = Path(__file__).resolve().parents[2]


def _scan_bytes(
    data: bytes, pure: bool, name: str = "svc.log", block_size: int = BLOCK
) -> FileScan:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, name)
        with open(path, "wb") as f:
            f.write(data)
        with _pure(pure):
            return _scan.scan_task((0, name, path, 0, -1), tmp, block_size=block_size)


def _same(data: bytes, block_size: int = BLOCK) -> FileScan:
    """Scan both ways, assert identical results, return the native one."""
    fast = _scan_bytes(data, pure=False, block_size=block_size)
    slow = _scan_bytes(data, pure=True, block_size=block_size)
    assert fast.rows.dtype == slow.rows.dtype
    if fast.rows.tobytes() != slow.rows.tobytes():
        for i, (a, b) in enumerate(zip(fast.rows.tolist(), slow.rows.tolist(), strict=False)):
            assert repr(a) == repr(b), (i, data.split(b"\n")[a[2] - 1][:300])
        assert len(fast.rows) == len(slow.rows)
    assert fast.traces == slow.traces
    assert fast.spans == slow.spans
    assert fast.services == slow.services
    assert fast.lines == slow.lines
    return fast


def test_native_is_used_unless_disabled() -> None:
    assert native_scan is native
    with _pure(False):
        assert native_enabled(native_scan)
    with _pure(True):
        assert not native_enabled(native_scan)


def _record(**extra: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "timestamp": "2026-03-01T10:05:09.218055Z",
        "level": "INFO",
        "service": "gateway",
        "logger": "logtrace.span",
        "message": "client GET users",
        "trace_id": "4cece391bbf1bd9edf9ce27a65aa250b",
        "span_id": "57d12a593a3f6285",
        "parent_span_id": "6311be9694d2432c",
        "span.kind": "client",
        "span.name": "GET users",
        "span.start": "2026-03-01T10:05:09.215041Z",
        "duration_ms": 3.014,
        "http.response.status_code": 200,
    }
    rec.update(extra)
    return rec


def test_reads_a_span_record_itself() -> None:
    line = json.dumps(_record()).encode()
    got = native.parse(line)
    assert got is not None
    trace, span, parent, ts, service, flags, start = got
    assert (trace, span, parent, service) == (
        "4cece391bbf1bd9edf9ce27a65aa250b",
        "57d12a593a3f6285",
        "6311be9694d2432c",
        "gateway",
    )
    assert ts == 1772359509.218055
    assert start == 1772359509.215041
    assert flags == JSON | SPAN_RECORD | KIND_CLIENT
    assert native.parse(json.dumps(_record(level="Fatal")).encode())[5] & ERROR  # type: ignore[index]
    _same(line + b"\n")


@pytest.mark.parametrize("key", ["service", "service_name", "app", "dd", "otelServiceName"])
@pytest.mark.parametrize(
    ("spelling", "named"),
    [
        *((s, False) for s in ["None", "none", "NULL", "nil", "Undefined", "-", "n/a", "N/A", ""]),
        # OpenTelemetry's name for a service given none, which all such share
        *((s, False) for s in ["unknown_service", "unknown_service:python"]),
        *((s, True) for s in ["Nonesuch", "nil-checker", "None ", "--", "n/a/b"]),
        *((s, True) for s in ["unknown_services", "unknown_service_x", "Unknown_service"]),
    ],
)
def test_a_service_spelled_none_is_none(key: str, spelling: str, named: bool) -> None:
    rec = _record()
    del rec["service"]
    rec[key] = {"service": spelling} if key == "dd" else spelling
    line = json.dumps(rec).encode()
    got = native.parse(line)
    assert got is not None
    assert got[4] == (spelling if named else None)
    scan = _same(line + b"\n")
    assert set(scan.services) == ({"svc", spelling} if named else {"svc"})  # svc: the file's


@pytest.mark.parametrize(
    "line",
    [
        b'{"a":1}{"b":2}',
        b'{"a":"\\ud800"}',
        b'{"a":01}',
        b'{"a":1,}',
        b'{"a":[1,]}',
        b'{"a":"\t"}',
        b'{"a":1e400, "trace_id":"4cece391bbf1bd9edf9ce27a65aa250b"}',
        b'{"exc_info":[1e400]}',
        b'{"level":"a","level":"b"}',
        b'{"tr\\u0061ce_id":"4cece391bbf1bd9edf9ce27a65aa250b"}',
        b'{"trace_id":"4CECE391BBF1BD9EDF9CE27A65AA250B"}',
        b'{"trace_id":"00000000000000000000000000000000"}',
        # a string `log` is a collector's wrapper, a level key or not
        b'{"log":"", "log.level":"info", "span.kind":"client", "duration_ms":0.0}',
    ],
)
def test_declines_what_it_need_not_read(line: bytes) -> None:
    rec = _record()
    base = json.dumps(rec)[1:-1].encode()
    merged = line[:-1] + b"," + base + b"}"
    assert native.parse(merged) is None
    _same(merged + b"\n" + line + b"\n")


# ---------------------------------------------------------------- generated lines

_hex = "0123456789abcdef"
_ids32 = st.one_of(
    st.text(_hex, min_size=32, max_size=32),
    st.text(_hex + "ABCDEF", min_size=30, max_size=33),
    st.sampled_from(["0" * 32, "", "abc", "4cece391-bbf1-bd9e-df9c-e27a65aa250b"]),
    st.integers(-5, 2**70),
    st.none(),
)
_ids16 = st.one_of(
    st.text(_hex, min_size=16, max_size=16),
    st.text(_hex + "ABCDEF", min_size=15, max_size=17),
    st.sampled_from(["0" * 16, ""]),
    st.integers(-5, 2**70),
    st.none(),
)


@st.composite
def _stamps(draw: st.DrawFn) -> Any:
    shape = draw(st.integers(0, 9))
    if shape == 9:
        return draw(st.one_of(st.integers(-1, 2**64), st.floats(), st.none(), st.text(max_size=30)))
    year = draw(st.sampled_from([1970, 1971, 2000, 2026, 2026, 2026, 2099, 9999]))
    month = draw(st.sampled_from([1, 2, 12, 0, 13])) if shape == 8 else draw(st.integers(1, 12))
    day = draw(st.integers(1, 31)) if shape != 8 else draw(st.sampled_from([0, 31, 32]))
    hour = draw(st.integers(0, 23)) if shape != 8 else 24
    minute = draw(st.integers(0, 59))
    second = draw(st.integers(0, 60)) if shape != 8 else draw(st.sampled_from([60, 61, 99]))
    frac = draw(st.integers(0, 999_999))
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    tail = draw(
        st.sampled_from(
            [
                f".{frac:06d}Z",
                f".{frac:06d}",
                f".{frac // 1000:03d}Z",
                "Z",
                "+00:00",
                f".{frac:06d}+01:00",
            ]
        )
    )
    if shape == 7:
        text = text.replace("T", draw(st.sampled_from([" ", "t"])))
    return text + tail


@st.composite
def _good_stamp(draw: st.DrawFn) -> str:
    us = draw(st.integers(31_536_000 * 10**6, 4_102_444_800 * 10**6))
    text = datetime.fromtimestamp(us // 10**6, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    tail = draw(st.sampled_from(["Z", "Z", "", "+00:00", "+05:30", "-08:00", "-00:00"]))
    return f"{text}.{us % 10**6:06d}{tail}"


_good_stamps = _good_stamp()

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.text(string.printable, max_size=12),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_levels = st.one_of(
    st.sampled_from(
        ["INFO", "info", "DEBUG", "error", "ERROR", "Err", "fatal", "warn", "Panic", ""]
    ),
    st.text(max_size=10),
    st.integers(0, 60),
)
_kinds = st.one_of(st.sampled_from(["client", "server", "internal", "Client"]), _json)
_durations = st.one_of(
    st.floats(0, 1e6, allow_nan=False),
    st.integers(-10, 2**60),
    st.sampled_from([0, -0.0, True, "3.5", None]),
    _json,
)
_OPTIONAL = {
    "span_id": _ids16,
    "parent_span_id": _ids16,
    "span.kind": _kinds,
    "span.start": _stamps(),
    "duration_ms": _durations,
    "error.type": _json,
    "exception.type": _json,
    "exc_info": _json,
    "http.response.status_code": st.one_of(
        st.integers(100, 599), st.integers(-(2**70), 2**70), _json
    ),
    "message": st.text(max_size=40),
    "logger": st.sampled_from(["logtrace.span", "app"]),
    "extra": _json,
    "otelTraceID": _ids32,
    "@timestamp": _stamps(),
    "levelname": _levels,
    "service.name": st.text(max_size=8),
}


_GOOD = {
    "timestamp": _good_stamps,
    "level": st.sampled_from(["INFO", "info", "DEBUG", "error", "ERROR", "Err", "fatal", "Panic"]),
    "service": st.sampled_from(["gateway", "users", "svc"]),
    "trace_id": st.text(_hex, min_size=32, max_size=32),
    "span_id": st.text(_hex, min_size=16, max_size=16) | st.none(),
    "parent_span_id": st.text(_hex, min_size=16, max_size=16) | st.none(),
    "span.kind": st.sampled_from(["client", "server", "internal"]) | st.none(),
    "span.start": _good_stamps,
    "duration_ms": st.floats(0, 1e5, allow_nan=False) | st.integers(0, 10**6),
    "error.type": st.none() | st.sampled_from(["500", "TimeoutError"]),
    "exception.type": st.none(),
    "exc_info": st.sampled_from([None, False, True, "", "x", 0, 1, 0.0, [], {}, [0], {"a": 1}]),
    "http.response.status_code": st.integers(100, 599) | st.none() | st.just(500.0),
    "message": st.text(max_size=40),
    "logger": st.sampled_from(["logtrace.span", "app"]),
    "extra": _json,
}
_REQUIRED = ("timestamp", "level", "service", "trace_id")
_WILD = {**_OPTIONAL, "timestamp": _stamps(), "level": _levels, "trace_id": _ids32}


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed records, each field now and then odd or missing."""
    rec: dict[str, Any] = {}
    for key, good in _GOOD.items():
        roll = draw(st.integers(0, 19))
        if roll == 0:
            wild = _WILD.get(key, _json)
            rec[key] = draw(wild)
        elif roll == 1 or (roll < 8 and key not in _REQUIRED):
            continue
        else:
            rec[key] = draw(good)
    if draw(st.integers(0, 9)) == 0:
        key = draw(st.sampled_from(sorted(_OPTIONAL)))
        rec[key] = draw(_OPTIONAL[key])
    keys = draw(st.permutations(list(rec)))
    return {k: rec[k] for k in keys}


_ALT_KEYS = {
    "time": ["timestamp", "@timestamp", "time", "ts", "asctime"],
    "level": ["level", "levelname", "severity", "severityText", "log.level"],
    "service": ["service", "service.name", "service_name", "serviceName", "app", "application"],
    "trace": ["traceId", "otelTraceID", "trace.id", "traceID"],
    "span": ["span_id", "spanId", "otelSpanID", "span.id", "spanID"],
    "parent": ["parent_span_id", "parentSpanId", "parent_id", "parent.id"],
}


@st.composite
def _other_shapes(draw: st.DrawFn) -> dict[str, Any]:
    """Records in other tools' spellings (no ``trace_id``), mostly well-formed."""
    rec: dict[str, Any] = {}
    good = {
        "time": _good_stamps,
        "level": _GOOD["level"] | st.integers(0, 60),
        "service": _GOOD["service"] | st.text(max_size=3),
        "trace": _GOOD["trace_id"],
        "span": st.text(_hex, min_size=16, max_size=16),
        "parent": st.text(_hex, min_size=16, max_size=16),
    }
    for field, keys in _ALT_KEYS.items():
        for key in draw(st.lists(st.sampled_from(keys), max_size=2, unique=True)):
            roll = draw(st.integers(0, 9))
            rec[key] = (
                draw(_WILD.get(key, _json))
                if roll == 0
                else None
                if roll == 1
                else draw(good[field])
            )
    for key in draw(st.lists(st.sampled_from(sorted(_GOOD)), max_size=3, unique=True)):
        rec[key] = draw(_GOOD[key])
    if draw(st.integers(0, 4)) == 0:
        rec["trace_id"] = None
    keys = draw(st.permutations(list(rec)))
    return {k: rec[k] for k in keys}


def _dump(rec: dict[str, Any], style: int) -> bytes:
    if style == 0:
        return json.dumps(rec).encode()
    if style == 1:
        return json.dumps(rec, separators=(",", ":")).encode()
    if style == 2:
        return json.dumps(rec, ensure_ascii=False).encode()
    return json.dumps(rec, indent=None, separators=(" ,\t", " : ")).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(_records() | _other_shapes(), st.integers(0, 3)), min_size=1, max_size=12)
)
def test_generated_records(recs: list[tuple[dict[str, Any], int]]) -> None:
    _same(b"\n".join(_dump(r, s) for r, s in recs) + b"\n")


_REAL = [json.dumps(_record()).encode(), json.dumps(_record(trace_id=None)).encode()]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(_REAL),
            st.lists(
                st.tuples(st.integers(0, 400), st.integers(0, 3), st.binary(max_size=3)), max_size=3
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_mutated_lines(lines: list[tuple[bytes, list[tuple[int, int, bytes]]]]) -> None:
    out = []
    for line, edits in lines:
        buf = bytearray(line)
        for at, op, what in edits:
            at = min(at, len(buf))
            if op == 0:
                buf[at:at] = what
            elif op == 1:
                del buf[at : at + max(1, len(what))]
            elif op == 2 and at < len(buf):
                buf[at] = what[0] if what else 0
            else:
                buf[at:at] = random.Random(at).choice(
                    [b"\\", b'"', b"\\u", b"{", b"]", b"-0", b"1e9"]
                )
        out.append(bytes(buf))
    _same(b"\n".join(out) + b"\n")


_odd_values = st.sampled_from(
    [
        "1e400",
        "-1e400",
        "1e-400",
        "-0",
        "-0.0",
        "0.0",
        "1E5",
        "1e+5",
        "01",
        "1.",
        ".5",
        "-",
        "123456789012345678901234567890",
        "1" * 70,
        "9" * 310,
        "-" + "9" * 310,
        "1e308",
        "9007199254740992",
        "9007199254740993",
        "-9007199254740992.0",
        "0.1000000000000000055511151231257827",
        '"\\ud83d\\ude00"',
        '"\\ud800"',
        '"\\udc00x"',
        '"\\u0000"',
        '"\\/\\b\\f\\n\\r\\t\\"\\\\"',
        '"\\x"',
        '"\x7f"',
        "[" * 70 + "]" * 70,
        "[" * 62 + "]" * 62,
        "{}",
        "[]",
        "[ ]",
        "{ }",
        "true",
        "tru",
        "nul",
        "null",
        "false",
        '[1,[2,{"a":[]}]]',
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "exc_info",
                    "duration_ms",
                    "http.response.status_code",
                    "error.type",
                    "extra",
                    "span.kind",
                    "span.start",
                    "span.start_ns",
                    "level",
                    "trace_id",
                    "span_id",
                    "timestamp",
                    "service",
                ]
            ),
            _odd_values,
        ),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)
def test_odd_values(pairs: list[tuple[str, str]], first: bool) -> None:
    base = json.dumps(_record())[1:-1]
    odd = ", ".join(f'"{k}": {v}' for k, v in pairs)
    line = "{" + (odd + ", " + base if first else base + ", " + odd) + "}"
    _same(line.encode() + b"\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=15), _json, max_size=6), min_size=1, max_size=6))
def test_random_objects(objs: list[dict[str, Any]]) -> None:
    _same(b"\n".join(json.dumps(o).encode() for o in objs) + b"\n")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=60), min_size=1, max_size=8))
def test_random_bytes(lines: list[bytes]) -> None:
    _same(b"\n".join(lines))


def test_ids_interned_first_seen_first_across_both_paths() -> None:
    t1, t2, t3 = "1" * 32, "2" * 32, "3" * 32
    lines = [
        json.dumps(_record(trace_id=t1, span_id="a" * 16, parent_span_id=None)),
        f"ts=2026-03-01T10:00:00.1Z level=info service=x trace_id={t2.upper()} span_id={'B' * 16}",
        json.dumps(_record(trace_id=t3, span_id="c" * 16, parent_span_id="b" * 16)),
        json.dumps(_record(trace_id=t2, span_id="b" * 16)),
        "plain text",
        json.dumps(_record(service="users")),
    ]
    got = _same("\n".join(lines).encode() + b"\n")
    assert got.traces[:3] == [t1, t2, t3]
    assert got.spans[:3] == ["a" * 16, "b" * 16, "c" * 16]
    assert got.services == ["svc", "gateway", "x", "users"]


# ---------------------------------------------------------------- hostile input


def test_hostile_inputs() -> None:
    rec = json.dumps(_record()).encode()
    huge = json.dumps(_record(message="x" * 3_000_000)).encode()
    deep = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep_open = b'{"a":' + b"[" * 200_000
    binary = bytes(range(256)) * 50
    crlf = rec + b"\r\n" + rec + b"\r\r\n" + b"\r\n"
    blank = b"\n\n   \n\t\n"
    truncated = rec + b"\n" + json.dumps({"timestamp": "2026-03-01T10:05:09.218055Z"}).encode()[:-5]
    for data in (
        huge + b"\n" + rec,
        deep,
        deep_open,
        binary,
        crlf,
        blank,
        truncated,
        b"{",
        b"}",
        b"{}",
    ):
        _same(data)
    got = _same(truncated)
    assert got.rows["reason"][-1] == TRUNCATED


def test_no_leaks() -> None:
    rec = json.dumps(_record()).encode()
    lines = [
        rec,
        b"plain text trace_id=" + b"a" * 32,
        json.dumps(_record(trace_id=None)).encode(),
        json.dumps(_record(trace_id="ABC", span_id="x-y")).encode(),
        b'{"a": [1, 2, {"b": "\\u00e9"}], "c": 1e400}',
    ]
    rng = random.Random(3)
    block = b"\n".join(
        rng.choice(lines).replace(b"4cece3", f"{i:06x}".encode()) for i in range(3000)
    )
    block += b"\n"

    def rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def once() -> None:
        state = Interner("svc")
        scanner = native.Scanner(state.services)
        newlines = scan_block_native(block, 0, 0, state, scanner)
        assert newlines == 3000
        assert len(scanner.rows()) == 3000 * 48
        assert scanner.rows() == bytearray()
        assert len(scanner.traces()) > 500
        scanner.spans()
        native.parse(rec)

    for _ in range(30):
        once()
    before = rss()
    for _ in range(300):
        once()
    assert rss() - before < 20_000  # KiB


def test_scanner_misuse_raises() -> None:
    scanner = native.Scanner({"svc": 0, None: 0})

    def boom(start: int, length: int) -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        scanner.scan(b"plain\n", 0, 0, boom)
    with pytest.raises(TypeError):
        scanner.scan(b"plain\n", 0, 0, lambda s, n: (1, 2))
    with pytest.raises(ValueError):
        scanner.scan(b"plain\n", 0, 0, lambda s, n: (0.0, 0, 0, 0, 70000, 0, 0, 0.0))
    with pytest.raises(TypeError):
        scanner.intern_trace(5)
    with pytest.raises(TypeError):
        native.Scanner({}, {})
    assert scanner.intern_trace("a" * 32) == 0
    assert scanner.intern_trace("not-hex") == 1
    assert scanner.intern_trace("a" * 32) == 0
    assert scanner.traces() == ["a" * 32, "not-hex"]


# ---------------------------------------------------------------- whole runs


def _stitch(paths: list[str], pure: bool) -> bytes:
    env = dict(os.environ)
    env.pop("LOGTRACE_PURE_PYTHON", None)
    if pure:
        env["LOGTRACE_PURE_PYTHON"] = "1"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "logtrace",
            "stitch",
            "--format",
            "jsonl",
            "-q",
            "--jobs",
            "2",
            *paths,
        ],
        env=env,
        capture_output=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_stitch_output_identical_on_generated_logs(tmp_path: Path) -> None:
    generate(str(tmp_path), SynthConfig(target_bytes=3_000_000, seed=7, corrupt_rate=0.01))
    logs = str(tmp_path / "logs")
    fast = _stitch([logs], pure=False)
    assert fast.count(b"\n") > 5000
    assert fast == _stitch([logs], pure=True)


def test_ranges_and_compressed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Byte ranges of split files and decompressed files read the same way."""
    generate(str(tmp_path), SynthConfig(target_bytes=1_500_000, seed=3, corrupt_rate=0.01))
    monkeypatch.setattr(_plan, "CHUNK", 100_000)
    results = []
    for pure in (False, True):
        with _pure(pure), tempfile.TemporaryDirectory() as spool:
            sources = expand_paths([str(tmp_path / "logs")], spool)
            tasks = _scan.plan_tasks(sources, 2)
            results.append(_scan.scan(tasks, spool, 1))
    fast, slow = results
    assert len(fast) == len(slow) > len({t.file for t in fast}) > 1
    for a, b in zip(fast, slow, strict=True):
        assert a.rows.tobytes() == b.rows.tobytes()
        assert (a.traces, a.spans, a.services, a.lines) == (b.traces, b.spans, b.services, b.lines)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 2500), min_size=1, max_size=30),
    st.booleans(),
    st.sampled_from([64, 1000, 4096]),
)
def test_small_buffers_and_long_lines(sizes: list[int], newline_at_end: bool, block: int) -> None:
    """Lines longer than the read buffer, split across reads, cut at its end."""
    lines = [json.dumps(_record(message="m" * n)).encode() for n in sizes]
    data = b"\n".join(lines) + (b"\n" if newline_at_end else b"")
    got = _same(data, block)
    assert len(got.rows) == len(sizes)
    assert got.rows["len"].tolist() == [len(line) for line in lines]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 300), st.sampled_from([b"\n", b"\r\n", b"\r", b"\r\r", b"\n\r"])),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([64, 1000, 4096]),
)
def test_a_lone_cr_ends_a_line(lines: list[tuple[int, bytes]], block: int) -> None:
    """LF, CR LF and a CR alone each end a line, across reads too, on both paths."""
    records = [json.dumps(_record(message="m" * n)).encode() for n, _ in lines]
    data = b"".join(r + end for r, (_, end) in zip(records, lines, strict=True))
    got = _same(data, block)
    assert got.rows["len"].tolist() == [len(r) for r in records]
    numbers = [n for n, raw in nonblank_lines(data)]
    assert got.rows["line"].tolist() == numbers
    assert got.lines == len(re.findall(rb"\r\n|\n|\r", data)) + (not data.endswith((b"\n", b"\r")))


def test_scan_is_not_reentrant() -> None:
    scanner = native.Scanner({"svc": 0, None: 0})

    def again(start: int, length: int) -> None:
        scanner.scan(b"x\n", 0, 0, again)

    with pytest.raises(RuntimeError):
        scanner.scan(b"plain\n", 0, 0, again)
    assert scanner.scan(b"\n", 0, 0, again) == (0, 1)


def test_stitch_output_identical_on_example() -> None:
    logs = str(REPO / "examples" / "two_services" / "logs")
    fast = _stitch([logs], pure=False)
    assert fast
    assert fast == _stitch([logs], pure=True)
