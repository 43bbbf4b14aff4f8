"""Every non-blank input line appears exactly once in the JSON lines output, and no
line stops a run, on the C and the pure-Python paths alike."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import logging
import lzma
import tempfile
from pathlib import Path

import pytest
from _stitchutil import KEYS, nonblank_lines, run, stitch_jsonl
from _stitchutil import pure_python as _pure
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from logtrace.stitch._parse import parse_logfmt

TRACES = ["%032x" % (i * 7919 + 1) for i in range(3)]
SPANS = ["%016x" % (i * 104729 + 1) for i in range(5)]

json_record = st.builds(
    lambda ts, trace, span, parent, msg, level: json.dumps(
        {
            "timestamp": f"2026-11-24T10:00:{ts:09.6f}Z",
            "level": level,
            "trace_id": trace,
            "span_id": span,
            "parent_span_id": parent,
            "message": msg,
        }
    ).encode(),
    st.floats(min_value=0, max_value=59.9),
    st.sampled_from(TRACES),
    st.sampled_from(SPANS),
    st.none() | st.sampled_from(SPANS),
    st.text(max_size=30),
    st.sampled_from(["info", "error", "debug"]),
)
hostile = st.one_of(
    json_record,
    json_record.map(lambda b: b[: len(b) // 2]),  # cut short
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.just(b'{"a":' * 3000 + b"1" + b"}" * 3000),
    st.just(b"\x1b[31mred\x1b[0m trace_id=" + TRACES[0].encode()),
    st.sampled_from([b"", b"   ", b"\t", b"{}", b"[]", b"null", b'{"trace_id": null}']),
    st.builds(
        lambda t, s: f'ts=2026-11-24T10:00:01Z trace_id={t} span_id={s} msg="x y"'.encode(),
        st.sampled_from(TRACES),
        st.sampled_from(SPANS),
    ),
)
a_file = st.tuples(
    st.lists(hostile, max_size=25),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.booleans(),  # final newline
    st.sampled_from(["plain", "gzip", "bz2", "xz"]),
)


def _compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data)
    if how == "bz2":
        return bz2.compress(data)
    if how == "xz":
        return lzma.compress(data)
    return data


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example([([b"0="], b"\n", True, "plain")])
@given(st.lists(a_file, min_size=1, max_size=3))
def test_every_nonblank_line_exactly_once(
    files: list[tuple[list[bytes], bytes, bool, str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        expected: dict[tuple[str, int], bytes] = {}
        paths = []
        for i, (lines, ending, final, how) in enumerate(files):
            # A line may not contain a line break of its own: split them into lines.
            data = ending.join(lines) + (ending if final and lines else b"")
            path = root / f"svc{i}.log"
            path.write_bytes(_compress(data, how))
            paths.append(str(path))
            for number, raw in nonblank_lines(data):
                expected[(str(path), number)] = raw
        records = stitch_jsonl(root / "out.jsonl", "--jobs", "1", "-q", *paths)
        seen = [(r["file"], r["line"]) for r in records]
        assert len(seen) == len(set(seen))
        assert set(seen) == set(expected)
        for r in records:
            assert set(r) - {"reason", "mark"} == KEYS
            assert r.get("mark", "orphan") == "orphan"  # a span whose parent is not in the file
            assert ("reason" in r) == (r["trace_id"] is None)
            raw = expected[(r["file"], r["line"])]
            try:
                original = json.loads(raw)
            except (ValueError, RecursionError):
                original = None
            if isinstance(original, dict) and r["record"] != {
                "message": raw.decode("utf-8", "replace")
            }:
                assert r["record"] == original
            else:
                # A text line, or one in logfmt (``key=value`` pairs, even "0=").
                text = raw.decode("utf-8", "replace")
                assert r["record"] in ({"message": text}, parse_logfmt(text))


def test_huge_lines_and_a_file_still_being_written(tmp_path: Path) -> None:
    big = json.dumps({"trace_id": TRACES[0], "blob": "x" * 5_000_000}).encode()
    cut = json.dumps({"trace_id": TRACES[1], "message": "being written"}).encode()[:-7]
    path = tmp_path / "app.log"
    path.write_bytes(big + b"\n" + b"plain line\n" + cut)
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    by_line = {r["line"]: r for r in records}
    assert set(by_line) == {1, 2, 3}
    assert len(by_line[1]["record"]["blob"]) == 5_000_000
    assert by_line[2]["reason"] == "no trace id"
    # The cut line still names its trace in its text: it stays with it.
    assert by_line[3]["trace_id"] == TRACES[1]
    assert by_line[3]["record"] == {"message": cut.decode()}


def test_truncated_line_without_any_id_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b'{"trace_id": "' + TRACES[0].encode() + b'"}\n{"message": "half')
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    assert records[-1]["reason"] == "truncated line"


def test_parallel_ranges_of_one_big_file_number_lines_like_one(tmp_path: Path) -> None:
    from logtrace.stitch import _plan

    path = tmp_path / "big.log"
    lines = [
        json.dumps({"trace_id": TRACES[i % 3], "message": f"m{i}", "pad": "p" * (i % 50)})
        for i in range(20000)
    ]
    path.write_text("\n".join(lines) + "\n")
    old = _plan.CHUNK
    _plan.CHUNK = 100_000
    try:
        records = stitch_jsonl(tmp_path / "out.jsonl", "-q", "--jobs", "2", str(path))
    finally:
        _plan.CHUNK = old
    assert sorted(r["line"] for r in records) == list(range(1, 20001))
    for r in records:
        assert r["record"]["message"] == f"m{r['line'] - 1}"


def test_free_text_after_pairs_reaches_the_output(tmp_path: Path) -> None:
    path = tmp_path / "pay.log"
    free = f"trace_id={TRACES[0]} payment failed: card declined"
    error = f"span_id={SPANS[1]} trace_id={TRACES[0]} ERROR database timeout"
    path.write_text(f'ts=2026-11-24T10:00:01Z trace_id={TRACES[0]} msg="start"\n{free}\n{error}\n')
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    by_line = {r["line"]: r for r in records}
    assert by_line[1]["record"] == {
        "ts": "2026-11-24T10:00:01Z",
        "trace_id": TRACES[0],
        "msg": "start",
    }
    assert by_line[2]["record"] == {"message": free}
    assert by_line[3]["record"] == {"message": error}
    assert {r["trace_id"] for r in records} == {TRACES[0]}
    assert by_line[3]["span_id"] == SPANS[1]
    # The ERROR word marks the trace as failed.
    errors = stitch_jsonl(tmp_path / "errors.jsonl", "-q", "--errors", str(path))
    assert len(errors) == 3
    path.write_text(f"trace_id={TRACES[0]} payment failed: card declined\n")
    assert stitch_jsonl(tmp_path / "none.jsonl", "-q", "--errors", str(path)) == []


def test_a_file_ending_mid_line_is_read_with_a_warning(tmp_path: Path) -> None:

    whole = json.dumps({"trace_id": TRACES[0], "message": "first"})
    cut = tmp_path / "cut.log"
    cut.write_text(whole + "\n" + json.dumps({"trace_id": TRACES[0], "message": "last"}))
    done = tmp_path / "done.log"
    done.write_text(whole + "\n")
    out = tmp_path / "out.jsonl"
    code, err = run("stitch", "--format", "jsonl", "-o", str(out), str(cut), str(done))
    assert code == 0
    assert f"warning: {cut}: ends in the middle of a line" in err
    assert str(done) not in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["file"], r["line"]) for r in records} == {
        (str(cut), 1),
        (str(cut), 2),
        (str(done), 1),
    }
    assert [r["record"]["message"] for r in records if r["line"] == 2] == ["last"]


# No line stops a run or is lost, on the C and the pure-Python paths alike, and both
# paths write the same bytes: numbers no float holds, NaN and infinities, deep nesting,
# surrogates, NUL, CR, any bytes.

TRACE = TRACES[0]
SPAN = SPANS[0]
HUGE = "9" * 310
TS = '"2026-11-24T10:00:00.123456Z"'


def _stitch_both(path: str, fmt: str) -> bytes:
    """The output of both paths, asserted identical and successful."""
    outs = []
    for pure in (False, True):
        out = Path(f"{path}.{fmt}.{int(pure)}")
        with _pure(pure):
            code, err = run(
                "stitch", "--format", fmt, "--jobs", "1", "-q", "-o", str(out), str(path)
            )
        assert code == 0, err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1], fmt
    return outs[0]


def _check(data: bytes, formats: tuple[str, ...] = ("jsonl", "text")) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "svc.log"
        path.write_bytes(data)
        for fmt in formats:
            out = _stitch_both(str(path), fmt)
            if fmt == "jsonl":
                seen = [json.loads(line)["line"] for line in out.splitlines()]
                assert sorted(seen) == [n for n, _ in nonblank_lines(data)]


NUMBERS = st.one_of(
    st.sampled_from(
        [
            HUGE,
            "-" + HUGE,
            "1e400",
            "-1e400",
            "1e-400",
            "1e308",
            "1.7976931348623157e308",
            "-0.0",
            "0",
            "9007199254740993",
            "99999999999999999999",
            "NaN",
            "Infinity",
            "-Infinity",
        ]
    ),
    st.integers(-(10**330), 10**330).map(str),
    st.floats().map(lambda f: json.dumps(f)),
)
STRINGS = st.one_of(
    st.sampled_from(
        [
            TS,
            '"NaN"',
            '"inf"',
            '"1e400"',
            f'"{HUGE}"',
            '"0000-01-01T00:00:00Z"',
            '"9999-12-31T23:59:60.999999+23:59"',
            '"2026-11-24T10:00:00.123456Z\\u0000"',
            '"\\ud800"',
            '"\\udfff\\ud800"',
            '"\u00b2\u00b3"',
            '"a\\rb"',
            f'"{TRACE}"',
            f'"{SPAN}"',
            '"server"',
            '"client"',
            '"error"',
        ]
    ),
    st.text(max_size=12).map(json.dumps),
)
NESTED = st.sampled_from(
    ['{"id": ' + HUGE + "}", "[" * 200 + "]" * 200, '{"a":' * 600 + "1" + "}" * 600, "[1e400]"]
)
VALUES = st.one_of(NUMBERS, STRINGS, NESTED, st.sampled_from(["null", "true", "false"]))
FIELD_KEYS = [
    "timestamp",
    "ts",
    "time",
    "@timestamp",
    "timeUnixNano",
    "level",
    "levelname",
    "service",
    "trace_id",
    "span_id",
    "parent_span_id",
    "span.kind",
    "span.start",
    "span.start_ns",
    "duration_ms",
    "http.response.status_code",
    "dd.trace_id",
    "dd.span_id",
    "dd",
    "trace",
    "traceparent",
    "message",
]
OWN_SHAPE = f'"timestamp": {TS}, "level": "info", "service": "api", "trace_id": "{TRACE}"'


@st.composite
def hostile_json(draw: st.DrawFn) -> bytes:
    pairs = draw(st.lists(st.tuples(st.sampled_from(FIELD_KEYS), VALUES), max_size=6))
    body = ", ".join(f'"{k}": {v}' for k, v in pairs)
    if draw(st.booleans()):  # logtrace's own shape: the fast paths read it
        body = OWN_SHAPE + (", " + body if body else "")
    return ("{" + body + "}").encode("utf-8", "surrogatepass")


LINES = st.one_of(
    hostile_json(),
    hostile_json().map(lambda b: b[: len(b) // 2]),
    st.binary(max_size=80),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(
        lambda v, t: f"trace_id={TRACE} duration_ms={v} {t}".encode("utf-8", "surrogatepass"),
        NUMBERS,
        st.text(max_size=20),
    ),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(
    [
        f'{{"timestamp": {TS}, "trace_id": "{TRACE}", "span.kind": "server", '
        f'"duration_ms": {HUGE}}}'.encode()
    ],
    b"\n",
    "html",
)
@given(
    st.lists(LINES, min_size=1, max_size=20),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.sampled_from(["html", "chrome"]),
)
def test_no_line_stops_a_run_or_is_lost(lines: list[bytes], ending: bytes, page: str) -> None:
    _check(ending.join(lines) + ending, ("jsonl", "text", page))


@pytest.mark.parametrize(
    "duration", [HUGE, "-" + HUGE, "1e400", "1e308", "-1e308", "99999999999999999999"]
)
def test_a_span_record_with_an_unreadable_duration_is_kept(duration: str, tmp_path: Path) -> None:
    """The line from the report: it used to end the run with OverflowError."""
    start = (
        f'{{"timestamp": {TS}, "level": "info", "service": "api", "trace_id": "{TRACE}", '
        f'"span_id": "{SPAN}", "span.kind": "server", "duration_ms": 12.5}}'
    )
    bad = (
        f'{{"timestamp": {TS}, "trace_id": "{TRACE}", "span.kind": "server", '
        f'"duration_ms": {duration}}}'
    )
    path = tmp_path / "api.log"
    path.write_text(start + "\n" + bad + "\n")
    for fmt in ("jsonl", "text", "html", "chrome"):
        out = _stitch_both(str(path), fmt)
        if fmt == "jsonl":
            records = [json.loads(line) for line in out.splitlines()]
            assert [(r["line"], r["trace_id"]) for r in records] == [(1, TRACE), (2, TRACE)]
            # Verbatim, or as text where msgspec takes no such number (1e400).
            assert records[1]["record"] in (json.loads(bad), {"message": bad})


def _logged(setup: object) -> bytes:
    """What a logger configured by ``setup(stream)`` writes."""
    stream = io.StringIO()
    assert callable(setup)
    setup(stream)
    return stream.getvalue().encode("utf-8", "surrogatepass")


def _stdlib(fmt: logging.Formatter, emit: object) -> object:
    def setup(stream: io.StringIO) -> None:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(fmt)
        logger = logging.Logger("app")
        logger.addHandler(handler)
        assert callable(emit)
        emit(logger)

    return setup


def _hostile_events(logger: logging.Logger) -> None:
    ids = {"trace_id": TRACE, "span_id": SPAN}
    logger.info("huge", extra={**ids, "duration_ms": int(HUGE)})
    logger.info("inf", extra={**ids, "duration_ms": float("inf"), "span.kind": "server"})
    logger.error("nan\rcarriage", extra={**ids, "timestamp": float("nan")})
    logger.warning("nul \x00 and \udc80", extra=ids)


def test_python_json_logger_output(tmp_path: Path) -> None:
    jsonlogger = pytest.importorskip("pythonjsonlogger.json")
    fmt = jsonlogger.JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    _check(_logged(_stdlib(fmt, _hostile_events)), ("jsonl", "text", "chrome"))


def test_stdlib_logging_text_output(tmp_path: Path) -> None:
    fmt = logging.Formatter("trace_id=%(trace_id)s span_id=%(span_id)s %(levelname)s %(message)s")
    data = _logged(_stdlib(fmt, _hostile_events))
    assert b"\r" in data  # a message with a CR: two lines
    _check(data, ("jsonl", "text", "html"))


def test_structlog_output(tmp_path: Path) -> None:
    structlog = pytest.importorskip("structlog")

    def setup(stream: io.StringIO) -> None:
        log = structlog.wrap_logger(
            structlog.PrintLogger(stream),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.processors.JSONRenderer(),
            ],
        )
        log = log.bind(trace_id=TRACE, span_id=SPAN)
        log.info("huge", duration_ms=int(HUGE), **{"span.kind": "server"})
        log.info("inf", duration_ms=float("inf"), **{"span.kind": "client"})
        log.error("nan", timestamp=float("nan"), status=10**400)
        log.info("deep", payload=[[[[[[[[[[1e308]]]]]]]]]])

    _check(_logged(setup), ("jsonl", "text", "chrome"))
