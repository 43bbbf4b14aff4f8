"""The C scanner reads every logging convention the parser knows, whatever the
key names and order, and gives exactly the pure-Python rows for them.

Lines come from the real libraries (structlog, python-json-logger,
ecs-logging) where they install, from the layouts zap, logrus, pino,
OpenTelemetry and Datadog write, and from generated records that mix every
spelling of every field.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
import time
from typing import Any

import msgspec
import pytest
from _stitchutil import pure_python as _pure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtrace.stitch import _known_keys, _parse, _scan
from logtrace.stitch._decompress import BLOCK
from logtrace.stitch._model import ERROR, JSON, KIND_SERVER, SPAN_RECORD, FileScan

native = pytest.importorskip("logtrace.stitch._native_scan")

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
PARENT = "53995c3f42cd8ad8"


def _scan_bytes(data: bytes, pure: bool) -> FileScan:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "svc.log")
        with open(path, "wb") as f:
            f.write(data)
        with _pure(pure):
            return _scan.scan_task((0, "svc.log", path, 0, -1), tmp, block_size=BLOCK)


def _same(data: bytes) -> FileScan:
    """Scan both ways, assert identical rows and tables, return the C one."""
    fast = _scan_bytes(data, pure=False)
    slow = _scan_bytes(data, pure=True)
    for a, b in zip(fast.rows.tolist(), slow.rows.tolist(), strict=True):
        assert repr(a) == repr(b), data.split(b"\n")[a[2] - 1][:300]
    assert fast.rows.tobytes() == slow.rows.tobytes()
    assert (fast.traces, fast.spans, fast.services, fast.lines) == (
        slow.traces,
        slow.spans,
        slow.services,
        slow.lines,
    )
    return fast


def _python(line: bytes) -> tuple[Any, ...]:
    parsed = _parse.parse_json(line)
    assert parsed is not None
    return parsed


def _read_itself(line: bytes) -> tuple[Any, ...]:
    """The C scanner's fields of a line it must read without Python, checked
    against the parser's."""
    got = native.parse(line)
    assert got is not None, line
    trace, span, parent, ts, service, flags, start = got
    p_trace, p_span, p_parent, p_ts, p_service, p_flags, _, p_start = _python(line)
    assert (trace or None, span or None, parent or None) == (p_trace, p_span, p_parent)
    assert (service or None, flags) == (p_service, p_flags)
    assert repr(ts) == repr(float("nan") if p_ts is None else p_ts)
    assert repr(start) == repr(float("nan") if p_start is None else p_start)
    _same(line + b"\n")
    return got


def test_key_table_is_the_parsers() -> None:
    """The C scanner reads only keys the parser reads, and knows every key the
    parser reads: it reads it the same way, or declines the line on sight (the
    collectors' wrappers). A key added to the parser without the scanner would
    make the two paths differ."""
    python_keys = {f.encode_name for f in msgspec.structs.fields(_known_keys.Fields)}
    python_keys |= {f.encode_name for f in msgspec.structs.fields(_parse._Common)}
    assert set(native.KEYS) <= python_keys <= set(native.KEYS) | set(native.DECLINED)
    assert not set(native.KEYS) & set(native.DECLINED)
    assert len(native.KEYS) + len(native.DECLINED) == len({*native.KEYS, *native.DECLINED})


# ---------------------------------------------------------------- real libraries


def _stdlib_line(formatter: logging.Formatter, **extra: Any) -> bytes:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger = logging.getLogger("shapes.app")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        logger.error("payment failed", extra=extra)
        logger.info("request received", extra=extra)
    finally:
        logger.handlers.clear()
    return stream.getvalue().encode()


def test_python_json_logger() -> None:
    jsonlogger = pytest.importorskip("pythonjsonlogger.json")
    fmt = jsonlogger.JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    data = _stdlib_line(fmt, service="payments", trace_id=TRACE, span_id=SPAN)
    error, info = data.splitlines()
    assert _read_itself(error)[5] == JSON | ERROR
    assert _read_itself(info)[:3] == (TRACE, SPAN, None)


