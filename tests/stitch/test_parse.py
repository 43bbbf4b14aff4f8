"""One line in, the stitcher's fields out: every format, and hostile input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logtrace.stitch._model import BROKEN, ERROR, JSON, KIND_CLIENT, LOGFMT, REASONS, SPAN_RECORD
from logtrace.stitch._parse import parse_json, parse_line, parse_logfmt

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
PARENT = "a3ce929d0e0e4736"
TS = "2026-11-24T10:00:00.123456Z"
EPOCH = 1795514400.123456


def line(obj: object) -> bytes:
    return json.dumps(obj).encode()


class TestJsonFormats:
    @pytest.mark.parametrize(
        "record",
        [
            {"trace_id": TRACE, "span_id": SPAN, "parent_span_id": PARENT},
            {"traceId": TRACE, "spanId": SPAN, "parentSpanId": PARENT},
            {"otelTraceID": TRACE, "otelSpanID": SPAN, "parent_id": PARENT},
            {"trace.id": TRACE, "span.id": SPAN, "parent.id": PARENT},
            {"trace": {"id": TRACE}, "span": {"id": SPAN}, "parent_span_id": PARENT},
            {"trace_id": TRACE.upper(), "span_id": SPAN.upper(), "parent_span_id": PARENT},
        ],
        ids=["otel", "otlp", "otel-logging", "ecs-flat", "ecs-nested", "uppercase"],
    )
    def test_ids_from_each_spelling(self, record: dict[str, object]) -> None:
        trace, span, parent, *_ = parse_line(line({"timestamp": TS, **record}))
        assert (trace, span, parent) == (TRACE, SPAN, PARENT)

    def test_elastic_apm_transaction_is_the_span_outside_a_span(self) -> None:
        """Elastic APM's log correlation: ``transaction.id`` on every line of
        a request, ``span.id`` only inside a span it opened, whose parent
        that transaction then is."""
        for tx in ({"transaction": {"id": PARENT}}, {"transaction.id": PARENT}):
            outside = parse_line(line({"timestamp": TS, "trace": {"id": TRACE}, **tx}))
            assert outside[:3] == (TRACE, PARENT, None)
            inside = parse_line(line({"timestamp": TS, "trace.id": TRACE, "span.id": SPAN, **tx}))
            assert inside[:3] == (TRACE, SPAN, PARENT)
        same = {"trace.id": TRACE, "span.id": SPAN, "transaction.id": SPAN}
        assert parse_line(line({"timestamp": TS, **same}))[:3] == (TRACE, SPAN, None)
        named = {"parent_span_id": "1" * 16, "span.id": SPAN, "transaction.id": PARENT}
        assert parse_line(line({"trace_id": TRACE, **named}))[2] == "1" * 16
        attrs = {
            "elasticapm_trace_id": TRACE,
            "elasticapm_transaction_id": PARENT,
            "elasticapm_span_id": None,
        }
        assert parse_line(line({"timestamp": TS, **attrs}))[:3] == (TRACE, PARENT, None)

    def test_datadog_decimal_ids_become_padded_hex(self) -> None:
        parsed = parse_line(line({"dd.trace_id": "1234567890123456789", "dd.span_id": 255}))
        assert parsed[0] == "0" * 16 + format(1234567890123456789, "016x")
        assert parsed[1] == "00000000000000ff"
        nested = parse_line(line({"dd": {"trace_id": "1234567890123456789", "span_id": "255"}}))
        assert nested[:2] == parsed[:2]

    def test_short_hex_ids_are_left_padded(self) -> None:
        assert parse_line(line({"trace_id": "abc"}))[0] == "abc".rjust(32, "0")

    def test_logged_traceparent(self) -> None:
        tp = f"00-{TRACE}-{SPAN}-01"
        assert parse_line(line({"traceparent": tp, "msg": "in"}))[0] == TRACE

    @pytest.mark.parametrize(
        "record",
        [
            {"service": "orders"},
            {"service.name": "orders"},
            {"service": {"name": "orders"}},
            {"service_name": "orders"},
            {"app": "orders"},
            {"otelServiceName": "orders"},
            {"otelServiceName": "unknown_service", "app": "orders"},
        ],
    )
    def test_service_spellings(self, record: dict[str, object]) -> None:
        assert parse_line(line({"trace_id": TRACE, **record}))[4] == "orders"

    @pytest.mark.parametrize("key", ["timestamp", "@timestamp", "time", "ts"])
    def test_timestamp_keys(self, key: str) -> None:
        assert parse_line(line({key: TS, "trace_id": TRACE}))[3] == pytest.approx(EPOCH)

    def test_epoch_ms_timestamp(self) -> None:
        assert parse_line(line({"ts": 1795514400123}))[3] == pytest.approx(1795514400.123)

    def test_valid_json_is_flagged_for_verbatim_output(self) -> None:
        assert parse_line(line({"trace_id": TRACE}))[5] & JSON

    @pytest.mark.parametrize(
        "record",
        [
            {"level": "error"},
            {"level": "ERROR"},
            {"levelname": "CRITICAL"},
            {"severity": "fatal"},
            {"log.level": "error"},
            {"log": {"level": "error"}},
            {"level": "info", "error.type": "TimeoutError"},
            {"level": "info", "http.response.status_code": 503},
            {"level": 50},
        ],
    )
    def test_errors_are_flagged(self, record: dict[str, object]) -> None:
        assert parse_line(line({"trace_id": TRACE, **record}))[5] & ERROR

    @pytest.mark.parametrize("level", ["info", "INFO", "debug", "warning", 30])
    def test_non_errors_are_not(self, level: object) -> None:
        assert not parse_line(line({"trace_id": TRACE, "level": level}))[5] & ERROR

    def test_span_record(self) -> None:
        record = {
            "timestamp": TS,
            "trace_id": TRACE,
            "span_id": SPAN,
            "parent_span_id": PARENT,
            "span.kind": "client",
            "span.start": "2026-11-24T10:00:00.100000Z",
            "duration_ms": 23.456,
        }
        *_, flags, reason, start = parse_line(line(record))
        assert flags & SPAN_RECORD and flags & KIND_CLIENT
        assert reason == 0
        assert start == pytest.approx(1795514400.1)

    def test_span_start_falls_back_to_end_minus_duration(self) -> None:
        record = {"timestamp": TS, "trace_id": TRACE, "span.kind": "server", "duration_ms": 123.0}
        assert parse_line(line(record))[7] == pytest.approx(EPOCH - 0.123)


class TestLogfmtAndText:
    def test_logfmt(self) -> None:
        raw = f'ts={TS} level=error service=users trace_id={TRACE} span_id={SPAN} msg="a b"'
        trace, span, _, ts, service, flags, _, _ = parse_line(raw.encode())
        assert (trace, span, service) == (TRACE, SPAN, "users")
        assert ts == pytest.approx(EPOCH)
        assert flags & LOGFMT and flags & ERROR

    def test_bare_trace_and_span_keys_with_full_hex_ids(self) -> None:
        """logtrace's readable lines once wrote ``trace=`` and ``span=``."""
        raw = f"{TS} INFO     orders app: hello trace={TRACE} span={SPAN} user_id=42"
        trace, span, parent, _, _, _, reason, _ = parse_line(raw.encode())
        assert (trace, span, parent, reason) == (TRACE, SPAN, None, 0)
        # Other values of such keys name no trace: a word, a short number.
        for other in ("trace=on span=12ms", f"trace={TRACE[:20]}"):
            assert parse_line(f"{TS} INFO {other}".encode())[0] is None

    def test_elastic_apm_text_format(self) -> None:
        """The format Elastic APM's docs give for its log correlation, outside
        a span (``span.id=None``) and inside one."""
        head = f"{TS} - shop - INFO - paid | elasticapm transaction.id={PARENT} trace.id={TRACE}"
        assert parse_line(f"{head} span.id=None".encode())[:3] == (TRACE, PARENT, None)
        assert parse_line(f"{head} span.id={SPAN}".encode())[:3] == (TRACE, SPAN, PARENT)
        attrs = f"{TS} INFO paid elasticapm_trace_id={TRACE} elasticapm_transaction_id={PARENT}"
        assert parse_line(attrs.encode())[:3] == (TRACE, PARENT, None)

    def test_logfmt_unescapes_quoted_values(self) -> None:
        assert parse_logfmt('msg="say \\"hi\\"" k=v') == {"msg": 'say "hi"', "k": "v"}

    def test_pairs_then_free_text_keep_the_text(self) -> None:
        raw = f"trace_id={TRACE} payment failed: card declined".encode()
        trace, _, _, _, _, flags, reason, _ = parse_line(raw)
        assert (trace, reason) == (TRACE, 0)
        assert not flags & LOGFMT  # a text line: its record is the whole line
        assert not flags & ERROR

    def test_pairs_then_an_error_word_is_an_error(self) -> None:
        raw = f"span_id={SPAN} trace_id={TRACE} ERROR database timeout".encode()
        trace, span, _, _, _, flags, _, _ = parse_line(raw)
        assert (trace, span) == (TRACE, SPAN)
        assert flags & ERROR and not flags & LOGFMT

    def test_pairs_then_text_read_every_key_and_the_texts_time(self) -> None:
        raw = f"service.name=pay dd.trace_id=255 {TS} oops parent_id: {PARENT}".encode()
        trace, _, parent, ts, service, flags, _, _ = parse_line(raw)
        assert (trace, parent, service) == (format(255, "032x"), PARENT, "pay")
        assert ts == pytest.approx(EPOCH)
        assert not flags & ERROR

    @pytest.mark.parametrize(
        ("named", "service"),
        [
            ("resource.service.name=pay", "pay"),
            ("otelServiceName=pay", "pay"),
            ("resource.service.name=unknown_service:python", None),
            ("resource.service.name=unknown_service", None),
            ("xresource.service.name=pay", None),
        ],
    )
    def test_opentelemetry_logging_format(self, named: str, service: str | None) -> None:
        """``LoggingInstrumentor``'s default format; a service given no name
        is ``unknown_service``, which names none (the file's is taken)."""
        raw = (
            f"2026-12-06 22:21:47,031 INFO [app] [gen.py:14] [trace_id={TRACE} span_id={SPAN}"
            f" {named} trace_sampled=True] - outer start"
        )
        trace, span, parent, ts, got, _, _, _ = parse_line(raw.encode())
        assert (trace, span, parent, got) == (TRACE, SPAN, None, service)
        assert ts is not None

    @pytest.mark.parametrize(
        ("trace_id", "expected"),
        [
            (str(int(TRACE[16:], 16)), "0" * 16 + TRACE[16:]),  # the low 64 bits, decimal
            (TRACE, TRACE),  # 128-bit IDs logged whole, as hex
        ],
    )
    def test_datadog_logging_format(self, trace_id: str, expected: str) -> None:
        """ddtrace's documented format for Python's logging."""
        raw = (
            "2026-12-06 22:21:47,031 INFO [app] [gen.py:14] [dd.service=pay dd.env=prod"
            f" dd.version=1.2 dd.trace_id={trace_id} dd.span_id={int(SPAN, 16)}] - outer start"
        )
        trace, span, parent, ts, service, _, _, _ = parse_line(raw.encode())
        assert (trace, span, parent, service) == (expected, SPAN, None, "pay")
        assert ts is not None

    @pytest.mark.parametrize("raw", [b"0=", b"a=b   ", b'k="quoted value" n=1'])
    def test_pairs_alone_stay_logfmt(self, raw: bytes) -> None:
        assert parse_line(raw)[5] & LOGFMT

    def test_logging_formatter_with_ids_in_front(self) -> None:
        import io
        import logging

        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(
            logging.Formatter("trace_id=%(trace_id)s span_id=%(span_id)s %(levelname)s %(message)s")
        )
        logger = logging.Logger("payments")
        logger.addHandler(handler)
        logger.error("card declined", extra={"trace_id": TRACE, "span_id": SPAN})
        raw = out.getvalue().rstrip("\n").encode()
        trace, span, _, _, _, flags, _, _ = parse_line(raw)
        assert (trace, span) == (TRACE, SPAN)
        assert flags & ERROR and not flags & LOGFMT

    def test_text_with_key_value_ids(self) -> None:
        raw = f"2026-11-24 10:00:00,123 ERROR [orders] boom trace_id={TRACE} span_id={SPAN}"
        trace, span, _, ts, _, flags, _, _ = parse_line(raw.encode())
        assert (trace, span) == (TRACE, SPAN)
        assert ts == pytest.approx(1795514400.123)
        assert flags & ERROR

    def test_text_with_traceparent(self) -> None:
        raw = f"Nov 24 10:00:00 host app: outgoing traceparent: 00-{TRACE}-{SPAN}-01"
        assert parse_line(raw.encode())[0] == TRACE

    def test_text_without_ids(self) -> None:
        parsed = parse_line(b"server started on port 8080")
        assert parsed[0] is None and REASONS[parsed[6]] == "no trace id"


