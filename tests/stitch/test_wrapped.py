"""Records wrapped by collectors and log backends are read as if each stood alone.

Each source's example line is the one docs/formats.md shows (the shapes are
the collectors' and backends' documented ones). Every check that scans also
scans with the pure-Python path and compares the rows bit for bit.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _stitchutil import nonblank_lines, run, stitch_jsonl
from _stitchutil import pure_python as _pure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtrace.stitch import _scan
from logtrace.stitch._model import ERROR, JSON, FileScan
from logtrace.stitch._parse import PARTIALS, datadog_trace, parse_line
from logtrace.stitch._record_text import record_fields

T = "4bf92f3577b34da6a3ce929d0e0e4736"
S = "00f067aa0ba902b7"
WHEN = 1796378400.25  # 2026-12-04T10:00:00.250Z
APP = {
    "timestamp": "2026-12-04T10:00:00.250Z",
    "level": "error",
    "service": "checkout",
    "trace_id": T,
    "span_id": S,
    "message": "card declined",
}
APP_LINE = json.dumps(APP)


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


EXAMPLES: dict[str, bytes] = {
    "docker": _line({"log": APP_LINE + "\n", "stream": "stdout", "time": "2026-12-04T10:00:00.9Z"}),
    "cri": b"2026-12-04T10:00:00.912345678Z stdout F " + APP_LINE.encode(),
    "journald": _line(
        {
            "__CURSOR": "s=6f1c;i=2a",
            "__REALTIME_TIMESTAMP": "1796378400250000",
            "__MONOTONIC_TIMESTAMP": "81234567",
            "PRIORITY": "3",
            "_SYSTEMD_UNIT": "checkout.service",
            "SYSLOG_IDENTIFIER": "checkout",
            "_PID": "812",
            "MESSAGE": f"trace_id={T} span_id={S} card declined",
        }
    ),
    "cloud-logging-json": _line(
        {
            "insertId": "1a2b3c",
            "jsonPayload": {"message": "card declined"},
            "resource": {
                "type": "k8s_container",
                "labels": {"project_id": "shop", "container_name": "checkout"},
            },
            "timestamp": "2026-12-04T10:00:00.250Z",
            "severity": "ERROR",
            "logName": "projects/shop/logs/stdout",
            "trace": f"projects/shop/traces/{T}",
            "spanId": S,
            "receiveTimestamp": "2026-12-04T10:00:01.1Z",
        }
    ),
    "cloud-logging-text": _line(
        {
            "insertId": "1a2b3d",
            "textPayload": "card declined",
            "resource": {"type": "cloud_run_revision", "labels": {"service_name": "checkout"}},
            "timestamp": "2026-12-04T10:00:00.250Z",
            "severity": "ERROR",
            "trace": f"projects/shop/traces/{T}",
            "spanId": S,
        }
    ),
    "loki": _line(
        {
            "labels": {"app": "checkout", "namespace": "prod"},
            "line": json.dumps(
                {"level": "error", "traceID": T, "spanID": S, "msg": "card declined"}
            ),
            "timestamp": "2026-12-04T10:00:00.25Z",
        }
    ),
    "elasticsearch-nested": _line(
        {
            "_index": "logs-checkout",
            "_id": "Xy1",
            "_score": 1.0,
            "_source": {
                "@timestamp": "2026-12-04T10:00:00.250Z",
                "log": {"level": "error"},
                "service": {"name": "checkout"},
                "trace": {"id": T},
                "span": {"id": S},
                "message": "card declined",
            },
        }
    ),
    "elasticsearch-dotted": _line(
        {
            "_index": "logs-checkout",
            "_id": "Xy2",
            "_source": {
                "@timestamp": "2026-12-04T10:00:00.250Z",
                "log.level": "error",
                "service.name": "checkout",
                "trace.id": T,
                "span.id": S,
                "message": "card declined",
            },
        }
    ),
    "cloudwatch": _line(
        {
            "timestamp": 1796378400250,
            "message": APP_LINE,
            "ingestionTime": 1796378401000,
            "logStreamName": "checkout/web/5f2c",
            "eventId": "3761",
        }
    ),
    "zap": _line(
        {
            "level": "error",
            "ts": WHEN,
            "caller": "pay/pay.go:42",
            "msg": "card declined",
            "service": "checkout",
            "trace_id": T,
            "span_id": S,
        }
    ),
    "logrus": _line(
        {
            "level": "error",
            "msg": "card declined",
            "time": "2026-12-04T10:00:00.25Z",
            "service": "checkout",
            "trace_id": T,
            "span_id": S,
        }
    ),
    "pino": _line(
        {
            "level": 50,
            "time": 1796378400250,
            "pid": 7,
            "hostname": "web-1",
            "service": "checkout",
            "msg": "card declined",
            "trace_id": T,
            "span_id": S,
        }
    ),
    "zap-nanoseconds": _line(
        {
            "level": "fatal",
            "ts": 1796378400250000000,
            "msg": "card declined",
            "service": "checkout",
            "trace_id": T,
            "span_id": S,
        }
    ),
    "otlp-record": _line(
        {
            "timeUnixNano": "1796378400250000000",
            "observedTimeUnixNano": "1796378400251000000",
            "severityNumber": 17,
            "severityText": "ERROR",
            "body": {"stringValue": "card declined"},
            "traceId": T,
            "spanId": S,
            "resource": {
                "attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]
            },
        }
    ),
    "datadog-128": _line(
        {
            "timestamp": "2026-12-04T10:00:00.250Z",
            "status": "error",
            "level": "error",
            "dd.service": "checkout",
            "dd.trace_id": str(int(T[16:], 16)),
            "dd.span_id": str(int(S, 16)),
            "_dd.p.tid": T[:16],
            "message": "card declined",
        }
    ),
    "datadog-hex": _line(
        {
            "timestamp": "2026-12-04T10:00:00.250Z",
            "level": "ERROR",
            "dd": {
                "trace_id": T,
                "span_id": str(int(S, 16)),
                "service": "checkout",
            },
            "message": "card declined",
        }
    ),
}


def _scan_both(data: bytes) -> FileScan:
    """The scan of ``data`` by both paths, asserted identical; the C one."""
    got = []
    for pure in (False, True):
        PARTIALS.clear()
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "file.log")
            Path(path).write_bytes(data)
            with _pure(pure):
                got.append(_scan.scan_task((0, "file.log", path, 0, -1), tmp))
    fast, slow = got
    assert fast.rows.tolist() == slow.rows.tolist() or fast.rows.tobytes() == slow.rows.tobytes()
    assert fast.rows.tobytes() == slow.rows.tobytes()
    assert (fast.traces, fast.spans, fast.services) == (slow.traces, slow.spans, slow.services)
    return fast


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_source_joins_its_trace(name: str) -> None:
    PARTIALS.clear()
    trace, span, _, ts, service, flags, reason, _ = parse_line(EXAMPLES[name])
    assert (trace, span, reason) == (T, S, 0)
    assert service == "checkout"
    assert ts == pytest.approx(WHEN, abs=1e-6)
    assert flags & ERROR


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_source_scans_the_same_on_both_paths(name: str) -> None:
    scan = _scan_both(EXAMPLES[name] + b"\n")
    assert scan.traces == [T]
    assert len(scan.rows) == 1


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_source_shows_its_own_message(name: str) -> None:
    raw = EXAMPLES[name]
    flags = parse_line(raw)[5]
    level, message, _ = record_fields(raw, flags)
    assert "card declined" in message
    assert "stringValue" not in message
    if name != "pino":
        assert level.lower() in ("error", "err", "fatal")


def test_the_wrappers_fields_are_fallbacks() -> None:
    # A Docker line whose payload is plain text: the wrapper's time; the file names the service.
    raw = _line({"log": "starting up\n", "stream": "stderr", "time": "2026-12-04T10:00:00.25Z"})
    trace, _, _, ts, _, flags, reason, _ = parse_line(raw)
    assert trace is None and reason != 0
    assert ts == pytest.approx(WHEN)
    assert flags == JSON  # the wrapper is JSON, copied as written; stderr is no error
    # Cloud Logging: the entry's trace when the payload names none.
    raw = _line({"textPayload": "charged", "trace": f"projects/p/traces/{T}", "spanId": S})
    assert parse_line(raw)[:2] == (T, S)
    # A payload's own fields win over the wrapper's.
    inner = dict(APP, timestamp="2026-12-04T09:00:00Z", service="payments")
    raw = _line({"log": json.dumps(inner), "stream": "stdout", "time": "2026-12-04T10:00:00Z"})
    assert parse_line(raw)[3:5] == (WHEN - 3600.25, "payments")


def test_journald_message_as_bytes_and_as_json() -> None:
    raw = _line({"MESSAGE": list(f"trace_id={T} \xff".encode("latin-1")), "PRIORITY": "6"})
    trace, _, _, _, _, flags, _, _ = parse_line(raw)
    assert trace == T and not flags & ERROR
    raw = _line({"MESSAGE": APP_LINE, "PRIORITY": "6", "SYSLOG_IDENTIFIER": "other"})
    assert parse_line(raw)[4] == "checkout"


def test_datadog_trace_ids() -> None:
    low = str(int(T[16:], 16))
    assert datadog_trace(low, T[:16]) == T
    assert datadog_trace(low, None) == "0" * 16 + T[16:]
    assert datadog_trace(T, None) == T
    assert datadog_trace(T.upper(), "ffff") == T
    assert datadog_trace(low, "not hex at all!!") == "0" * 16 + T[16:]
    assert datadog_trace(str(1 << 64), T[:16]) is None  # not a 64-bit low half
    nested = _line({"dd": {"trace_id": low, "span_id": "1"}, "_dd": {"p.tid": T[:16]}})
    assert parse_line(nested)[0] == T


def test_pino_levels_and_epoch_times() -> None:
    for level, error in ((30, False), (40, False), (50, True), (60, True)):
        raw = _line({"level": level, "time": 1796378400250, "msg": "m", "trace_id": T})
        _, _, _, ts, _, flags, _, _ = parse_line(raw)
        assert ts == pytest.approx(WHEN)
        assert bool(flags & ERROR) is error
    for ts_value in (WHEN, int(WHEN * 1e3), int(WHEN * 1e6), int(WHEN * 1e9)):
        raw = _line({"level": "info", "ts": ts_value, "msg": "m", "trace_id": T})
        assert parse_line(raw)[3] == pytest.approx(WHEN, abs=1e-5)


def test_otel_severity_and_observed_time() -> None:
    raw = _line(
        {
            "timeUnixNano": "0",
            "observedTimeUnixNano": "1796378400250000000",
            "severityNumber": 21,
            "traceId": T,
        }
    )
    _, _, _, ts, _, flags, _, _ = parse_line(raw)
    assert ts == pytest.approx(WHEN)
    assert flags & ERROR
    raw = _line({"severityNumber": 13, "severityText": "WARN", "traceId": T})
    assert not parse_line(raw)[5] & ERROR


# --------------------------------------------------------------------- CRI


def _cri(stream: str, tag: str, payload: str, n: int = 0) -> bytes:
    return f"2026-12-04T10:00:0{n}.000000001Z {stream} {tag} {payload}".encode()


def test_cri_pieces_join_their_final_piece() -> None:
    cut = [APP_LINE[:20], APP_LINE[20:90], APP_LINE[90:]]
    data = b"\n".join(
        [
            _cri("stdout", "P", cut[0]),
            _cri("stderr", "F", "panic: unrelated", 1),
            _cri("stdout", "P", cut[1]),
            _cri("stdout", "F", cut[2], 2),
            _cri("stdout", "F", "plain text after", 3),
        ]
    )
    scan = _scan_both(data + b"\n")
    rows = scan.rows
    assert rows["line"].tolist() == [1, 2, 3, 4, 5]
    # The final piece reads the whole record: its trace, span, service, time and level.
    final = rows[3]
    assert scan.traces[final["trace"]] == T
    assert scan.spans[final["span"]] == S
    assert scan.services[final["svc"]] == "checkout"
    assert final["ts"] == pytest.approx(WHEN)
    assert final["flags"] & ERROR
    assert not final["flags"] & JSON  # a CRI line is text: its record is the line
    # A piece joins the trace its text names so far; the others do not.
    assert scan.traces[rows[2]["trace"]] == T
    assert rows[1]["trace"] == -1 and rows[4]["trace"] == -1
    assert rows[4]["ts"] == pytest.approx(WHEN - 0.25 + 3, abs=1e-6)


def test_cri_lines_in_a_stitch_keep_every_line(tmp_path: Path) -> None:
    data = b"\n".join(
        [_cri("stdout", "P", APP_LINE[:50]), _cri("stdout", "F", APP_LINE[50:]), b"2026 not cri"]
    )
    path = tmp_path / "checkout_default_web-1.log"
    path.write_bytes(data + b"\n")
    PARTIALS.clear()
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    by_line = {r["line"]: r for r in records}
    assert sorted(by_line) == [1, 2, 3]
    assert by_line[2]["trace_id"] == T and by_line[2]["service"] == "checkout"
    for number, raw in nonblank_lines(data):
        assert by_line[number]["record"] == {"message": raw.decode()}


# ------------------------------------------------------ lines of many records


def _otlp_record(i: int, severity: int = 9) -> dict[str, Any]:
    return {
        "timeUnixNano": str(1796378400250000000 + i * 1_000_000),
        "severityNumber": severity,
        "body": {"stringValue": f"step {i}"},
        "traceId": T,
        "spanId": f"{i + 1:016x}",
        "attributes": [{"key": "n", "value": {"intValue": str(i)}}],
    }


def _resource(service: str) -> dict[str, Any]:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}


OTLP_BATCH = {
    "resourceLogs": [
        {
            "resource": _resource("checkout"),
            "scopeLogs": [
                {"scope": {"name": "shop"}, "logRecords": [_otlp_record(0), _otlp_record(1, 17)]}
            ],
        },
        {"resource": _resource("payments"), "scopeLogs": [{"logRecords": [_otlp_record(2)]}]},
    ]
}


def test_an_otlp_batch_line_gives_a_row_per_record(tmp_path: Path) -> None:
    line = json.dumps(OTLP_BATCH).encode()
    data = APP_LINE.encode() + b"\n" + line + b"\n" + line + b"\n"
    scan = _scan_both(data)
    assert scan.rows["line"].tolist() == [1, 2, 2, 2, 3, 3, 3]
    path = tmp_path / "otel.jsonl"
    path.write_bytes(data)
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    batch = [r for r in records if r["line"] == 2]
    assert [r["record"] for r in batch] == [_otlp_record(0), _otlp_record(1, 17), _otlp_record(2)]
    assert [r["service"] for r in batch] == ["checkout", "checkout", "payments"]
    assert {r["trace_id"] for r in records} == {T}
    assert len(records) == 7


def test_a_search_response_and_an_events_page_give_a_row_per_hit(tmp_path: Path) -> None:
    hits = [
        json.loads(EXAMPLES["elasticsearch-nested"]),
        json.loads(EXAMPLES["elasticsearch-dotted"]),
    ]
    response = {"took": 3, "timed_out": False, "hits": {"total": {"value": 2}, "hits": hits}}
    events = [json.loads(EXAMPLES["cloudwatch"])] * 2
    page = {"events": events, "searchedLogStreams": [], "nextToken": "abc"}
    data = _line(response) + b"\n" + _line(page) + b"\n"
    scan = _scan_both(data)
    assert scan.rows["line"].tolist() == [1, 1, 2, 2]
    assert scan.traces == [T]
    path = tmp_path / "exported.jsonl"
    path.write_bytes(data)
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    assert sorted((r["line"], json.dumps(r["record"])) for r in records) == sorted(
        [(1, json.dumps(h)) for h in hits] + [(2, json.dumps(e)) for e in events]
    )


@pytest.mark.parametrize(
    "record",
    [
        {"trace_id": T, "events": [{"name": "retry"}, {"name": "done"}]},
        {"trace_id": T, "hits": {"hits": [{"score": 1}]}},
        {"trace_id": T, "hits": 3, "events": "many"},
        {"resourceLogs": []},
        {"resourceLogs": [{"scopeLogs": [{"logRecords": []}]}], "trace_id": T},
    ],
)
def test_an_ordinary_record_naming_those_keys_stays_one_row(record: dict[str, Any]) -> None:
    scan = _scan_both(_line(record) + b"\n")
    assert len(scan.rows) == 1
    assert scan.rows[0]["len"] == len(_line(record))


# ------------------------------------------------------------- properties

_payloads = st.one_of(
    st.just(APP_LINE),
    st.just(APP_LINE[:40]),
    st.text(max_size=40),
    st.builds(lambda t: f"trace_id={t} ERROR x", st.sampled_from([T, "0" * 32, "zz"])),
)
_wrapped = st.one_of(
    st.builds(
        lambda p: _line({"log": p, "stream": "stdout", "time": "2026-12-04T10:00:00Z"}), _payloads
    ),
    st.builds(lambda p: _line({"MESSAGE": p, "PRIORITY": "3"}), _payloads),
    st.builds(lambda p: _line({"labels": {"app": "a"}, "line": p, "timestamp": 5}), _payloads),
    st.builds(lambda p: _line({"textPayload": p, "trace": "projects/x/traces/"}), _payloads),
    st.builds(lambda p: _line({"message": p, "timestamp": 1, "eventId": "1"}), _payloads),
    st.builds(lambda p: _line({"_source": {"message": p, "trace.id": p}}), _payloads),
    st.builds(
        lambda s, t, p: f"2026-12-04T10:00:00Z {s} {t} {p}".encode(),
        st.sampled_from(["stdout", "stderr"]),
        st.sampled_from(["P", "F"]),
        _payloads,
    ),
    st.builds(
        lambda p, n: _line(
            {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"body": {"stringValue": p}}] * n}]}]}
        ),
        _payloads,
        st.integers(0, 3),
    ),
    st.builds(
        lambda d: _line(d),
        st.dictionaries(
            st.sampled_from(
                [
                    "log",
                    "MESSAGE",
                    "line",
                    "labels",
                    "_source",
                    "jsonPayload",
                    "textPayload",
                    "resourceLogs",
                    "hits",
                    "events",
                    "trace",
                    "_dd.p.tid",
                    "dd.trace_id",
                    "severityNumber",
                    "resource",
                ]
            ),
            st.none()
            | st.integers()
            | st.text(max_size=8)
            | st.lists(st.integers(), max_size=2)
            | st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=2),
            max_size=4,
        ),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_wrapped, min_size=1, max_size=12))
def test_wrapped_lines_scan_the_same_and_lose_nothing(lines: list[bytes]) -> None:
    lines = [b" ".join(line.splitlines()) for line in lines]  # a payload may not break its line
    data = b"\n".join(lines) + b"\n"
    scan = _scan_both(data)
    numbered = {n for n, _ in nonblank_lines(data)}
    assert set(scan.rows["line"].tolist()) == numbered
    for row in scan.rows:
        assert row["off"] >= 0 and row["off"] + row["len"] <= len(data)


def test_the_summary_counts_each_record(tmp_path: Path) -> None:
    path = tmp_path / "otel.jsonl"
    path.write_bytes(json.dumps(OTLP_BATCH).encode() + b"\n")
    code, err = run("stitch", "--format", "jsonl", "-o", str(tmp_path / "o"), str(path))
    assert code == 0
    assert "3 records" in err


def _documented_lines() -> list[str]:
    """The example lines of docs/formats.md's log sources (before the lines of many records)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    section = text.split("## Log sources")[1].split("### Lines that hold many records")[0]
    lines = []
    for row in section.splitlines():
        if not row.startswith("| ") or row.startswith("| source"):
            continue
        cells = [cell.strip() for cell in row.split(" | ")]
        example = cells[1]
        assert example.startswith("`") and example.endswith("`"), row
        lines.append(example[1:-1])
    return lines