def test_ecs_logging() -> None:
    ecs_logging = pytest.importorskip("ecs_logging")
    extra = {"trace.id": TRACE, "span.id": SPAN, "service.name": "payments"}
    data = _stdlib_line(ecs_logging.StdlibFormatter(), **extra)
    error, info = data.splitlines()
    assert b'"log":{' in info  # log.level dotted beside a nested log object
    got = _read_itself(error)
    assert got[:3] == (TRACE, SPAN, None) and got[4] == "payments"
    assert got[5] == JSON | ERROR
    _read_itself(info)


def test_elastic_apm_with_ecs_logging() -> None:
    """The record attributes Elastic APM's log correlation sets, through
    ecs-logging: ``transaction.id`` outside a span the request opened,
    ``span.id`` and ``transaction.id`` inside one. (The agent itself, run
    for real: ``test_elastic_apm.py``.)"""
    ecs_logging = pytest.importorskip("ecs_logging")
    tx = "1ae6ee36e41584aa"
    apm = {"elasticapm_trace_id": TRACE, "elasticapm_transaction_id": tx}
    data = _stdlib_line(ecs_logging.StdlibFormatter(), **apm, elasticapm_span_id=None)
    outside = data.splitlines()[1]
    assert b'"transaction":{"id":"%s"}' % tx.encode() in outside and b'"span"' not in outside
    assert _read_itself(outside)[:3] == (TRACE, tx, None)
    data = _stdlib_line(ecs_logging.StdlibFormatter(), **apm, elasticapm_span_id=SPAN)
    assert _read_itself(data.splitlines()[1])[:3] == (TRACE, SPAN, tx)


def test_structlog() -> None:
    structlog = pytest.importorskip("structlog")
    out = io.StringIO()
    logger = structlog.wrap_logger(
        structlog.PrintLogger(out),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
    )
    log = logger.bind(trace_id=TRACE, span_id=SPAN, parent_span_id=PARENT, service="users")
    log.info("user loaded")
    log.error("user missing")
    info, error = out.getvalue().encode().splitlines()
    assert info.startswith(b'{"trace_id"')  # the event and bound keys come first
    got = _read_itself(info)
    assert got[:3] == (TRACE, SPAN, PARENT) and got[4] == "users"
    assert _read_itself(error)[5] == JSON | ERROR


# ---------------------------------------------------------------- layouts of other tools

_LAYOUTS = [
    # zap's production encoder: epoch seconds as a float
    {"level": "error", "ts": 1772359509.2180552, "caller": "main.go:42", "msg": "boom",
     "trace_id": TRACE, "span_id": SPAN},
    # logrus JSONFormatter: RFC 3339 with an offset
    {"level": "warning", "msg": "slow", "time": "2026-03-01T11:05:09+01:00", "trace_id": TRACE},
    # pino: numeric levels, epoch milliseconds
    {"level": 50, "time": 1772359509218, "pid": 7, "hostname": "h", "msg": "x",
     "trace_id": TRACE, "span_id": SPAN},
    {"level": 30, "time": 1772359509218, "msg": "y", "traceId": TRACE.upper(), "spanId": SPAN},
    # OpenTelemetry's logging instrumentation
    {"timestamp": "2026-03-01T10:05:09.218+00:00", "levelname": "INFO", "message": "m",
     "otelTraceID": TRACE, "otelSpanID": SPAN, "otelServiceName": "users"},
    # OpenTelemetry's console exporter: 0x prefixes, nanoseconds
    {"timeUnixNano": 1772359509218055000, "severityText": "ERROR", "trace_id": "0x" + TRACE,
     "span_id": "0x" + SPAN},
    # Datadog: decimal IDs, dotted or nested
    {"timestamp": "2026-03-01 10:05:09,218", "level": "INFO", "dd.trace_id": "1234567890123",
     "dd.span_id": "9876543210", "dd.service": "web"},
    {"timestamp": 1772359509.218, "status": "info", "dd": {"trace_id": "18446744073709551615",
     "span_id": 42, "service": "web"}},
    # ECS, nested and dotted
    {"@timestamp": "2026-03-01T10:05:09.218Z", "log.level": "info", "message": "m",
     "trace": {"id": TRACE}, "span": {"id": SPAN}, "service": {"name": "orders"},
     "parent.id": PARENT},
    {"@timestamp": "2026-03-01T10:05:09.218Z", "log": {"level": "error", "logger": "a"},
     "trace.id": TRACE, "span.id": SPAN, "service.name": "orders"},
    # logtrace's span record with its keys in another order, under `ts`
    {"duration_ms": 3, "span.kind": "server", "span.start": "2026-03-01T10:05:09.215Z",
     "ts": "2026-03-01T10:05:09.218Z", "trace_id": TRACE, "span_id": SPAN, "level": "INFO",
     "service": "gateway"},
]  # fmt: skip