class TestHostile:
    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            (b'{"level": "info", "msg": "cut', "unparseable json"),
            (b"\x00\x01\x02binary\xff\xfe", "binary"),
            # Deeper than every supported Python parses (3.13 takes 5 000 levels).
            (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "too deeply nested"),
            (b'{"msg": NaN}', "unparseable json"),
        ],
    )
    def test_reasons(self, raw: bytes, reason: str) -> None:
        parsed = parse_line(raw)
        assert parsed[0] is None
        assert REASONS[parsed[6]] == reason
        assert not parsed[5] & JSON

    def test_cut_json_with_a_trace_id_joins_its_trace_flagged_broken(self) -> None:
        parsed = parse_line(b'{"trace_id": "' + TRACE.encode() + b'", "msg": "cut')
        assert parsed[0] == TRACE
        assert parsed[5] & BROKEN and not parsed[5] & JSON

    def test_invalid_utf8_inside_json_is_never_copied_verbatim(self) -> None:
        parsed = parse_line(b'{"trace_id": "' + TRACE.encode() + b'", "x": "\xff"}')
        assert not parsed[5] & JSON
        assert parsed[0] == TRACE  # still attributed, through the text fallback

    def test_lone_surrogate_json_is_attributed_but_not_verbatim(self) -> None:
        parsed = parse_line(b'{"trace_id": "' + TRACE.encode() + b'", "x": "\\ud800"}')
        assert parsed[0] == TRACE and not parsed[5] & JSON

    def test_json_array_is_text(self) -> None:
        assert not parse_line(b"[1, 2, 3]")[5] & JSON

    @given(st.binary(min_size=1, max_size=300))
    def test_arbitrary_bytes_never_raise(self, raw: bytes) -> None:
        parsed = parse_line(raw)
        assert len(parsed) == 8
        if parsed[5] & JSON:
            assert isinstance(json.loads(raw), dict)

    @given(
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=10), children, max_size=4)
            ),
            max_leaves=20,
        )
    )
    def test_any_json_object_is_flagged_valid(self, value: object) -> None:
        raw = json.dumps({"trace_id": TRACE, "v": value}).encode()
        parsed = parse_line(raw)
        assert parsed[0] == TRACE
        assert parsed[5] & JSON

    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    "trace_id",
                    "span_id",
                    "timestamp",
                    "level",
                    "service",
                    "span.kind",
                    "duration_ms",
                    "trace",
                    "dd",
                    "log",
                    "parent_span_id",
                    "traceparent",
                ]
            ),
            st.one_of(
                st.none(),
                st.integers(),
                st.text(max_size=40),
                st.lists(st.integers(), max_size=2),
                st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
            ),
        )
    )
    def test_wrong_types_in_known_keys_never_raise(self, record: dict[str, object]) -> None:
        parsed = parse_line(json.dumps(record).encode())
        assert parsed[5] & JSON


