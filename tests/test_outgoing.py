"""outgoing_headers(): the headers of one outgoing call, as a new client span."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import logtrace
from logtrace import TraceContext, outgoing_headers, propagation
from logtrace._context import CURRENT
from logtrace._outgoing import redact_url
from logtrace.propagation import Propagator

TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parts(headers: dict[str, str]) -> tuple[str, str, str]:
    m = TRACEPARENT.fullmatch(headers["traceparent"])
    assert m is not None, headers
    trace_id, span_id, flags = m.groups()
    return trace_id, span_id, flags


def run_in(ctx: TraceContext, propagator: Propagator | None = None) -> dict[str, str]:
    token = CURRENT.set(ctx)
    try:
        return outgoing_headers(propagator=propagator)
    finally:
        CURRENT.reset(token)


PARENT = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", None, True, False)


class TestOutgoingHeaders:
    def test_continues_the_current_trace_with_a_new_span_id(self) -> None:
        trace_id, span_id, flags = parts(run_in(PARENT))
        assert trace_id == PARENT.trace_id
        assert span_id != PARENT.span_id
        assert flags == "01"

    def test_every_call_is_a_new_client_span(self) -> None:
        with logtrace.span("caller") as caller:
            sent = [parts(outgoing_headers()) for _ in range(1000)]
        assert {t for t, _, _ in sent} == {caller.trace_id}
        assert len({s for _, s, _ in sent}) == 1000
        assert caller.span_id not in {s for _, s, _ in sent}

    def test_outside_any_context_each_call_starts_a_new_trace(self) -> None:
        assert logtrace.current() is None
        traces = {parts(outgoing_headers())[0] for _ in range(100)}
        assert len(traces) == 100
        assert logtrace.current() is None

    def test_the_current_context_is_left_unchanged(self) -> None:
        with logtrace.span("caller") as caller:
            outgoing_headers()
            assert logtrace.current() == caller

    @pytest.mark.parametrize(
        ("sampled", "random", "flags"),
        [(True, False, "01"), (False, False, "00"), (True, True, "03"), (False, True, "02")],
    )
    def test_trace_flags_are_kept(self, sampled: bool, random: bool, flags: str) -> None:
        ctx = PARENT._replace(sampled=sampled, random=random)
        assert parts(run_in(ctx))[2] == flags

    def test_tracestate_is_sent_when_there_is_one(self) -> None:
        assert run_in(PARENT._replace(tracestate="congo=t61rcWkgMzE"))["tracestate"] == (
            "congo=t61rcWkgMzE"
        )
        assert "tracestate" not in run_in(PARENT)

    def test_request_id_is_sent_when_the_request_had_one(self) -> None:
        headers = run_in(PARENT._replace(request_id="5f0c7c8a-7a3e-4d5f-9b1e-0c2d3e4f5a6b"))
        lowered = {k.lower(): v for k, v in headers.items()}
        assert lowered["x-request-id"] == "5f0c7c8a-7a3e-4d5f-9b1e-0c2d3e4f5a6b"
        assert "x-request-id" not in {k.lower() for k in run_in(PARENT)}

    def test_explicit_propagator_is_used(self) -> None:
        class Tagged(Propagator):
            def outgoing(self, context: TraceContext) -> dict[str, str]:
                return {"x-span": context.span_id, "x-parent": str(context.parent_span_id)}

        headers = run_in(PARENT, Tagged())
        assert headers["x-parent"] == PARENT.span_id
        assert re.fullmatch("[0-9a-f]{16}", headers["x-span"])

    def test_default_propagator_is_read_on_every_call(self) -> None:
        class Tagged(Propagator):
            def outgoing(self, context: TraceContext) -> dict[str, str]:
                return {"x-tagged": context.span_id}

        before = propagation.get_default()
        propagation.set_default(Tagged())
        try:
            assert "x-tagged" in run_in(PARENT)
        finally:
            propagation.set_default(before)
        assert "x-tagged" not in run_in(PARENT)


class TestRedactUrl:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("http://h:8080/p?q=1", "http://h:8080/p?q=1"),
            ("https://u:p@h/p", "https://h/p"),
            ("https://u@h/p", "https://h/p"),
            ("https://u:p@[::1]:9/p", "https://[::1]:9/p"),
            ("http://h/p?sig=abc&a=1", "http://h/p?sig=REDACTED&a=1"),
            (
                "http://h/?AWSAccessKeyId=A&Signature=S&X-Goog-Signature=G",
                "http://h/?AWSAccessKeyId=REDACTED&Signature=REDACTED&X-Goog-Signature=REDACTED",
            ),
            ("http://h/p?signature=lower", "http://h/p?signature=lower"),
            ("http://h/p#frag", "http://h/p"),
        ],
    )
    def test_cases(self, url: str, expected: str) -> None:
        assert redact_url(url) == expected

    @given(
        user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~", min_size=1),
        password=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ!$&'()*+,;=", min_size=4),
        path=st.text(alphabet="abc/xyz", max_size=20),
    )
    def test_userinfo_never_survives(self, user: str, password: str, path: str) -> None:
        out = redact_url(f"https://{user}:{password}@example.com:8443/{path}")
        assert password not in out
        assert out == f"https://example.com:8443/{path}"