@pytest.mark.parametrize("rec", _LAYOUTS, ids=lambda r: "-".join(list(r)[:3]))
def test_other_tools_layouts(rec: dict[str, Any]) -> None:
    got = _read_itself(json.dumps(rec).encode())
    assert got[0]  # every layout above joins a trace
    assert got[3] == got[3]  # and has a time


def test_span_record_in_another_shape() -> None:
    got = _read_itself(json.dumps(_LAYOUTS[-1]).encode())
    assert got[5] == JSON | SPAN_RECORD | KIND_SERVER
    assert got[6] == 1772359509.215


_DECLINED = [
    json.dumps(rec).encode()
    for rec in (
        {"log": "a docker line\n", "stream": "stdout", "time": "2026-03-01T10:05:09.218Z"},
        {"traceparent": f"00-{TRACE}-{SPAN}-01", "level": "info"},
        {"trace_id": "4cece391-bbf1-bd9e-df9c-e27a65aa250b"},
        {"ts": "1772359509.218", "trace_id": TRACE},
        {"ts": "2026-03-01T10:05:09.218Z trailing", "trace_id": TRACE},
        {"ts": "2026-03-01T10:05:09.1234567891Z", "trace_id": TRACE},
        {"span.kind": "server", "duration_ms": 1, "span.start": 1772359509, "trace_id": TRACE},
        {"span.kind": "server", "duration_ms": 1, "span.start_ns": 1, "trace_id": TRACE},
        # collectors' and backends' wrappers
        {"trace": f"projects/p/traces/{TRACE}", "spanId": SPAN, "severity": "ERROR"},
        {"log": "x\n", "stream": "stderr", "level": "info", "trace_id": TRACE},
        {"MESSAGE": "m", "__REALTIME_TIMESTAMP": "1772359509218055", "PRIORITY": "3"},
        {"_source": {"trace.id": TRACE}, "_index": "logs"},
        {"line": "{}", "labels": {"app": "x"}, "timestamp": "2026-03-01T10:05:09.218Z"},
        {"message": "m", "timestamp": 1772359509218, "logStreamName": "s", "trace_id": TRACE},
        {"dd.trace_id": "1", "_dd.p.tid": "66e0a25600000000", "dd.span_id": "2"},
    )
] + [
    b'{"trace": {"id": "%s"}, "span": {"\\u0069d": "%s"}}' % (TRACE.encode(), SPAN.encode()),
    b'{"trace": {"id": "%s", "id": "%s"}}' % (TRACE.encode(), TRACE[::-1].encode()),
]


@pytest.mark.parametrize("line", _DECLINED)
def test_declines_what_python_reads_its_own_way(line: bytes) -> None:
    assert native.parse(line) is None
    _same(line + b"\n")


# ---------------------------------------------------------------- generated records

_hex = "0123456789abcdef"


@st.composite
def _iso(draw: st.DrawFn) -> str:
    sec = draw(st.integers(0, 4_102_444_800))
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    text = text.replace("T", draw(st.sampled_from("TTt ")))
    digits = draw(st.integers(0, 10))
    if digits:
        text += draw(st.sampled_from(".,")) + "".join(
            draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits))
        )
    tail = draw(
        st.sampled_from(["Z", "", "z", "+00:00", "+05:30", "-08:00", "+0530", "-03", " Z", "UTC"])
    )
    return text + tail


_stamp = st.one_of(
    _iso(),
    st.integers(-5, 2 * 10**19),
    st.floats(0, 2e19, allow_nan=False),
    st.sampled_from([1772359509, 1772359509.218, 1772359509218, 1772359509218055, True, "", "x"]),
    # where the unit changes: seconds, milliseconds, microseconds, nanoseconds, none
    st.sampled_from([10**11, 10**14, 10**17, 10**20]).flatmap(
        lambda edge: st.sampled_from([edge - 1, edge, edge + 1, edge - 0.5, float(edge)])
    ),
    st.none(),
)