HUGE = "9" * 310


class TestNumbersOutOfRange:
    """A number no float holds, or an absurd one, is an unreadable field: the line stays."""

    @pytest.mark.parametrize(
        "duration", [HUGE, "-" + HUGE, "1e400", "-1e400", "1e300", "99999999999999999999"]
    )
    def test_unreadable_duration_is_no_span_record(self, duration: str) -> None:
        raw = (
            f'{{"timestamp": "{TS}", "trace_id": "{TRACE}", "span.kind": "server", '
            f'"duration_ms": {duration}}}'
        ).encode()
        for shape in (raw, raw.replace(b"{", b'{"level": "info", "service": "a", ', 1)):
            trace, _, _, ts, _, flags, reason, start = parse_line(shape)
            assert (trace, reason, start) == (TRACE, 0, None)
            assert ts == pytest.approx(EPOCH)
            assert not flags & SPAN_RECORD

    def test_longest_readable_duration(self) -> None:
        record = {"timestamp": TS, "trace_id": TRACE, "span.kind": "server"}
        assert parse_line(line({**record, "duration_ms": 2**53}))[5] & SPAN_RECORD
        assert not parse_line(line({**record, "duration_ms": 2**53 + 1}))[5] & SPAN_RECORD

    @pytest.mark.parametrize(
        "record",
        [
            {"timestamp": int(HUGE)},
            {"ts": float("inf")},
            {"timeUnixNano": -int(HUGE)},
            {"timestamp": "0000-01-01T00:00:00Z"},
            {"span.kind": "client", "duration_ms": 5, "span.start_ns": int(HUGE)},
            {"span.kind": "client", "duration_ms": 5, "span.start": float("-inf")},
            {"http.response.status_code": float("inf")},
            {"level": float("-inf")},
        ],
    )
    def test_unreadable_numbers_elsewhere(self, record: dict[str, object]) -> None:
        parsed = parse_line(json.dumps({"trace_id": TRACE, **record}).encode())
        assert parsed[0] == TRACE
        assert parsed[3] is None or parsed[3] == pytest.approx(EPOCH)
        assert parsed[7] is None or parsed[7] == parsed[7]

    @given(
        st.dictionaries(
            st.sampled_from(
                [
                    "timestamp",
                    "ts",
                    "timeUnixNano",
                    "span.start",
                    "span.start_ns",
                    "duration_ms",
                    "http.response.status_code",
                    "level",
                    "dd.trace_id",
                    "trace_id",
                    "span.kind",
                ]
            ),
            st.integers(-(10**400), 10**400)
            | st.floats()
            | st.sampled_from(["1e400", "NaN", "inf", "\ud800", "\x00", "\r", "\u00b2"]),
        )
    )
    def test_any_number_in_any_known_key_never_raises(self, record: dict[str, object]) -> None:
        raw = json.dumps({"trace_id": TRACE, "span.kind": "server", **record}).encode(
            "utf-8", "surrogatepass"
        )
        for parsed in (parse_line(raw), parse_json(raw)):
            if parsed is not None:
                ts, start = parsed[3], parsed[7]
                assert ts is None or abs(ts) < 1e12
                assert start is None or abs(start) < 1e13

    def test_huge_integer_status_is_an_error(self) -> None:
        assert (
            parse_line(line({"trace_id": TRACE, "http.response.status_code": int(HUGE)}))[5] & ERROR
        )

    @pytest.mark.parametrize("raw", ['{"dd.trace_id": "\u00b2"}', "dd.trace_id=\u00b2 x"])
    def test_digits_int_does_not_read_are_no_id(self, raw: str) -> None:
        text = raw.encode().decode("unicode_escape").encode()
        assert parse_line(text)[0] is None


