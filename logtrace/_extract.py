"""Reading a caller's trace context from request headers: the incoming half of a propagator.

:class:`Extractor` finds the headers of the formats it reads (ASGI header
lists, WSGI environs, plain mappings), reads the one shape nearly every
request carries (a valid version-00 ``traceparent``) on a fast path, and
hands everything else to the general path: each format in precedence order
(the readers in :mod:`logtrace._formats`), with a reason for each header it
ignores. :class:`~logtrace.propagation.Propagator` builds on it and adds the
writing side.

Incoming headers are untrusted input. Nothing here raises on them: a header
that is malformed, duplicated, oversized, non-ASCII or carries control
characters is ignored, the request gets a fresh valid context, and one debug
line on the ``logtrace.propagation`` logger says why, quoting the value only
escaped and truncated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from random import getrandbits
from typing import Any, TypeAlias

from ._context import TraceContext
from ._formats import (
    FORMAT_SLOTS,
    SLOT_NAMES,
    SLOT_REQUEST_ID,
    SLOT_TRACEPARENT,
    SLOT_TRACESTATE,
    Caller,
    Found,
    read_b3,
    read_w3c,
    read_xray,
)
from ._http import log_quote, wsgi_key
from ._request_id import parse_request_id, request_id_pattern
from ._w3c import ZERO_SPAN_ID, ZERO_TRACE_ID, format_traceparent, normalize_tracestate

__all__ = ["AsgiHeaders", "Extractor", "ServerReader"]

AsgiHeaders: TypeAlias = Iterable[tuple[bytes, bytes]]
ServerReader: TypeAlias = Callable[[AsgiHeaders], tuple[TraceContext, list[tuple[bytes, bytes]]]]
"""Reads one request's ASGI headers: the server span's context and its response headers."""

_log = logging.getLogger("logtrace.propagation")
_DEBUG = logging.DEBUG

# Fast path: the one shape nearly every request carries, a 55-character version-00 header.
# One C-level pass shapes the value: lowercase hex -> "x", "-" stays, anything else
# -> "!". A valid header then equals this template byte for byte (length included),
# and only the version digits remain to check. About half a regular expression's cost.
_SHAPE = bytes(
    0x78 if 0x30 <= i <= 0x39 or 0x61 <= i <= 0x66 else 0x2D if i == 0x2D else 0x21
    for i in range(256)
)
_TEMPLATE = b"xx-" + b"x" * 32 + b"-" + b"x" * 16 + b"-xx"
# sampled and random are bits 0 and 1: both live in the last hex digit of the flags.
_FLAG_BITS: dict[str | int, tuple[bool, bool]] = {}
for _c in "0123456789abcdef":
    _FLAG_BITS[_c] = _FLAG_BITS[ord(_c)] = (bool(int(_c, 16) & 1), bool(int(_c, 16) & 2))
# The same, with the tail of the server span's traceparent ("-0" and the two bits we
# write), for the server reader; by the byte of the last flags digit, in a list: the
# cheapest lookup by int. (Other bytes never get here: the shape check rejects them.)
_SERVER_FLAGS: list[tuple[bool, bool, str]] = [(False, False, "-00")] * 256
for _k, (_s, _r) in _FLAG_BITS.items():
    if isinstance(_k, int):
        _SERVER_FLAGS[_k] = (_s, _r, f"-0{_s | _r << 1}")
del _c, _k, _s, _r

# Bound once: the hot path calls them without an attribute lookup.
_new_root = TraceContext.new_root
_from_incoming = TraceContext.from_incoming
_new = tuple.__new__  # builds a TraceContext without a Python-level call


class Extractor:
    """Reads the caller's trace context in the formats ``extract`` names, first valid one wins.

    ``request_id_header`` (lowercase, or ``None``) names the request ID
    header; ``trust_incoming=False`` starts a new trace for every request and
    keeps the caller's valid context as ``TraceContext.link``. The arguments
    are taken as already validated (see :class:`~logtrace.propagation.Propagator`).
    """

    __slots__ = (
        "_asgi_slots",
        "_names",
        "_rid_bytes_match",
        "_rid_pattern",
        "_w3c_first",
        "_wsgi_keys",
        "extract",
        "request_id_header",
        "tracestate_level",
        "tracestate_max_length",
        "trust_incoming",
    )

    def __init__(
        self,
        extract: tuple[str, ...],
        request_id_header: str | None,
        trust_incoming: bool,
        tracestate_max_length: int,
        tracestate_level: int,
        request_id_max_length: int,
    ) -> None:
        self.extract = extract
        self.request_id_header = request_id_header
        self.trust_incoming = trust_incoming
        self.tracestate_max_length = tracestate_max_length
        self.tracestate_level = tracestate_level
        self._rid_pattern = request_id_pattern(request_id_max_length)
        self._rid_bytes_match = re.compile(self._rid_pattern.pattern.encode("ascii")).fullmatch

        names: dict[int, str] = {}
        for fmt in extract:
            for slot in FORMAT_SLOTS[fmt]:
                names[slot] = SLOT_NAMES[slot]
        if request_id_header is not None:
            names[SLOT_REQUEST_ID] = request_id_header
        self._names = tuple(names.items())
        self._asgi_slots = {name.encode("ascii"): slot for slot, name in self._names}
        self._wsgi_keys = tuple((slot, wsgi_key(name)) for slot, name in self._names)
        # The fast path reads a valid version-00 traceparent; it is only
        # correct when W3C has precedence.
        self._w3c_first = extract[:1] == ("tracecontext",)

    def incoming_asgi(self, headers: Iterable[tuple[bytes, bytes]]) -> TraceContext:
        """The server span's context for a request with these ASGI headers.

        ASGI header names are lowercase bytes; values are bytes.
        """
        slots = self._asgi_slots
        tp: bytes | None = None
        ts: bytes | None = None
        rid: bytes | None = None
        extra: list[tuple[int, bytes]] | None = None
        dup = False
        for name, value in headers:
            if name in slots:
                slot = slots[name]
                if slot == SLOT_TRACEPARENT:
                    if tp is None:
                        tp = value
                    else:
                        dup = True
                elif slot == SLOT_TRACESTATE:
                    ts = value if ts is None else ts + b"," + value
                elif slot == SLOT_REQUEST_ID and rid is None:
                    rid = value
                else:
                    if extra is None:
                        extra = []
                    extra.append((slot, value))
        if (
            tp is not None
            and not dup
            and self._w3c_first
            and tp.translate(_SHAPE) == _TEMPLATE
            and tp[0] == tp[1] == 48  # version 00
        ):
            text = tp.decode()  # the shape check above proved it ASCII
            trace_id = text[3:35]
            parent_id = text[36:52]
            if trace_id != ZERO_TRACE_ID and parent_id != ZERO_SPAN_ID:
                sampled, random = _FLAG_BITS[tp[54]]
                if rid is None and ts is None and self.trust_incoming:
                    # The common case: nothing else to read.
                    return _from_incoming(trace_id, parent_id, sampled, random)
                reasons: list[str] | None = None
                request_id = None
                if rid is not None:
                    if extra is None and self._rid_bytes_match(rid) is not None:
                        request_id = rid.decode("ascii")
                    else:
                        request_id, reasons = self._request_id(
                            [rid.decode("latin-1"), *_values(extra, SLOT_REQUEST_ID)], reasons
                        )
                if not self.trust_incoming:
                    return self._untrusted(
                        trace_id, parent_id, sampled, random, request_id, reasons
                    )
                return self._trusted(
                    trace_id,
                    parent_id,
                    sampled,
                    random,
                    None if ts is None else ts.decode("latin-1"),
                    request_id,
                    reasons,
                )
        if tp is None and extra is None and (rid is None or self._rid_bytes_match(rid)):
            # No trace context at all (an edge request): a new trace, no questions.
            return _new_root(True, None if rid is None else rid.decode("ascii"))
        found: Found = {}
        if tp is not None:
            found[SLOT_TRACEPARENT] = [tp.decode("latin-1")]
            if dup:
                found[SLOT_TRACEPARENT].append("")
        if ts is not None:
            found[SLOT_TRACESTATE] = [ts.decode("latin-1")]
        if rid is not None:
            found[SLOT_REQUEST_ID] = [rid.decode("latin-1")]
        if extra is not None:
            for slot, value in extra:
                found.setdefault(slot, []).append(value.decode("latin-1"))
        return self._resolve(found)

    def server_reader(
        self,
        respond: Callable[[TraceContext], list[tuple[bytes, bytes]]],
        traceresponse_header: bytes | None,
        request_id_response_header: bytes | None,
    ) -> ServerReader:
        """A function for a server: one request's ASGI headers in, the server span's
        context and the response's trace headers out.

        It gives what :meth:`incoming_asgi` and then ``respond`` would give. A
        request with a valid version-00 ``traceparent`` (with or without a
        valid request ID and ``tracestate``), or with no trace header at all,
        is read in one pass over the headers, and the response headers are
        built alongside: ``traceresponse_header`` (the server span as a W3C
        value) and ``request_id_response_header`` (the request ID echoed),
        each ``None`` when ``respond`` does not write it. Every other request
        goes through :meth:`incoming_asgi` and ``respond``, which also say why
        a header was ignored. The extractor's options are read once, here.
        """
        incoming = self.incoming_asgi

        def general(headers: AsgiHeaders) -> tuple[TraceContext, list[tuple[bytes, bytes]]]:
            ctx = incoming(headers)
            return ctx, respond(ctx)

        if not (self._w3c_first and self.trust_incoming):
            return general

        slots = self._asgi_slots
        rid_match = self._rid_bytes_match
        ts_max_length = self.tracestate_max_length
        ts_level = self.tracestate_level
        tp_name = traceresponse_header
        rid_name = request_id_response_header

        def read(headers: AsgiHeaders) -> tuple[TraceContext, list[tuple[bytes, bytes]]]:
            tp: bytes | None = None
            ts: bytes | None = None
            rid: bytes | None = None
            again = False  # a traceparent or request ID sent twice
            other = False  # B3 or X-Ray headers, which only count without a traceparent
            for name, value in headers:
                if name in slots:
                    slot = slots[name]
                    if slot == SLOT_TRACEPARENT:
                        if tp is None:
                            tp = value
                        else:
                            again = True
                    elif slot == SLOT_TRACESTATE:
                        ts = value if ts is None else ts + b"," + value
                    elif slot == SLOT_REQUEST_ID:
                        if rid is None:
                            rid = value
                        else:
                            again = True
                    else:
                        other = True
            if again or (rid is not None and rid_match(rid) is None):
                return general(headers)  # it says why on the debug logger
            if tp is not None:
                if tp.translate(_SHAPE) != _TEMPLATE or tp[0] != 48 or tp[1] != 48:
                    return general(headers)  # not a version-00 traceparent
                text = tp.decode()  # the shape check above proved it ASCII
                trace_id = text[3:35]
                parent_id = text[36:52]
                if trace_id == ZERO_TRACE_ID or parent_id == ZERO_SPAN_ID:
                    return general(headers)
                tracestate = None
                if ts is not None:
                    try:
                        tracestate = normalize_tracestate(
                            ts.decode("latin-1"), ts_max_length, ts_level
                        )
                    except ValueError:
                        return general(headers)
                sampled, random, tail = _SERVER_FLAGS[tp[54]]
                # A new span ID, made as _ids.new_span_id makes it, without the call.
                span_id = (getrandbits(64) or 1).to_bytes(8, "big").hex()
                ctx = _new(
                    TraceContext,
                    (
                        trace_id,
                        span_id,
                        parent_id,
                        sampled,
                        random,
                        tracestate,
                        None if rid is None else rid.decode("ascii"),
                        None,
                    ),
                )
            elif other:
                return general(headers)
            else:
                # No trace context at all (an edge request): a new trace.
                ctx = _new_root(True, None if rid is None else rid.decode("ascii"))
                trace_id, span_id, tail = ctx[0], ctx[1], "-03"  # sampled, random
            out = [] if tp_name is None else [(tp_name, f"00-{trace_id}-{span_id}{tail}".encode())]
            if rid is not None and rid_name is not None:
                out.append((rid_name, rid))
            return ctx, out

        return read

    def incoming_wsgi(self, environ: Mapping[str, Any]) -> TraceContext:
        """The server span's context for a request with this WSGI environ.

        WSGI servers join repeated headers with commas, so a duplicated
        ``traceparent`` arrives as one invalid value and starts a new trace.
        """
        return self._incoming_get(environ.get, self._wsgi_keys)

    def incoming(self, headers: Mapping[str, str]) -> TraceContext:
        """The server span's context for headers keyed by lowercase name."""
        return self._incoming_get(headers.get, self._names)

    def _incoming_get(
        self, get: Callable[[str], Any], keys: tuple[tuple[int, str], ...]
    ) -> TraceContext:
        if self._w3c_first:
            tp = get(keys[0][1])  # tracecontext is first: its traceparent slot comes first
            if (
                type(tp) is str
                and len(tp) == 55
                and tp.isascii()
                and tp.encode("ascii").translate(_SHAPE) == _TEMPLATE
                and tp.startswith("00")
            ):
                trace_id = tp[3:35]
                parent_id = tp[36:52]
                if trace_id != ZERO_TRACE_ID and parent_id != ZERO_SPAN_ID:
                    sampled, random = _FLAG_BITS[tp[54]]
                    reasons: list[str] | None = None
                    request_id = None
                    if self.request_id_header is not None:
                        rid = get(keys[-1][1])
                        if type(rid) is str:
                            if self._rid_pattern.fullmatch(rid) is not None:
                                request_id = rid
                            else:
                                request_id, reasons = self._request_id([rid], reasons)
                    if not self.trust_incoming:
                        return self._untrusted(
                            trace_id, parent_id, sampled, random, request_id, reasons
                        )
                    ts = get(keys[1][1])
                    if type(ts) is not str and reasons is None:
                        # The common case: nothing else to read.
                        return _from_incoming(
                            trace_id, parent_id, sampled, random, None, request_id
                        )
                    return self._trusted(
                        trace_id,
                        parent_id,
                        sampled,
                        random,
                        ts if type(ts) is str else None,
                        request_id,
                        reasons,
                    )
        found: Found = {}
        for slot, key in keys:
            value = get(key)
            if type(value) is str:
                found[slot] = [value]
        return self._resolve(found)

    def _trusted(
        self,
        trace_id: str,
        parent_id: str,
        sampled: bool,
        random: bool,
        sent_tracestate: str | None,
        request_id: str | None,
        reasons: list[str] | None,
    ) -> TraceContext:
        """A server span under the caller's, keeping its ``tracestate`` when valid
        and logging why anything else sent was ignored."""
        tracestate = None
        if sent_tracestate is not None:
            try:
                tracestate = normalize_tracestate(
                    sent_tracestate, self.tracestate_max_length, self.tracestate_level
                )
            except ValueError as e:
                if reasons is None:
                    reasons = []
                reasons.append(f"tracestate {e}: {log_quote(sent_tracestate)}")
        if reasons is not None:
            _report(reasons)
        return _from_incoming(trace_id, parent_id, sampled, random, tracestate, request_id)

    def _untrusted(
        self,
        trace_id: str,
        parent_id: str,
        sampled: bool,
        random: bool,
        request_id: str | None,
        reasons: list[str] | None,
    ) -> TraceContext:
        """A new trace linked to the caller's valid context, on an untrusted edge."""
        if reasons is not None:
            _report(reasons)
        return _new_root(
            request_id=request_id, link=format_traceparent(trace_id, parent_id, sampled, random)
        )

    def _request_id(
        self, values: list[str], reasons: list[str] | None
    ) -> tuple[str | None, list[str] | None]:
        name = self.request_id_header
        try:
            if len(values) > 1:
                raise ValueError("duplicated header")
            return parse_request_id(values[0], self._rid_pattern), reasons
        except ValueError as e:
            if reasons is None:
                reasons = []
            reasons.append(f"{name} {e}: {log_quote(values[0])}")
            return None, reasons

    def _resolve(self, found: Found) -> TraceContext:
        """The general path: every format in precedence order, with reasons for what was dropped."""
        if not found:
            return _new_root()
        reasons: list[str] = []
        caller: Caller | None = None
        sampled_hint: bool | None = None
        for fmt in self.extract:
            try:
                if fmt == "tracecontext":
                    caller = read_w3c(
                        found,
                        reasons,
                        self.trust_incoming,
                        self.tracestate_max_length,
                        self.tracestate_level,
                    )
                elif fmt == "b3":
                    caller, hint = read_b3(found)
                    if hint is not None and sampled_hint is None:
                        sampled_hint = hint
                else:
                    caller = read_xray(found)
            except ValueError as e:
                reasons.append(str(e))
                caller = None
            if caller is not None:
                break

        request_id: str | None = None
        rids = found.get(SLOT_REQUEST_ID)
        if rids:
            request_id, _ = self._request_id(rids, reasons)

        if reasons:
            _report(reasons)
        if caller is None:
            sampled = True if sampled_hint is None or not self.trust_incoming else sampled_hint
            return _new_root(sampled=sampled, request_id=request_id)
        trace_id, parent_id, sampled, random, tracestate = caller
        if not self.trust_incoming:
            link = (
                None
                if parent_id is None
                else format_traceparent(trace_id, parent_id, sampled, random)
            )
            return _new_root(request_id=request_id, link=link)
        return _from_incoming(trace_id, parent_id, sampled, random, tracestate, request_id)


def _values(extra: list[tuple[int, bytes]] | None, slot: int) -> list[str]:
    if extra is None:
        return []
    return [v.decode("latin-1") for s, v in extra if s == slot]


def _report(reasons: list[str]) -> None:
    if _log.isEnabledFor(_DEBUG):
        _log.debug("ignored incoming trace headers: %s", "; ".join(reasons))
