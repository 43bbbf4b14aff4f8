"""The Propagator: precedence, trust, request IDs, outgoing and response headers, bad input."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtrace import TraceContext, propagation
from logtrace.propagation import Propagator, get_default, set_default
from tests.servers import raw_request, run_uvicorn_thread, run_wsgi_threaded

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TP = f"00-{TRACE}-{PARENT}-01"
B3_TRACE = "80f198ee56343ba864fe8b2a57d3eff7"
B3_SPAN = "e457b5a2e4d86bd1"
XRAY = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")

Headers = list[tuple[str, str]]


def _wire(value: str) -> bytes:
    """The bytes a client sends: latin-1 when possible (round-trips), else UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def via_asgi(p: Propagator, headers: Headers) -> TraceContext:
    return p.incoming_asgi([(n.lower().encode(), _wire(v)) for n, v in headers])


def _joined(headers: Headers) -> dict[str, str]:
    """Repeated fields joined with commas, as HTTP servers present them to WSGI."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        out[key] = out[key] + "," + value if key in out else value
    return out


def via_wsgi(p: Propagator, headers: Headers) -> TraceContext:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    for name, value in _joined(headers).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return p.incoming_wsgi(environ)


def via_mapping(p: Propagator, headers: Headers) -> TraceContext:
    return p.incoming(_joined(headers))


READERS: list[Callable[[Propagator, Headers], TraceContext]] = [via_asgi, via_wsgi, via_mapping]


def assert_valid(ctx: TraceContext) -> None:
    """Whatever came in, what comes out is a well-formed context."""
    assert HEX32.fullmatch(ctx.trace_id) and ctx.trace_id != "0" * 32
    assert HEX16.fullmatch(ctx.span_id) and ctx.span_id != "0" * 16
    assert ctx.parent_span_id is None or HEX16.fullmatch(ctx.parent_span_id)
    assert ctx.tracestate is None or (
        ctx.tracestate.isascii() and ctx.tracestate.isprintable() and len(ctx.tracestate) <= 512
    )
    assert ctx.request_id is None or re.fullmatch(r"[A-Za-z0-9\-_.:/+=@]{1,128}", ctx.request_id)
    assert ctx.link is None or re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]", ctx.link)


@pytest.fixture
def debug_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="logtrace.propagation"):
        yield caplog


def propagation_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "logtrace.propagation"]


@pytest.mark.parametrize("read", READERS)
class TestContinueW3C:
    def test_server_span_continues_the_callers_trace(self, read: Any) -> None:
        ctx = read(Propagator(), [("traceparent", TP)])
        assert (ctx.trace_id, ctx.parent_span_id, ctx.sampled, ctx.random) == (
            TRACE,
            PARENT,
            True,
            False,
        )
        assert ctx.span_id not in (PARENT, "0" * 16) and HEX16.fullmatch(ctx.span_id)

    def test_every_request_gets_its_own_span_id(self, read: Any) -> None:
        ids = {read(Propagator(), [("traceparent", TP)]).span_id for _ in range(50)}
        assert len(ids) == 50

    @pytest.mark.parametrize(
        ("flags", "sampled", "random"),
        [("00", False, False), ("03", True, True), ("02", False, True), ("f9", True, False)],
    )
    def test_sampled_and_random_flags_are_kept(
        self, read: Any, flags: str, sampled: bool, random: bool
    ) -> None:
        ctx = read(Propagator(), [("traceparent", TP[:-2] + flags)])
        assert (ctx.sampled, ctx.random) == (sampled, random)
        assert ctx.traceparent.endswith("-0" + str(int(sampled) | 2 * int(random)))

    def test_tracestate_is_kept_normalised(self, read: Any) -> None:
        ctx = read(Propagator(), [("traceparent", TP), ("tracestate", "rojo=1 , congo=2\t")])
        assert ctx.tracestate == "rojo=1,congo=2"

    def test_multiple_tracestate_fields_are_combined_in_order(self, read: Any) -> None:
        ctx = read(
            Propagator(), [("traceparent", TP), ("tracestate", "a=1,b=2"), ("tracestate", "c=3")]
        )
        assert ctx.tracestate == "a=1,b=2,c=3"

    def test_future_version_is_continued(self, read: Any) -> None:
        ctx = read(Propagator(), [("traceparent", f"cc-{TRACE}-{PARENT}-01-future")])
        assert (ctx.trace_id, ctx.parent_span_id) == (TRACE, PARENT)

    def test_optional_whitespace_around_the_value(self, read: Any) -> None:
        ctx = read(Propagator(), [("traceparent", f" {TP}\t")])
        assert ctx.trace_id == TRACE

    def test_request_id_is_read(self, read: Any) -> None:
        ctx = read(
            Propagator(),
            [("traceparent", TP), ("x-request-id", "0f3c5a7e9b1d2c4e6f8a0b1c2d3e4f5a")],
        )
        assert ctx.request_id == "0f3c5a7e9b1d2c4e6f8a0b1c2d3e4f5a"


@pytest.mark.parametrize("read", READERS)
class TestNewTrace:
    def test_no_headers_start_a_new_random_sampled_trace(self, read: Any) -> None:
        ctx = read(Propagator(), [])
        assert_valid(ctx)
        assert ctx.parent_span_id is None and ctx.sampled and ctx.random
        assert ctx.traceparent.endswith("-03")
        assert read(Propagator(), []).trace_id != ctx.trace_id

    @pytest.mark.parametrize(
        "value",
        [
            f"00-{'0' * 32}-{PARENT}-01",
            f"00-{TRACE}-{'0' * 16}-01",
            f"ff-{TRACE}-{PARENT}-01",
            TP.upper(),
            TP + "-extra",
            TP + "\r\nX-Injected: 1",
            TP[:20] + "é" + TP[21:],
            "",
            "x" * 10_000,
        ],
    )
    def test_invalid_traceparent_starts_a_new_trace_and_drops_tracestate(
        self, read: Any, value: str, debug_log: pytest.LogCaptureFixture
    ) -> None:
        ctx = read(Propagator(), [("traceparent", value), ("tracestate", "congo=1")])
        assert_valid(ctx)
        assert ctx.trace_id != TRACE and ctx.parent_span_id is None
        assert ctx.tracestate is None
        lines = propagation_lines(debug_log)
        assert len(lines) == 1 and "traceparent" in lines[0]

    def test_tracestate_without_traceparent_is_ignored(self, read: Any) -> None:
        ctx = read(Propagator(), [("tracestate", "foo=1")])
        assert ctx.tracestate is None and ctx.parent_span_id is None

    def test_duplicated_traceparent_starts_a_new_trace(
        self, read: Any, debug_log: pytest.LogCaptureFixture
    ) -> None:
        ctx = read(Propagator(), [("traceparent", TP), ("traceparent", TP)])
        assert ctx.trace_id != TRACE
        assert len(propagation_lines(debug_log)) == 1


@pytest.mark.parametrize("read", READERS)
class TestBadTracestate:
    @pytest.mark.parametrize(
        "tracestate",
        [
            "foo=1,bar",
            "FOO=1",
            "foo=bar=baz",
            "foo=,bar=3",
            ",".join(f"k{i}=v" for i in range(33)),
            "a=\x00",
        ],
    )
    def test_invalid_tracestate_is_dropped_but_traceparent_kept(
        self, read: Any, tracestate: str, debug_log: pytest.LogCaptureFixture
    ) -> None:
        """Failure to parse tracestate MUST NOT affect the parsing of traceparent."""
        ctx = read(Propagator(), [("traceparent", TP), ("tracestate", tracestate)])
        assert (ctx.trace_id, ctx.parent_span_id, ctx.tracestate) == (TRACE, PARENT, None)
        lines = propagation_lines(debug_log)
        assert len(lines) == 1 and "tracestate" in lines[0]

    def test_key_grammar_level_is_configurable(self, read: Any) -> None:
        headers = [("traceparent", TP), ("tracestate", "1vendor=a,congo=b")]
        assert read(Propagator(), headers).tracestate == "1vendor=a,congo=b"
        assert read(Propagator(tracestate_level=1), headers).tracestate is None

    def test_long_tracestate_is_truncated_to_the_configured_length(self, read: Any) -> None:
        members = ",".join(f"k{i:02d}={'v' * 60}" for i in range(20))
        ctx = read(
            Propagator(tracestate_max_length=200), [("traceparent", TP), ("tracestate", members)]
        )
        assert ctx.tracestate is not None and len(ctx.tracestate) <= 200
        assert ctx.tracestate.startswith("k00=")


@pytest.mark.parametrize("read", READERS)
class TestPrecedence:
    def test_w3c_wins_over_b3_and_xray_by_default(self, read: Any) -> None:
        ctx = read(
            Propagator(),
            [("b3", f"{B3_TRACE}-{B3_SPAN}-1"), ("x-amzn-trace-id", XRAY), ("traceparent", TP)],
        )
        assert ctx.trace_id == TRACE

    def test_b3_single_is_read_when_there_is_no_traceparent(self, read: Any) -> None:
        ctx = read(Propagator(), [("b3", f"{B3_TRACE[16:]}-{B3_SPAN}-0")])
        assert (ctx.trace_id, ctx.parent_span_id, ctx.sampled, ctx.random) == (
            "0" * 16 + B3_TRACE[16:],
            B3_SPAN,
            False,
            False,
        )

    def test_b3_multi_is_read(self, read: Any) -> None:
        ctx = read(
            Propagator(),
            [
                ("X-B3-TraceId", B3_TRACE),
                ("X-B3-SpanId", B3_SPAN),
                ("X-B3-ParentSpanId", PARENT),
                ("X-B3-Sampled", "1"),
            ],
        )
        assert (ctx.trace_id, ctx.parent_span_id, ctx.sampled) == (B3_TRACE, B3_SPAN, True)

    def test_b3_single_wins_over_b3_multi(self, read: Any) -> None:
        ctx = read(
            Propagator(),
            [("x-b3-traceid", TRACE), ("x-b3-spanid", PARENT), ("b3", f"{B3_TRACE}-{B3_SPAN}")],
        )
        assert ctx.trace_id == B3_TRACE

    def test_b3_sampling_decision_alone_starts_a_trace_with_that_decision(self, read: Any) -> None:
        ctx = read(Propagator(), [("b3", "0")])
        assert ctx.parent_span_id is None and ctx.sampled is False

    def test_xray_is_read_last(self, read: Any) -> None:
        ctx = read(Propagator(), [("x-amzn-trace-id", XRAY)])
        assert (ctx.trace_id, ctx.parent_span_id, ctx.sampled) == (
            "5759e988bd862e3fe1be46a994272793",
            "53995c3f42cd8ad8",
            False,
        )

    def test_invalid_w3c_falls_back_to_the_next_valid_format(
        self, read: Any, debug_log: pytest.LogCaptureFixture
    ) -> None:
        ctx = read(Propagator(), [("traceparent", TP.upper()), ("b3", f"{B3_TRACE}-{B3_SPAN}-1")])
        assert ctx.trace_id == B3_TRACE
        assert len(propagation_lines(debug_log)) == 1

    def test_order_is_configurable(self, read: Any) -> None:
        p = Propagator(extract=("xray", "b3", "tracecontext"))
        ctx = read(p, [("traceparent", TP), ("b3", f"{B3_TRACE}-{B3_SPAN}-1")])
        assert ctx.trace_id == B3_TRACE

    def test_formats_left_out_are_not_read(self, read: Any) -> None:
        ctx = read(
            Propagator(extract=("tracecontext",)),
            [("b3", f"{B3_TRACE}-{B3_SPAN}-1"), ("x-amzn-trace-id", XRAY)],
        )
        assert ctx.parent_span_id is None and ctx.trace_id not in (
            B3_TRACE,
            "5759e988bd862e3fe1be46a994272793",
        )


@pytest.mark.parametrize("read", READERS)
class TestRequestId:
    def test_header_name_is_configurable(self, read: Any) -> None:
        p = Propagator(request_id_header="X-Correlation-ID")
        ctx = read(p, [("x-correlation-id", "abc-123"), ("x-request-id", "other")])
        assert ctx.request_id == "abc-123"
        assert p.outgoing(ctx)["x-correlation-id"] == "abc-123"
        assert ("x-correlation-id", "abc-123") in p.response_headers_wsgi(ctx)

    @pytest.mark.parametrize(
        "value", ["abc\r\nSet-Cookie: a=1", "caf\u00e9", "a b", "x" * 129, "", "\x1b[2J"]
    )
    def test_bad_request_id_is_dropped_and_trace_kept(
        self, read: Any, value: str, debug_log: pytest.LogCaptureFixture
    ) -> None:
        ctx = read(Propagator(), [("traceparent", TP), ("x-request-id", value)])
        assert ctx.request_id is None and ctx.trace_id == TRACE
        lines = propagation_lines(debug_log)
        assert len(lines) == 1 and "x-request-id" in lines[0]
        assert "\r" not in lines[0] and "\n" not in lines[0] and lines[0].isascii()

    def test_duplicated_request_id_is_dropped(self, read: Any) -> None:
        ctx = read(Propagator(), [("x-request-id", "a"), ("x-request-id", "b")])
        assert ctx.request_id is None

    def test_request_id_kept_when_trace_headers_are_bad(self, read: Any) -> None:
        ctx = read(Propagator(), [("traceparent", "junk"), ("x-request-id", "req-1")])
        assert ctx.request_id == "req-1" and ctx.parent_span_id is None

    def test_request_id_header_none_reads_and_writes_nothing(self, read: Any) -> None:
        p = Propagator(request_id_header=None)
        ctx = read(p, [("traceparent", TP), ("x-request-id", "abc")])
        assert ctx.request_id is None
        assert "x-request-id" not in p.outgoing(ctx)


@pytest.mark.parametrize("read", READERS)
class TestUntrustedEdge:
    def test_incoming_context_is_only_a_link(self, read: Any) -> None:
        p = Propagator(trust_incoming=False)
        ctx = read(
            p,
            [("traceparent", TP[:-2] + "00"), ("tracestate", "congo=1"), ("x-request-id", "req-7")],
        )
        assert ctx.trace_id != TRACE and ctx.parent_span_id is None
        assert ctx.link == TP[:-2] + "00"
        assert ctx.tracestate is None
        assert ctx.sampled and ctx.random  # the caller's flags are not obeyed
        assert ctx.request_id == "req-7"
        assert "tracestate" not in p.outgoing(ctx)

    def test_b3_caller_is_linked_as_a_traceparent(self, read: Any) -> None:
        ctx = read(Propagator(trust_incoming=False), [("b3", f"{B3_TRACE}-{B3_SPAN}-1")])
        assert ctx.link == f"00-{B3_TRACE}-{B3_SPAN}-01" and ctx.trace_id != B3_TRACE

    def test_invalid_incoming_context_is_not_linked(self, read: Any) -> None:
        ctx = read(Propagator(trust_incoming=False), [("traceparent", TP + "\n")])
        assert ctx.link is None

    def test_caller_sampling_only_header_is_not_obeyed(self, read: Any) -> None:
        ctx = read(Propagator(trust_incoming=False), [("b3", "0")])
        assert ctx.sampled is True


class TestOutgoing:
    CTX = TraceContext(TRACE, "b7ad6b7169203331", PARENT, True, True, "congo=1", "req-1")

    def test_default_writes_traceparent_tracestate_and_request_id(self) -> None:
        assert Propagator().outgoing(self.CTX) == {
            "traceparent": f"00-{TRACE}-b7ad6b7169203331-03",
            "tracestate": "congo=1",
            "x-request-id": "req-1",
        }

    def test_absent_tracestate_and_request_id_are_not_written(self) -> None:
        ctx = self.CTX._replace(tracestate=None, request_id=None)
        assert Propagator().outgoing(ctx) == {"traceparent": f"00-{TRACE}-b7ad6b7169203331-03"}

    def test_b3_formats_can_be_written(self) -> None:
        p = Propagator(inject=("b3", "b3multi"))
        assert p.outgoing(self.CTX) == {
            "b3": f"{TRACE}-b7ad6b7169203331-1-{PARENT}",
            "x-b3-traceid": TRACE,
            "x-b3-spanid": "b7ad6b7169203331",
            "x-b3-parentspanid": PARENT,
            "x-b3-sampled": "1",
        }

    def test_nothing_is_written_when_nothing_is_configured(self) -> None:
        assert Propagator(inject=()).outgoing(self.CTX) == {}

    def test_outgoing_headers_read_back_as_the_callees_parent(self) -> None:
        """What we send is what the next service continues: our span is its parent."""
        for inject in (("tracecontext",), ("b3",), ("b3multi",)):
            sent = Propagator(inject=inject).outgoing(self.CTX)
            callee = Propagator().incoming(sent)
            assert (callee.trace_id, callee.parent_span_id) == (TRACE, "b7ad6b7169203331")


class TestResponseHeaders:
    def test_default_traceresponse_and_request_id(self) -> None:
        ctx = TraceContext(TRACE, "b7ad6b7169203331", PARENT, False, True, None, "req-1")
        assert Propagator().response_headers_asgi(ctx) == [
            (b"traceresponse", f"00-{TRACE}-b7ad6b7169203331-02".encode()),
            (b"x-request-id", b"req-1"),
        ]
        assert Propagator().response_headers_wsgi(ctx) == [
            ("traceresponse", f"00-{TRACE}-b7ad6b7169203331-02"),
            ("x-request-id", "req-1"),
        ]

    def test_request_id_is_echoed_only_when_there_was_one(self) -> None:
        ctx = TraceContext(TRACE, "b7ad6b7169203331")
        assert [n for n, _ in Propagator().response_headers_asgi(ctx)] == [b"traceresponse"]

    def test_names_and_formats_are_configurable(self) -> None:
        ctx = TraceContext(TRACE, "b7ad6b7169203331", None, True, False, None, "r")
        p = Propagator(traceresponse_header="X-Trace", request_id_header="X-Correlation-ID")
        assert [n for n, _ in p.response_headers_wsgi(ctx)] == ["x-trace", "x-correlation-id"]
        assert Propagator(response=()).response_headers_asgi(ctx) == []
        assert Propagator(response=("request-id",)).response_headers_wsgi(ctx) == [
            ("x-request-id", "r")
        ]


class TestConfiguration:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"extract": ("w3c",)},
            {"inject": ("jaeger",)},
            {"response": ("traceparent",)},
            {"extract": ("b3", "b3")},
            {"extract": "tracecontext"},
            {"request_id_header": "X Request"},
            {"request_id_header": "x-req\r\nid"},
            {"request_id_header": "traceparent"},
            {"traceresponse_header": ""},
            {"tracestate_max_length": -1},
            {"tracestate_level": 3},
            {"request_id_max_length": 0},
        ],
    )
    def test_invalid_options_fail_at_construction(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises((ValueError, TypeError)):
            Propagator(**kwargs)

    def test_default_can_be_replaced_and_restored(self) -> None:
        original = get_default()
        custom = Propagator(inject=("b3",))
        try:
            set_default(custom)
            assert get_default() is custom and propagation.default_propagator is custom
        finally:
            set_default(original)
        assert get_default() is original

    def test_set_default_refuses_other_objects(self) -> None:
        with pytest.raises(TypeError):
            set_default(object())  # type: ignore[arg-type]

    def test_repr_shows_the_configuration(self) -> None:
        assert "trust_incoming=False" in repr(Propagator(trust_incoming=False))


class TestDebugLine:
    def test_one_line_for_several_bad_headers_never_raw(
        self, debug_log: pytest.LogCaptureFixture
    ) -> None:
        via_asgi(
            Propagator(),
            [
                ("traceparent", "00-\r\nevil"),
                ("b3", "bad\x00"),
                ("x-amzn-trace-id", "Root=\u2028"),
                ("x-request-id", "a\nb"),
            ],
        )
        lines = propagation_lines(debug_log)
        assert len(lines) == 1
        line = lines[0]
        for name in ("traceparent", "b3", "x-amzn-trace-id", "x-request-id"):
            assert name in line
        assert line.isascii() and "\r" not in line and "\n" not in line and "\x00" not in line

    def test_quoted_values_are_truncated(self, debug_log: pytest.LogCaptureFixture) -> None:
        via_wsgi(Propagator(), [("traceparent", "Z" * 5000)])
        (line,) = propagation_lines(debug_log)
        assert len(line) < 200 and "Z" * 65 not in line

    def test_valid_requests_log_nothing(self, debug_log: pytest.LogCaptureFixture) -> None:
        via_asgi(Propagator(), [("traceparent", TP), ("tracestate", "a=1"), ("x-request-id", "r")])
        via_asgi(Propagator(), [])
        assert propagation_lines(debug_log) == []


HEADER_NAMES = [
    "traceparent",
    "tracestate",
    "x-request-id",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "x-amzn-trace-id",
    "host",
]
near_valid = st.sampled_from(
    [
        TP,
        f"cc-{TRACE}-{PARENT}-01-x",
        f"{B3_TRACE}-{B3_SPAN}-1",
        XRAY,
        "a=1",
        "1",
        B3_TRACE,
        B3_SPAN,
    ]
)
values = st.one_of(
    st.binary(max_size=80),
    near_valid.map(str.encode),
    near_valid.flatmap(
        lambda v: st.integers(0, len(v)).flatmap(
            lambda i: st.binary(max_size=3).map(lambda b: v.encode()[:i] + b + v.encode()[i:])
        )
    ),
)


class TestNeverRaises:
    @settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), values), max_size=8), st.booleans())
    def test_asgi_any_headers_give_a_valid_context(
        self, headers: list[tuple[str, bytes]], trust: bool
    ) -> None:
        p = Propagator(trust_incoming=trust)
        ctx = p.incoming_asgi([(n.encode(), v) for n, v in headers])
        assert_valid(ctx)
        for _name, value in p.response_headers_asgi(ctx):
            assert value.isascii() and b"\r" not in value and b"\n" not in value

    @settings(max_examples=300)
    @given(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), values), max_size=8))
    def test_wsgi_and_mapping_any_headers_give_a_valid_context(
        self, headers: list[tuple[str, bytes]]
    ) -> None:
        decoded = [(n, v.decode("latin-1")) for n, v in headers]
        assert_valid(via_wsgi(Propagator(), decoded))
        assert_valid(via_mapping(Propagator(), decoded))

    @given(st.lists(st.tuples(st.sampled_from(HEADER_NAMES), values), max_size=8), st.booleans())
    def test_asgi_and_wsgi_agree(self, headers: list[tuple[str, bytes]], trust: bool) -> None:
        """Same headers, same decision, whichever path (fast or general) reads them."""
        names = [n for n, _ in headers]
        if len(names) != len(set(names)):
            return  # duplicates are joined for WSGI and stay separate for ASGI
        decoded = [(n, v.decode("latin-1")) for n, v in headers]
        p = Propagator(trust_incoming=trust)
        a = via_asgi(p, decoded)
        w = via_wsgi(p, decoded)
        m = via_mapping(p, decoded)
        assert (
            (a.parent_span_id is None) == (w.parent_span_id is None) == (m.parent_span_id is None)
        )
        if a.parent_span_id is not None:
            assert a._replace(span_id="") == w._replace(span_id="") == m._replace(span_id="")
        assert (a.tracestate, a.request_id, a.link) == (w.tracestate, w.request_id, w.link)
        assert (a.tracestate, a.request_id, a.link) == (m.tracestate, m.request_id, m.link)


class TestRealServers:
    """The values real servers hand over: uvicorn's ASGI header list, wsgiref's environ."""

    def test_uvicorn_duplicated_traceparent_and_crlf_request_id(self) -> None:
        seen: list[TraceContext] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            ctx = get_default().incoming_asgi(scope["headers"])
            seen.append(ctx)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": get_default().response_headers_asgi(ctx),
                }
            )
            await send({"type": "http.response.body", "body": json.dumps(ctx._asdict()).encode()})

        with run_uvicorn_thread(app) as server:
            ok = raw_request(
                server.port,
                (
                    f"GET / HTTP/1.1\r\nHost: x\r\ntraceparent: {TP}\r\nX-Request-ID: req-1\r\n"
                    "Connection: close\r\n\r\n"
                ).encode(),
            )
            raw_request(
                server.port,
                (
                    f"GET / HTTP/1.1\r\nHost: x\r\ntraceparent: {TP}\r\nTraceParent: {TP}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode(),
            )
            bad = raw_request(
                server.port,
                (
                    f"GET / HTTP/1.1\r\nHost: x\r\nTRACEPARENT: {TP}\r\n"
                    "X-Request-ID: \xe9vil\r\nConnection: close\r\n\r\n"
                ).encode("latin-1"),
            )
        assert seen[0].trace_id == TRACE and seen[0].request_id == "req-1"
        assert b"traceresponse: 00-" + TRACE.encode() in ok and b"x-request-id: req-1" in ok
        assert seen[1].trace_id != TRACE
        assert seen[2].trace_id == TRACE and seen[2].request_id is None
        assert b"x-request-id" not in bad and b"\xe9" not in bad.split(b"\r\n\r\n")[0]

    def test_wsgiref_joined_duplicates_start_a_new_trace(self) -> None:
        seen: list[TraceContext] = []

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            ctx = get_default().incoming_wsgi(environ)
            seen.append(ctx)
            start_response("200 OK", get_default().response_headers_wsgi(ctx))
            return [b"ok"]

        with run_wsgi_threaded(app) as server:
            raw_request(
                server.port,
                (
                    f"GET / HTTP/1.1\r\nHost: x\r\ntraceparent: {TP}\r\ntracestate: a=1\r\n"
                    "tracestate: b=2\r\nConnection: close\r\n\r\n"
                ).encode(),
            )
            raw_request(
                server.port,
                (
                    f"GET / HTTP/1.1\r\nHost: x\r\ntraceparent: {TP}\r\ntraceparent: {TP}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode(),
            )
        assert seen[0].trace_id == TRACE and seen[0].tracestate == "a=1,b=2"
        assert seen[1].trace_id != TRACE and seen[1].parent_span_id is None
