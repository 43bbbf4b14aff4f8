"""``add_trace_context`` and ``TraceContextAdder``: structlog processors."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import structlog

from logtrace import TraceContext, TraceFields, span
from logtrace._context import CURRENT
from logtrace._fields import ECS_FIELDS
from logtrace.processors import TraceContextAdder, add_trace_context

CTX = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "b7ad6b7169203331")
WITH_REQUEST = CTX._replace(request_id="req-1")


def run(processor: Any, ctx: TraceContext | None, **event: Any) -> dict[str, Any]:
    token = CURRENT.set(ctx)
    try:
        result: dict[str, Any] = processor(None, "info", dict(event))
        return result
    finally:
        CURRENT.reset(token)


class TestAddTraceContext:
    def test_adds_the_three_ids_of_the_current_context(self) -> None:
        assert run(add_trace_context, CTX, event="hi") == {
            "event": "hi",
            "trace_id": CTX.trace_id,
            "span_id": CTX.span_id,
            "parent_span_id": CTX.parent_span_id,
        }

    def test_adds_request_id_only_when_the_request_has_one(self) -> None:
        assert "request_id" not in run(add_trace_context, CTX, event="hi")
        assert run(add_trace_context, WITH_REQUEST, event="hi")["request_id"] == "req-1"

    def test_leaves_the_event_alone_outside_any_context(self) -> None:
        assert run(add_trace_context, None, event="hi", a=1) == {"event": "hi", "a": 1}

    def test_root_span_has_a_null_parent(self) -> None:
        event = run(add_trace_context, CTX._replace(parent_span_id=None), event="hi")
        assert event["parent_span_id"] is None

    @pytest.mark.parametrize("key", ["trace_id", "span_id", "parent_span_id", "request_id"])
    def test_explicitly_bound_keys_win(self, key: str) -> None:
        event = run(add_trace_context, WITH_REQUEST, event="hi", **{key: "mine"})
        assert event[key] == "mine"

    def test_returns_the_same_dict_without_copying(self) -> None:
        event: dict[str, Any] = {"event": "hi"}
        token = CURRENT.set(CTX)
        try:
            assert add_trace_context(None, "info", event) is event
        finally:
            CURRENT.reset(token)

    def test_follows_span_nesting(self) -> None:
        with span("outer") as outer:
            with span("inner") as inner:
                event = run_current(event="x")
                assert event["span_id"] == inner.span_id
                assert event["parent_span_id"] == outer.span_id
            assert run_current(event="y")["span_id"] == outer.span_id


def run_current(**event: Any) -> dict[str, Any]:
    result: dict[str, Any] = add_trace_context(None, "info", dict(event))
    return result


class TestTraceContextAdder:
    def test_ecs_names(self) -> None:
        event = run(TraceContextAdder("ecs"), WITH_REQUEST, event="hi")
        assert event == {
            "event": "hi",
            "trace.id": CTX.trace_id,
            "span.id": CTX.span_id,
            "parent.id": CTX.parent_span_id,
            "http.request.id": "req-1",
        }

    def test_custom_names(self) -> None:
        names = TraceFields("traceId", "spanId", "parentId", "requestId")
        event = run(TraceContextAdder(names), CTX, event="hi")
        assert set(event) == {"event", "traceId", "spanId", "parentId"}

    def test_default_names_match_the_plain_function(self) -> None:
        assert run(TraceContextAdder(), WITH_REQUEST, event="e") == run(
            add_trace_context, WITH_REQUEST, event="e"
        )

    def test_bound_keys_win_under_renamed_fields(self) -> None:
        event = run(TraceContextAdder(ECS_FIELDS), CTX, event="hi", **{"trace.id": "mine"})
        assert event["trace.id"] == "mine"

    @pytest.mark.parametrize("bad", ["elastic", "", 3])
    def test_rejects_unknown_presets(self, bad: Any) -> None:
        with pytest.raises(ValueError, match="field_names"):
            TraceContextAdder(bad)


class TestInAStructlogPipeline:
    def test_json_lines_carry_the_ids_and_bound_keys_win(self) -> None:
        lines: list[str] = []

        class Collect:
            def info(self, message: str) -> None:
                lines.append(message)

        log = structlog.wrap_logger(
            Collect(),
            processors=[
                structlog.contextvars.merge_contextvars,
                add_trace_context,
                structlog.processors.JSONRenderer(),
            ],
        )
        with span("work") as ctx:
            log.info("plain")
            log.bind(span_id="bound").info("bound")
            structlog.contextvars.bind_contextvars(trace_id="ctxvar")
            try:
                log.info("contextvar")
            finally:
                structlog.contextvars.clear_contextvars()
        plain, bound, ctxvar = (json.loads(line) for line in lines)
        assert plain["trace_id"] == ctx.trace_id
        assert plain["span_id"] == ctx.span_id
        assert bound["span_id"] == "bound"
        assert bound["trace_id"] == ctx.trace_id
        assert ctxvar["trace_id"] == "ctxvar"


def test_importing_the_processors_does_not_import_structlog() -> None:
    code = "import sys, logtrace.processors, logtrace.stdlib; print('structlog' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
