"""B3 propagation (Zipkin): the single ``b3`` header and the ``X-B3-*`` headers.

64-bit trace IDs are left-padded with zeros to 32 hex digits, the form every
other format here uses. Sampling states: ``1`` (sampled), ``0`` (not
sampled), ``d`` (debug, which implies sampled). Parsers raise
:class:`ValueError` with a reason that never quotes the input.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["B3", "format_b3", "format_b3_multi", "parse_b3", "parse_b3_multi"]

_SINGLE = re.compile(r"([0-9a-f]{16}|[0-9a-f]{32})-([0-9a-f]{16})(?:-([01d])(?:-([0-9a-f]{16}))?)?")
_TRACE_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_PAD = "0" * 16
_MAX_LENGTH = 128

# The multi-header form predates the spec's 1/0 and some tracers still send true/false.
_MULTI_SAMPLED = {"1": True, "0": False, "true": True, "false": False}


class B3(NamedTuple):
    """What a B3 header said. ``trace_id`` is ``None`` for a sampling-only header."""

    trace_id: str | None
    span_id: str | None
    sampled: bool | None
    """``None`` when the caller deferred the decision."""
    debug: bool = False
    parent_id: str | None = None


def _ids(trace_id: str, span_id: str, parent_id: str | None) -> tuple[str, str]:
    if len(trace_id) == 16:
        trace_id = _PAD + trace_id
    if trace_id == _ZERO_TRACE:
        raise ValueError("trace id is all zeros")
    if span_id == _ZERO_SPAN:
        raise ValueError("span id is all zeros")
    if parent_id == _ZERO_SPAN:
        raise ValueError("parent span id is all zeros")
    return trace_id, span_id


def parse_b3(value: str) -> B3:
    """Read a single ``b3`` header: ``{trace}-{span}[-{state}[-{parent}]]`` or ``{state}``."""
    value = value.strip(" \t")
    if len(value) > _MAX_LENGTH:
        raise ValueError("oversized")
    if value in ("0", "1", "d"):
        return B3(None, None, value != "0", value == "d")
    m = _SINGLE.fullmatch(value)
    if m is None:
        raise ValueError("not {trace}-{span}[-{0|1|d}[-{parent}]] in lowercase hex")
    trace_id, span_id, state, parent_id = m.groups()
    trace_id, span_id = _ids(trace_id, span_id, parent_id)
    sampled = None if state is None else state != "0"
    return B3(trace_id, span_id, sampled, state == "d", parent_id)


def parse_b3_multi(
    trace_id: str | None,
    span_id: str | None,
    parent_id: str | None = None,
    sampled: str | None = None,
    flags: str | None = None,
) -> B3:
    """Read the values of the ``X-B3-TraceId``, ``-SpanId``, ``-ParentSpanId``, ``-Sampled``
    and ``-Flags`` headers."""
    debug = False
    if flags is not None:
        if flags.strip(" \t") != "1":
            raise ValueError("X-B3-Flags is not 1")
        debug = True
    decision: bool | None = None
    if sampled is not None:
        decision = _MULTI_SAMPLED.get(sampled.strip(" \t"))
        if decision is None:
            raise ValueError("X-B3-Sampled is not 1 or 0")
    if debug:
        decision = True
    if trace_id is None and span_id is None and parent_id is None:
        if decision is None:
            raise ValueError("no B3 headers")
        return B3(None, None, decision, debug)
    if trace_id is None or span_id is None:
        raise ValueError("X-B3-TraceId and X-B3-SpanId must come together")
    trace_id = trace_id.strip(" \t")
    span_id = span_id.strip(" \t")
    if _TRACE_ID.fullmatch(trace_id) is None:
        raise ValueError("X-B3-TraceId is not 16 or 32 lowercase hex digits")
    if _SPAN_ID.fullmatch(span_id) is None:
        raise ValueError("X-B3-SpanId is not 16 lowercase hex digits")
    if parent_id is not None:
        parent_id = parent_id.strip(" \t")
        if _SPAN_ID.fullmatch(parent_id) is None:
            raise ValueError("X-B3-ParentSpanId is not 16 lowercase hex digits")
    trace_id, span_id = _ids(trace_id, span_id, parent_id)
    return B3(trace_id, span_id, decision, debug, parent_id)


def format_b3(trace_id: str, span_id: str, sampled: bool, parent_id: str | None = None) -> str:
    """A single ``b3`` header value, with the parent span when there is one."""
    state = "1" if sampled else "0"
    if parent_id is None:
        return f"{trace_id}-{span_id}-{state}"
    return f"{trace_id}-{span_id}-{state}-{parent_id}"


def format_b3_multi(
    trace_id: str, span_id: str, sampled: bool, parent_id: str | None = None
) -> dict[str, str]:
    """The ``X-B3-*`` headers (lowercase names, as HTTP/2 requires)."""
    headers = {
        "x-b3-traceid": trace_id,
        "x-b3-spanid": span_id,
        "x-b3-sampled": "1" if sampled else "0",
    }
    if parent_id is not None:
        headers["x-b3-parentspanid"] = parent_id
    return headers
