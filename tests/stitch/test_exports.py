"""``--format otlp|jaeger|zipkin|perfetto``: spans rebuilt from real services' logs,
each export checked against its format's definition (see ``_exportcheck``)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from _exportcheck import (
    attributes,
    check_jaeger,
    check_zipkin,
    otlp_spans,
    parse_otlp,
    tags,
)
from _renderdata import ERROR_TRACE, EXAMPLE, EXAMPLE_TRACES, hostile_logs, skewed_copy
from _stitchutil import nonblank_lines, run

from logtrace.stitch import Options, stitch
from logtrace.testing import SynthConfig, generate

ODD_TRACE = "request-7f3a"  # an X-Request-ID, not a W3C trace ID
ORPHAN_TRACE = "5b8aa5a2d2c872e8321cf37308d69df2"


def export(tmp_path: Path, fmt: str, *argv: str) -> bytes:
    out = tmp_path / f"out.{fmt}"
    code, err = run("stitch", "-q", "--format", fmt, "-o", str(out), *argv)
    assert code == 0, err
    return out.read_bytes()


def odd_logs(dest: Path) -> Path:
    """An orphan (its parent wrote nothing), lines with a trace but no span ID,
    and a trace ID that is no hex."""
    dest.mkdir(parents=True, exist_ok=True)

    def line(ms: int, message: str, **ids: Any) -> str:
        t = f"2026-11-24T10:00:00.{ms:03d}000Z"
        return json.dumps({"timestamp": t, "level": "INFO", "message": message, **ids})

    lines = [
        line(1, "child of a silent caller", trace_id=ORPHAN_TRACE, span_id="a1a1a1a1a1a1a1a1",
             parent_span_id="b2b2b2b2b2b2b2b2"),
        line(5, "still the child", trace_id=ORPHAN_TRACE, span_id="a1a1a1a1a1a1a1a1",
             parent_span_id="b2b2b2b2b2b2b2b2"),
        line(3, "a line with the trace only", trace_id=ORPHAN_TRACE),
        line(2, "request begins", trace_id=ODD_TRACE),
        line(9, "request ends", trace_id=ODD_TRACE, level="ERROR"),
        # Numbers no 64-bit integer or double holds, nested values.
        '{"timestamp": "2026-11-24T10:00:00.004Z", "message": "odd values", "trace_id": "'
        + ORPHAN_TRACE + '", "span_id": "a1a1a1a1a1a1a1a1", "huge": 1e400, '
        '"big": 123456789012345678901234567890, "nested": {"a": [1, {"b": null}]}}',
    ]  # fmt: skip
    (dest / "odd.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("exports")
    return {
        "example": EXAMPLE,
        "skewed": skewed_copy(base / "skewed"),
        "hostile": hostile_logs(base / "hostile"),
        "odd": odd_logs(base / "odd"),
    }


def input_lines(path: Path) -> int:
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    return sum(len(nonblank_lines(f.read_bytes())) for f in files)


class TestOtlp:
    def test_every_line_parses_into_the_protobuf_messages(
        self, tmp_path: Path, inputs: dict[str, Path]
    ) -> None:
        for name, path in inputs.items():
            traces, logs = parse_otlp(export(tmp_path, "otlp", str(path)))
            assert traces, name
            records = [r for req in logs for rl in req.resource_logs for sl in rl.scope_logs
                       for r in sl.log_records]  # fmt: skip
            # Every line is a log record, those without a trace too: nothing lost.
            assert len(records) == input_lines(path), name

    def test_spans_kinds_status_and_events_of_the_example(self, tmp_path: Path) -> None:
        traces, logs = parse_otlp(export(tmp_path, "otlp", str(EXAMPLE)))
        spans = otlp_spans(traces)
        source = [json.loads(x) for f in EXAMPLE.iterdir() for x in f.read_text().splitlines()]
        assert {s.span_id.hex() for _, s in spans} == {
            r["span_id"] for r in source if "span_id" in r
        }
        assert {s.trace_id.hex() for _, s in spans} == EXAMPLE_TRACES
        failing = [(svc, s) for svc, s in spans if s.trace_id.hex() == ERROR_TRACE]
        by_name = {(svc, s.name): s for svc, s in failing}
        server = by_name["inventory", "GET /stock/{item_id}"]
        assert (
            server.kind == 2 and server.status.code == 2 and server.status.message == "LookupError"
        )
        client = by_name["storefront", "GET"]
        assert client.kind == 3 and server.parent_span_id == client.span_id
        db = by_name["inventory", "db.select"]
        assert db.kind == 1 and db.parent_span_id == server.span_id
        assert attributes(db.attributes)["table"] == {"stringValue": "stock"}
        root = by_name["storefront", "POST /orders/{item_id}"]
        assert not root.parent_span_id
        assert "order received" in [e.name for e in root.events]
        # The span record is the span, not one of its events.
        assert not any(e.name.startswith("server ") for e in root.events)
        for _, s in spans:
            assert s.start_time_unix_nano <= s.end_time_unix_nano
            for e in s.events:
                assert s.start_time_unix_nano <= e.time_unix_nano <= s.end_time_unix_nano
        records = [r for req in logs for rl in req.resource_logs for sl in rl.scope_logs
                   for r in sl.log_records]  # fmt: skip
        traced = [r for r in records if r.trace_id]
        assert {r.trace_id.hex() for r in traced} == EXAMPLE_TRACES
        assert all(r.span_id for r in traced)
        untraced = [r for r in records if not r.trace_id]
        assert any("Uvicorn running" in r.body.string_value for r in untraced)

    def test_corrected_times_with_raw_ones_kept(
        self, tmp_path: Path, inputs: dict[str, Path]
    ) -> None:
        traces, _ = parse_otlp(export(tmp_path, "otlp", str(inputs["skewed"])))
        spans = {(svc, s.trace_id.hex(), s.name): s for svc, s in otlp_spans(traces)}
        for trace in EXAMPLE_TRACES:
            client = spans["storefront", trace, "GET"]
            server = spans["inventory", trace, "GET /stock/{item_id}"]
            # Inventory's clock runs 40 ms ahead; corrected, the call holds the server span.
            assert client.start_time_unix_nano <= server.start_time_unix_nano
            assert server.end_time_unix_nano <= client.end_time_unix_nano
            raw = attributes(server.attributes)["logtrace.raw_start"]["stringValue"]
            shown = server.start_time_unix_nano / 1e9
            raw_s = _epoch(raw)
            assert 0.030 < raw_s - shown < 0.050


def _epoch(iso: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class TestJaeger:
    def test_the_ui_upload_format(self, tmp_path: Path, inputs: dict[str, Path]) -> None:
        for path in inputs.values():
            check_jaeger(json.loads(export(tmp_path, "jaeger", str(path))))

    def test_the_example_as_the_ui_shows_it(self, tmp_path: Path) -> None:
        doc = json.loads(export(tmp_path, "jaeger", str(EXAMPLE)))
        assert {t["traceID"] for t in doc["data"]} == EXAMPLE_TRACES
        failing = next(t for t in doc["data"] if t["traceID"] == ERROR_TRACE)
        services = {p["serviceName"] for p in failing["processes"].values()}
        assert services == {"storefront", "inventory"}
        errors = {s["operationName"] for s in failing["spans"] if tags(s).get("error") is True}
        assert "GET /stock/{item_id}" in errors
        server = next(s for s in failing["spans"] if s["operationName"] == "GET /stock/{item_id}")
        assert tags(server)["span.kind"] == "server"
        assert tags(server)["http.response.status_code"] == 500
        events = [
            f["value"] for log in server["logs"] for f in log["fields"] if f["key"] == "event"
        ]
        assert "stock lookup" in events

    def test_errors_only(self, tmp_path: Path) -> None:
        doc = json.loads(export(tmp_path, "jaeger", "--errors", str(EXAMPLE)))
        assert [t["traceID"] for t in doc["data"]] == [ERROR_TRACE]


class TestZipkin:
    def test_the_v2_schema(self, tmp_path: Path, inputs: dict[str, Path]) -> None:
        for path in inputs.values():
            check_zipkin(json.loads(export(tmp_path, "zipkin", str(path))))

    def test_a_schema_violation_is_caught(self, tmp_path: Path) -> None:
        import jsonschema

        doc = json.loads(export(tmp_path, "zipkin", str(EXAMPLE)))
        doc[0]["id"] = "not hex"
        with pytest.raises(jsonschema.ValidationError):
            check_zipkin(doc)

    def test_kinds_errors_and_annotations(self, tmp_path: Path) -> None:
        doc = json.loads(export(tmp_path, "zipkin", str(EXAMPLE)))
        failing = [s for s in doc if s["traceId"] == ERROR_TRACE]
        server = next(s for s in failing if s["name"] == "GET /stock/{item_id}")
        assert server["kind"] == "SERVER" and server["tags"]["error"] == "LookupError"
        assert server["localEndpoint"] == {"serviceName": "inventory"}
        assert any("stock lookup" in a["value"] for a in server["annotations"])
        db = next(s for s in failing if s["name"] == "db.select")
        assert "kind" not in db and db["parentId"] == server["id"]


class TestFlags:
    """What the logs do not say outright is flagged, in every format."""

    def test_orphans_inferred_spans_and_odd_ids(
        self, tmp_path: Path, inputs: dict[str, Path]
    ) -> None:
        doc = json.loads(export(tmp_path, "jaeger", str(inputs["odd"])))
        by_trace = {t["traceID"]: t for t in doc["data"]}
        spans = {s["spanID"]: tags(s) for s in by_trace[ORPHAN_TRACE]["spans"]}
        assert spans["a1a1a1a1a1a1a1a1"]["logtrace.orphan"] is True
        made_up = [t for t in spans.values() if t.get("logtrace.inferred")]
        assert len(made_up) == 1 and made_up[0]["logtrace.parent.inferred"] is True
        odd = [t for t in doc["data"] if t["traceID"] not in (ORPHAN_TRACE,)]
        assert len(odd) == 1
        odd_span = odd[0]["spans"][0]
        assert tags(odd_span)["logtrace.trace_id.original"] == ODD_TRACE
        assert tags(odd_span)["error"] is True

        zipkin = json.loads(export(tmp_path, "zipkin", str(inputs["odd"])))
        orphan = next(s for s in zipkin if s["id"] == "a1a1a1a1a1a1a1a1")
        assert orphan["tags"]["logtrace.orphan"] == "true"
        assert orphan["parentId"] == "b2b2b2b2b2b2b2b2"

        traces, _ = parse_otlp(export(tmp_path, "otlp", str(inputs["odd"])))
        flagged = {s.span_id.hex(): attributes(s.attributes) for _, s in otlp_spans(traces)}
        assert flagged["a1a1a1a1a1a1a1a1"]["logtrace.orphan"] == {"boolValue": True}

    def test_values_beyond_json_numbers_and_nested_ones(
        self, tmp_path: Path, inputs: dict[str, Path]
    ) -> None:
        traces, _ = parse_otlp(export(tmp_path, "otlp", str(inputs["odd"])))
        span = next(s for _, s in otlp_spans(traces) if s.span_id.hex() == "a1a1a1a1a1a1a1a1")
        event = next(e for e in span.events if e.name == "odd values")
        values = attributes(event.attributes)
        assert values["huge"] == {"stringValue": "inf"}
        assert values["big"] == {"stringValue": "123456789012345678901234567890"}
        nested = values["nested"]["kvlistValue"]["values"][0]
        assert nested["key"] == "a" and nested["value"]["arrayValue"]["values"][0] == {
            "intValue": "1"
        }
        zipkin = json.loads(export(tmp_path, "zipkin", str(inputs["odd"])))
        notes = [a["value"] for s in zipkin for a in s["annotations"] if "odd values" in a["value"]]
        assert notes == ['odd values huge=inf big=123456789012345678901234567890 '
                         'nested={"a":[1,{"b":null}]}']  # fmt: skip

    def test_spans_without_records_take_their_lines_extent(
        self, tmp_path: Path, inputs: dict[str, Path]
    ) -> None:
        doc = json.loads(export(tmp_path, "jaeger", str(inputs["odd"])))
        span = next(s for t in doc["data"] for s in t["spans"] if s["spanID"] == "a1a1a1a1a1a1a1a1")
        assert tags(span)["logtrace.extent_from_lines"] is True
        assert span["duration"] == 4000  # its lines at 1 ms and 5 ms


@pytest.fixture(scope="module")
def synth_logs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("synth-exports")
    res = generate(str(out), SynthConfig(traces=120, seed=3, corrupt_rate=0.01, noise_rate=0.05))
    return res.files


@pytest.mark.parametrize("fmt", ["otlp", "jaeger", "zipkin"])
def test_partitions_give_the_same_bytes(fmt: str, synth_logs: list[str]) -> None:
    whole = io.BytesIO()
    stitch(synth_logs, whole, Options(format=fmt))
    for count in (2, 5):
        cut = io.BytesIO()
        stitch(synth_logs, cut, Options(format=fmt, partitions=count))
        assert cut.getvalue() == whole.getvalue(), count
    data = whole.getvalue()
    if fmt == "jaeger":
        check_jaeger(json.loads(data))
    elif fmt == "zipkin":
        check_zipkin(json.loads(data))
    else:
        parse_otlp(data)


def test_perfetto_is_the_chrome_format(tmp_path: Path) -> None:
    assert export(tmp_path, "perfetto", str(EXAMPLE)) == export(tmp_path, "chrome", str(EXAMPLE))


def test_nothing_selected_is_still_a_valid_file(tmp_path: Path) -> None:
    missing = "0" * 31 + "1"
    check_jaeger(json.loads(export(tmp_path, "jaeger", "--trace", missing, str(EXAMPLE))))
    assert json.loads(export(tmp_path, "zipkin", "--trace", missing, str(EXAMPLE))) == []