class TestFastPath:
    """The scanner's fast path must agree with the general parser on every JSON line."""

    @staticmethod
    def _same(raw: bytes) -> None:
        fast = parse_json(raw)
        slow = parse_line(raw)
        if fast is None:
            assert not slow[5] & JSON
            return
        assert fast[:3] == slow[:3] and fast[4:7] == slow[4:7]
        for a, b in ((fast[3], slow[3]), (fast[7], slow[7])):
            assert (a is None) == (b is None)
            if a is not None:
                assert a == pytest.approx(b, abs=1e-6)

    @given(
        st.fixed_dictionaries(
            {},
            optional={
                "timestamp": st.sampled_from([TS, "2026-11-24T10:00:59.999999", "garbage", 17]),
                "level": st.sampled_from(["info", "ERROR", "Fatal", "notice", 50, None]),
                "service": st.sampled_from(["orders", "", "x" * 300, 3]),
                "service.name": st.just("otel"),
                "trace_id": st.sampled_from([TRACE, "ABC", "", "not hex!", 12]),
                "span_id": st.sampled_from([SPAN, None, 7]),
                "parent_span_id": st.sampled_from([PARENT, None]),
                "span.kind": st.sampled_from(["server", "client", "internal"]),
                "span.start": st.sampled_from([TS, "2026-11-24T09:59:59.5+01:00", "bad"]),
                "duration_ms": st.sampled_from([1.5, 3, True, "2"]),
                "error.type": st.just("Timeout"),
                "exc_info": st.sampled_from(["", "Traceback"]),
                "http.response.status_code": st.sampled_from([200, 503, True]),
                "traceId": st.just(TRACE),
            },
        )
    )
    def test_agrees_with_the_general_parser(self, record: dict[str, object]) -> None:
        self._same(json.dumps(record).encode())

    def test_invalid_json(self) -> None:
        assert parse_json(b'{"trace_id": "x"') is None
        assert parse_json(b'{"a": NaN}') is None


class TestOpenTelemetryConsoleIds:
    """The SDK's console exporter writes ``"trace_id": "0x" + 32 hex digits``."""

    LINE = (
        '{"body": "payment failed", "severity_text": "ERROR", '
        '"timestamp": "2026-11-24T10:00:00.123456Z", '
        '"trace_id": "0x4bf92f3577b34da6a3ce929d0e0e4736", '
        '"span_id": "0x00f067aa0ba902b7"}'
    )

    def test_the_0x_prefix_is_dropped_so_the_line_joins_its_trace(self) -> None:
        trace, span, *_ = parse_line(self.LINE.encode())
        assert (trace, span) == (TRACE, SPAN)

    def test_a_0x_without_hex_digits_is_not_an_id_of_hex(self) -> None:
        trace, *_ = parse_line(b'{"trace_id": "0xZZ", "message": "m"}')
        assert trace == "0xZZ"