DOCUMENTED = _documented_lines()


def test_every_documented_source_is_tested() -> None:
    assert len(DOCUMENTED) >= 19


@pytest.mark.parametrize("line", DOCUMENTED)
def test_documented_example_lines(line: str) -> None:
    PARTIALS.clear()
    trace, _, _, _, _, flags, reason, _ = parse_line(line.encode())
    if '"dd.trace_id": "11803532876627986230"' in line and "_dd.p.tid" not in line:
        assert trace == "0" * 16 + T[16:]  # a 64-bit Datadog ID: the W3C trace's low half
    else:
        assert trace == T
    assert reason == 0
    assert flags & ERROR
    scan = _scan_both(line.encode() + b"\n")
    assert len(scan.rows) == 1


def test_a_lone_surrogate_in_a_service_name_is_written_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    path.write_bytes(b'{"service": "\\ud800x", "trace_id": "' + T.encode() + b'"}\n')
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    assert [r["service"] for r in records] == ["?x"]


def _stitch(path: Path, fmt: str, pure: bool) -> bytes:
    out = path.with_suffix(f".{fmt}.{int(pure)}")
    with _pure(pure):
        code, err = run("stitch", "--format", fmt, "--jobs", "1", "-q", "-o", str(out), str(path))
    assert code == 0, err
    return out.read_bytes()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_wrapped, min_size=1, max_size=10), st.sampled_from([b"\n", b"\r\n"]))