def _ids(width: int) -> st.SearchStrategy[Any]:
    digits = st.text(_hex, min_size=width, max_size=width)
    return st.one_of(
        digits,
        digits.map(str.upper),
        digits.map(lambda s: "0x" + s),
        st.text(_hex, min_size=1, max_size=width + 2),
        st.sampled_from(["0" * width, "", "  ", "not-an-id"]),
        st.integers(-3, 2**130),
        st.none(),
        st.floats(allow_nan=False),
    )


def _decimal(width: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-3, 2 ** (4 * width) + 5),
        st.integers(0, 2 ** (4 * width) + 5).map(str),
        st.sampled_from(["", "12a", "0", "007", None, 1.5, True]),
    )


_levels = st.one_of(
    st.sampled_from(["info", "INFO", "error", "Err", "FATAL", "warning", "critical", "panic"]),
    st.integers(0, 70),
    st.sampled_from([50.0, True, None, ""]),
)
_service = st.one_of(
    st.sampled_from(["users", "orders", ""]), st.text(max_size=3), st.none(), st.integers()
)
_small = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=4))


def _nested(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.fixed_dictionaries({key: values}),
        st.fixed_dictionaries({key: values, "other": _small}),
        st.just({}),
        _small,
    )


_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "timestamp": _stamp,
    "@timestamp": _stamp,
    "time": _stamp,
    "ts": _stamp,
    "asctime": _stamp,
    "timeUnixNano": _stamp,
    "level": _levels,
    "levelname": _levels,
    "severity": _levels,
    "severityText": _levels,
    "log.level": _levels,
    "log": _nested("level", _levels),
    "service": _service | _nested("name", _service),
    "service.name": _service,
    "service_name": _service,
    "serviceName": _service,
    "app": _service,
    "application": _service,
    "dd.service": _service,
    "trace_id": _ids(32),
    "traceId": _ids(32),
    "traceID": _ids(32),
    "otelTraceID": _ids(32),
    "trace.id": _ids(32),
    "trace": _nested("id", _ids(32)),
    "dd.trace_id": _decimal(32),
    "dd": st.fixed_dictionaries({"trace_id": _decimal(32), "span_id": _decimal(16)}) | _small,
    "span_id": _ids(16),
    "spanId": _ids(16),
    "spanID": _ids(16),
    "otelSpanID": _ids(16),
    "span.id": _ids(16),
    "span": _nested("id", _ids(16)),
    "dd.span_id": _decimal(16),
    "parent_span_id": _ids(16),
    "parentSpanId": _ids(16),
    "parent_id": _ids(16),
    "parent.id": _ids(16),
    "span.kind": st.sampled_from(["client", "server", "producer", "internal", None, 3]),
    "span.start": _stamp,
    "duration_ms": st.one_of(st.floats(-1e17, 1e17, allow_nan=False), st.integers(-(2**60), 2**60)),
    "error.type": _small,
    "exc_info": _small,
    "http.response.status_code": st.one_of(st.integers(100, 599), _small),
    "msg": st.text(max_size=10),
}


_COMMON = {
    "trace_id": st.text(_hex, min_size=32, max_size=32),
    "timestamp": _iso(),
    "level": st.sampled_from(["INFO", "error"]),
    "service": st.sampled_from(["users", ""]),
}
"""The parser's common case (these four as strings) reads span_id and
parent_span_id alone: records with them meet the other spellings."""


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(_FIELDS)), min_size=1, max_size=9, unique=True))
    rec = {k: draw(_FIELDS[k]) for k in keys}
    if draw(st.booleans()):
        rec.update({k: draw(v) for k, v in _COMMON.items()})
        order = draw(st.permutations(list(rec)))
        rec = {k: rec[k] for k in order}
    return rec


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_records(), st.booleans()), min_size=1, max_size=10))
def test_generated_conventions(recs: list[tuple[dict[str, Any], bool]]) -> None:
    lines = [
        json.dumps(r, separators=(",", ":") if compact else None).encode() for r, compact in recs
    ]
    _same(b"\n".join(lines) + b"\n")