def test_wrapped_lines_stitch_to_the_same_bytes_on_both_paths(
    lines: list[bytes], ending: bytes
) -> None:
    lines = [b" ".join(line.splitlines()) for line in lines]
    data = ending.join(lines) + ending
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "svc.log"
        path.write_bytes(data)
        for fmt in ("jsonl", "text"):
            outs = [_stitch(path, fmt, pure) for pure in (False, True)]
            assert outs[0] == outs[1], fmt
        jsonl = [json.loads(line) for line in _stitch(path, "jsonl", True).splitlines()]
        assert {r["line"] for r in jsonl} == {n for n, _ in nonblank_lines(data)}
        for r in jsonl:
            raw = data.split(ending)[r["line"] - 1]
            try:
                original = json.loads(raw)
            except ValueError:
                original = None
            if isinstance(original, dict) and r["record"] != {"message": raw.decode()}:
                # The line's record, or one of the records it holds, as written.
                assert r["record"] == original or json.dumps(r["record"])[1:-1] in raw.decode()
            else:
                assert r["record"] == {"message": raw.decode("utf-8", "replace")}


def test_docker_pieces_of_a_long_line_join_the_last_one() -> None:
    # Docker cuts a line over 16 KiB into records without a final newline.
    long_line = json.dumps({**APP, "blob": "x" * 40})
    pieces = [long_line[:30], long_line[30:120], long_line[120:] + "\n"]
    data = b"\n".join(
        [
            _line({"log": pieces[0], "stream": "stdout", "time": "2026-12-04T10:00:01Z"}),
            _line({"log": "other\n", "stream": "stderr", "time": "2026-12-04T10:00:01Z"}),
            _line({"log": pieces[1], "stream": "stdout", "time": "2026-12-04T10:00:01Z"}),
            _line({"log": pieces[2], "stream": "stdout", "time": "2026-12-04T10:00:01Z"}),
        ]
    )
    scan = _scan_both(data + b"\n")
    rows = scan.rows
    last = rows[3]
    assert scan.traces[last["trace"]] == T and scan.spans[last["span"]] == S
    assert last["ts"] == pytest.approx(WHEN)  # the whole record's own time
    assert last["flags"] & ERROR and last["flags"] & JSON
    assert rows[1]["trace"] == -1
    assert rows[0]["ts"] == pytest.approx(WHEN + 0.75)  # a piece: the wrapper's time


def test_kubernetes_node_files_name_their_container(tmp_path: Path) -> None:
    """Lines that name no service take their container's, as a kubelet names
    the files; a line that names one keeps it."""
    bare = f"trace_id={T} span_id={S} payment failed: card declined"
    containers = tmp_path / "var/log/containers"
    containers.mkdir(parents=True)
    pods = tmp_path / "var/log/pods/shop_web-7d9f-abcde_0b1c2d3e-1111-2222-3333-444455556666"
    (pods / "payments").mkdir(parents=True)
    (containers / ("web-7d9f-abcde_shop_orders-" + "3f" * 32 + ".log")).write_bytes(
        _cri("stdout", "F", bare) + b"\n" + _cri("stdout", "F", APP_LINE, 1) + b"\n"
    )
    (pods / "payments" / "0.log").write_bytes(_cri("stderr", "F", bare, 2) + b"\n")
    records = stitch_jsonl(tmp_path / "out.jsonl", str(containers), str(pods))
    assert sorted(r["service"] for r in records) == ["checkout", "orders", "payments"]
