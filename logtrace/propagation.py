"""Reading and writing trace context in HTTP headers.

A :class:`Propagator` decides which formats are read from a request (and in
which order of precedence), which are written on outgoing calls and which on
responses. The middleware and the HTTP client integrations use the default
one (:func:`get_default`); an application changes it once at start-up with
:func:`set_default`.

Incoming headers are untrusted input. Nothing here raises on them: a header
that is malformed, duplicated, oversized, non-ASCII or carries control
characters is ignored, the request gets a fresh valid context, and one debug
line on the ``logtrace.propagation`` logger says why, quoting the value only
escaped and truncated.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._b3 import format_b3, format_b3_multi, parse_b3, parse_b3_multi
from ._context import TraceContext
from ._ids import new_span_id, new_trace_id
from ._request_id import REQUEST_ID_MAX_LENGTH, parse_request_id, request_id_pattern
from ._w3c import (
    TRACESTATE_MAX_LENGTH,
    ZERO_SPAN_ID,
    ZERO_TRACE_ID,
    format_traceparent,
    normalize_tracestate,
    parse_traceparent,
)
from ._xray import parse_xray

__all__ = [
    "EXTRACT_FORMATS",
    "INJECT_FORMATS",
    "RESPONSE_FORMATS",
    "Propagator",
    "default_propagator",
    "get_default",
    "set_default",
]

EXTRACT_FORMATS = ("tracecontext", "b3", "xray")
"""Formats a propagator can read: W3C, B3 (single header, else multi-header), X-Amzn-Trace-Id."""
INJECT_FORMATS = ("tracecontext", "b3", "b3multi", "request-id")
"""Formats a propagator can write on outgoing calls."""
RESPONSE_FORMATS = ("traceresponse", "request-id")
"""Formats a propagator can write on responses."""

_log = logging.getLogger("logtrace.propagation")
_DEBUG = logging.DEBUG

# Header slots. Each incoming header we care about maps to one small integer.
_TP, _TS, _RID, _B3, _B3_TRACE, _B3_SPAN, _B3_PARENT, _B3_SAMPLED, _B3_FLAGS, _XRAY = range(10)
_SLOT_NAMES = {
    _TP: "traceparent",
    _TS: "tracestate",
    _B3: "b3",
    _B3_TRACE: "x-b3-traceid",
    _B3_SPAN: "x-b3-spanid",
    _B3_PARENT: "x-b3-parentspanid",
    _B3_SAMPLED: "x-b3-sampled",
    _B3_FLAGS: "x-b3-flags",
    _XRAY: "x-amzn-trace-id",
}
_FORMAT_SLOTS = {
    "tracecontext": (_TP, _TS),
    "b3": (_B3, _B3_TRACE, _B3_SPAN, _B3_PARENT, _B3_SAMPLED, _B3_FLAGS),
    "xray": (_XRAY,),
}
_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_.]{0,63}")

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
del _c

# trace-flags text by [sampled][random]; other bits are always written as zero.
_FLAGS_TEXT = (("00", "02"), ("01", "03"))
_FLAGS_TAIL = (("-00", "-02"), ("-01", "-03"))

_new = tuple.__new__  # builds the NamedTuple without its Python-level __new__


def _escape(value: str) -> str:
    """``value`` made safe for a log line: escaped, ASCII-only, truncated."""
    text = ascii(value[:64])
    if len(text) > 80:
        return text[:80] + "..."
    if len(value) > 64:
        return text + "..."
    return text


class Propagator:
    """Which header formats are read (in precedence order) and written.

    ``extract``: formats read from requests, first valid one wins (see
    :data:`EXTRACT_FORMATS`). ``inject``: formats written on outgoing calls
    (see :data:`INJECT_FORMATS`); ``"request-id"`` writes the request ID
    header when the request had one. ``response``: formats written on
    responses (see :data:`RESPONSE_FORMATS`): ``"traceresponse"`` carries
    the server span as a W3C value, ``"request-id"`` echoes the request ID.
    ``request_id_header``: the request ID header's name (``None`` to neither
    read nor write one). ``trust_incoming=False`` is for a public edge: the
    caller's trace context is never continued, each request starts a new
    trace and the caller's context is kept only as ``TraceContext.link``;
    the caller's request ID, validated, is still kept.
    """

    __slots__ = (
        "_asgi_slots",
        "_names",
        "_out_b3",
        "_out_b3multi",
        "_out_rid",
        "_out_w3c",
        "_resp_rid",
        "_resp_rid_bytes",
        "_resp_tp",
        "_resp_tp_bytes",
        "_rid_bytes_match",
        "_rid_pattern",
        "_w3c_first",
        "_wsgi_keys",
        "extract",
        "inject",
        "request_id_header",
        "response",
        "traceresponse_header",
        "tracestate_level",
        "tracestate_max_length",
        "trust_incoming",
    )

    def __init__(
        self,
        *,
        extract: Sequence[str] = EXTRACT_FORMATS,
        inject: Sequence[str] = ("tracecontext", "request-id"),
        response: Sequence[str] = RESPONSE_FORMATS,
        request_id_header: str | None = "x-request-id",
        traceresponse_header: str = "traceresponse",
        trust_incoming: bool = True,
        tracestate_max_length: int = TRACESTATE_MAX_LENGTH,
        tracestate_level: int = 2,
        request_id_max_length: int = REQUEST_ID_MAX_LENGTH,
    ) -> None:
        if isinstance(extract, str) or isinstance(inject, str) or isinstance(response, str):
            raise TypeError("extract, inject and response take sequences of format names")
        for kind, given, known in (
            ("extract", extract, EXTRACT_FORMATS),
            ("inject", inject, INJECT_FORMATS),
            ("response", response, RESPONSE_FORMATS),
        ):
            for name in given:
                if name not in known:
                    raise ValueError(f"unknown {kind} format {name!r}; known: {', '.join(known)}")
            if len(set(given)) != len(given):
                raise ValueError(f"{kind} lists a format twice")
        for label, header in (
            ("request_id_header", request_id_header),
            ("traceresponse_header", traceresponse_header),
        ):
            if header is not None and _HEADER_NAME.fullmatch(header) is None:
                raise ValueError(f"{label} is not a valid header name")
        if request_id_header is not None and request_id_header.lower() in _SLOT_NAMES.values():
            raise ValueError("request_id_header clashes with a trace context header")
        if tracestate_max_length < 0:
            raise ValueError("tracestate_max_length must not be negative")
        if tracestate_level not in (1, 2):
            raise ValueError("tracestate_level is 1 or 2 (the W3C Trace Context level)")

        self.extract = tuple(extract)
        self.inject = tuple(inject)
        self.response = tuple(response)
        self.request_id_header = None if request_id_header is None else request_id_header.lower()
        self.traceresponse_header = traceresponse_header.lower()
        self.trust_incoming = trust_incoming
        self.tracestate_max_length = tracestate_max_length
        self.tracestate_level = tracestate_level
        self._rid_pattern = request_id_pattern(request_id_max_length)
        self._rid_bytes_match = re.compile(self._rid_pattern.pattern.encode("ascii")).fullmatch

        names: dict[int, str] = {}
        for fmt in self.extract:
            for slot in _FORMAT_SLOTS[fmt]:
                names[slot] = _SLOT_NAMES[slot]
        if self.request_id_header is not None:
            names[_RID] = self.request_id_header
        self._names = tuple(names.items())
        self._asgi_slots = {name.encode("ascii"): slot for slot, name in self._names}
        self._wsgi_keys = tuple(
            (slot, "HTTP_" + name.upper().replace("-", "_")) for slot, name in self._names
        )
        # The fast path reads a valid version-00 traceparent; it is only
        # correct when W3C has precedence.
        self._w3c_first = self.extract[:1] == ("tracecontext",)

        self._out_w3c = "tracecontext" in self.inject
        self._out_b3 = "b3" in self.inject
        self._out_b3multi = "b3multi" in self.inject
        self._out_rid = "request-id" in self.inject and self.request_id_header is not None
        self._resp_tp = self.traceresponse_header if "traceresponse" in self.response else None
        self._resp_rid = self.request_id_header if "request-id" in self.response else None
        self._resp_tp_bytes = None if self._resp_tp is None else self._resp_tp.encode("ascii")
        self._resp_rid_bytes = None if self._resp_rid is None else self._resp_rid.encode("ascii")

    def __repr__(self) -> str:
        return (
            f"Propagator(extract={self.extract!r}, inject={self.inject!r}, "
            f"response={self.response!r}, request_id_header={self.request_id_header!r}, "
            f"trust_incoming={self.trust_incoming!r})"
        )

    # -- incoming ---------------------------------------------------------------

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
                if slot == _TP:
                    if tp is None:
                        tp = value
                    else:
                        dup = True
                elif slot == _TS:
                    ts = value if ts is None else ts + b"," + value
                elif slot == _RID and rid is None:
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
                    return _new(
                        TraceContext,
                        (trace_id, new_span_id(), parent_id, sampled, random, None, None, None),
                    )
                reasons: list[str] | None = None
                request_id = None
                if rid is not None:
                    if extra is None and self._rid_bytes_match(rid) is not None:
                        request_id = rid.decode("ascii")
                    else:
                        request_id, reasons = self._request_id(
                            [rid.decode("latin-1"), *_values(extra, _RID)], reasons
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
            return _new(
                TraceContext,
                (
                    new_trace_id(),
                    new_span_id(),
                    None,
                    True,
                    True,
                    None,
                    None if rid is None else rid.decode("ascii"),
                    None,
                ),
            )
        found: dict[int, list[str]] = {}
        if tp is not None:
            found[_TP] = [tp.decode("latin-1")]
            if dup:
                found[_TP].append("")
        if ts is not None:
            found[_TS] = [ts.decode("latin-1")]
        if rid is not None:
            found[_RID] = [rid.decode("latin-1")]
        if extra is not None:
            for slot, value in extra:
                found.setdefault(slot, []).append(value.decode("latin-1"))
        return self._resolve(found)

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
            tp = get(keys[0][1])  # tracecontext is first: slot _TP comes first
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
                        return _new(
                            TraceContext,
                            (
                                trace_id,
                                new_span_id(),
                                parent_id,
                                sampled,
                                random,
                                None,
                                request_id,
                                None,
                            ),
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
        found: dict[int, list[str]] = {}
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
                reasons.append(f"tracestate {e}: {_escape(sent_tracestate)}")
        if reasons is not None:
            _report(reasons)
        return _new(
            TraceContext,
            (trace_id, new_span_id(), parent_id, sampled, random, tracestate, request_id, None),
        )

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
        link = f"00-{trace_id}-{parent_id}-{_FLAGS_TEXT[sampled][random]}"
        return _new(
            TraceContext,
            (new_trace_id(), new_span_id(), None, True, True, None, request_id, link),
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
            reasons.append(f"{name} {e}: {_escape(values[0])}")
            return None, reasons

    def _resolve(self, found: dict[int, list[str]]) -> TraceContext:
        """The general path: every format in precedence order, with reasons for what was dropped."""
        if not found:
            return _new(
                TraceContext,
                (new_trace_id(), new_span_id(), None, True, True, None, None, None),
            )
        reasons: list[str] = []
        caller: tuple[str, str | None, bool, bool, str | None] | None = None
        sampled_hint: bool | None = None
        for fmt in self.extract:
            try:
                if fmt == "tracecontext":
                    caller = self._from_w3c(found, reasons)
                elif fmt == "b3":
                    caller, hint = self._from_b3(found)
                    if hint is not None and sampled_hint is None:
                        sampled_hint = hint
                else:
                    caller = self._from_xray(found)
            except ValueError as e:
                reasons.append(str(e))
                caller = None
            if caller is not None:
                break

        request_id: str | None = None
        rids = found.get(_RID)
        if rids:
            request_id, _ = self._request_id(rids, reasons)

        if reasons:
            _report(reasons)
        if caller is None:
            sampled = True if sampled_hint is None or not self.trust_incoming else sampled_hint
            return _new(
                TraceContext,
                (new_trace_id(), new_span_id(), None, sampled, True, None, request_id, None),
            )
        trace_id, parent_id, sampled, random, tracestate = caller
        if not self.trust_incoming:
            link = (
                None
                if parent_id is None
                else format_traceparent(trace_id, parent_id, sampled, random)
            )
            return _new(
                TraceContext,
                (new_trace_id(), new_span_id(), None, True, True, None, request_id, link),
            )
        return _new(
            TraceContext,
            (trace_id, new_span_id(), parent_id, sampled, random, tracestate, request_id, None),
        )

    def _from_w3c(
        self, found: dict[int, list[str]], reasons: list[str]
    ) -> tuple[str, str | None, bool, bool, str | None] | None:
        tps = found.get(_TP)
        if not tps:
            return None
        if len(tps) > 1:
            raise ValueError("traceparent duplicated header")
        try:
            parsed = parse_traceparent(tps[0])
        except ValueError as e:
            raise ValueError(f"traceparent {e}: {_escape(tps[0])}") from None
        tracestate = None
        tss = found.get(_TS)
        if tss and self.trust_incoming:
            combined = ",".join(tss)
            try:
                tracestate = normalize_tracestate(
                    combined, self.tracestate_max_length, self.tracestate_level
                )
            except ValueError as e:
                reasons.append(f"tracestate {e}: {_escape(combined)}")
        return parsed.trace_id, parsed.parent_id, parsed.sampled, parsed.random, tracestate

    def _from_b3(
        self, found: dict[int, list[str]]
    ) -> tuple[tuple[str, str | None, bool, bool, str | None] | None, bool | None]:
        single = found.get(_B3)
        if single:
            if len(single) > 1:
                raise ValueError("b3 duplicated header")
            try:
                b3 = parse_b3(single[0])
            except ValueError as e:
                raise ValueError(f"b3 {e}: {_escape(single[0])}") from None
        else:
            multi: list[str | None] = []
            for slot in (_B3_TRACE, _B3_SPAN, _B3_PARENT, _B3_SAMPLED, _B3_FLAGS):
                values = found.get(slot)
                if values and len(values) > 1:
                    raise ValueError(f"{_SLOT_NAMES[slot]} duplicated header")
                multi.append(values[0] if values else None)
            if all(v is None for v in multi):
                return None, None
            try:
                b3 = parse_b3_multi(*multi)
            except ValueError as e:
                shown = ",".join("" if v is None else v for v in multi)
                raise ValueError(f"x-b3-* {e}: {_escape(shown)}") from None
        if b3.trace_id is None:
            return None, b3.sampled
        sampled = True if b3.sampled is None else b3.sampled
        return (b3.trace_id, b3.span_id, sampled, False, None), None

    def _from_xray(
        self, found: dict[int, list[str]]
    ) -> tuple[str, str | None, bool, bool, str | None] | None:
        values = found.get(_XRAY)
        if not values:
            return None
        if len(values) > 1:
            raise ValueError("x-amzn-trace-id duplicated header")
        try:
            xray = parse_xray(values[0])
        except ValueError as e:
            raise ValueError(f"x-amzn-trace-id {e}: {_escape(values[0])}") from None
        sampled = True if xray.sampled is None else xray.sampled
        return xray.trace_id, xray.parent_id, sampled, False, None

    # -- outgoing -----------------------------------------------------------------

    def outgoing(self, context: TraceContext) -> dict[str, str]:
        """Headers that make ``context.span_id`` the callee's parent span."""
        headers: dict[str, str] = {}
        if self._out_w3c:
            headers["traceparent"] = (
                f"00-{context[0]}-{context[1]}-{_FLAGS_TEXT[context[3]][context[4]]}"
            )
            if context.tracestate is not None:
                headers["tracestate"] = context.tracestate
        if self._out_b3:
            headers["b3"] = format_b3(
                context.trace_id, context.span_id, context.sampled, context.parent_span_id
            )
        if self._out_b3multi:
            headers.update(
                format_b3_multi(
                    context.trace_id, context.span_id, context.sampled, context.parent_span_id
                )
            )
        if self._out_rid and context.request_id is not None:
            headers[self.request_id_header] = context.request_id  # type: ignore[index]
        return headers

    def response_headers_asgi(self, context: TraceContext) -> list[tuple[bytes, bytes]]:
        """Headers that tell the caller which trace its request joined."""
        # Once per request: index the tuple, build the list in one go, and let
        # str.encode() take its UTF-8 fast path (every value here is validated
        # ASCII, so the bytes are the same).
        name = self._resp_tp_bytes
        rid_name = self._resp_rid_bytes
        if rid_name is None or (request_id := context[6]) is None:
            if name is None:
                return []
            return [
                (
                    name,
                    f"00-{context[0]}-{context[1]}{_FLAGS_TAIL[context[3]][context[4]]}".encode(),
                )
            ]
        if name is None:
            return [(rid_name, request_id.encode())]
        return [
            (name, f"00-{context[0]}-{context[1]}{_FLAGS_TAIL[context[3]][context[4]]}".encode()),
            (rid_name, request_id.encode()),
        ]

    def response_headers_wsgi(self, context: TraceContext) -> list[tuple[str, str]]:
        """The same as :meth:`response_headers_asgi`, as WSGI ``str`` pairs."""
        out: list[tuple[str, str]] = []
        if self._resp_tp is not None:
            value = f"00-{context[0]}-{context[1]}-{_FLAGS_TEXT[context[3]][context[4]]}"
            out.append((self._resp_tp, value))
        if self._resp_rid is not None and context.request_id is not None:
            out.append((self._resp_rid, context.request_id))
        return out


def _values(extra: list[tuple[int, bytes]] | None, slot: int) -> list[str]:
    if extra is None:
        return []
    return [v.decode("latin-1") for s, v in extra if s == slot]


def _report(reasons: list[str]) -> None:
    if _log.isEnabledFor(_DEBUG):
        _log.debug("ignored incoming trace headers: %s", "; ".join(reasons))


default_propagator = Propagator()
"""The propagator in use unless an application sets another with :func:`set_default`."""


def get_default() -> Propagator:
    """The propagator the middleware and HTTP client integrations use."""
    return default_propagator


def _chosen(propagator: Propagator | None, options: dict[str, Any]) -> Propagator:
    """The middleware's propagator: ``propagator``, a new one built from
    ``options``, or the default; never both ``propagator`` and options."""
    if propagator is None:
        return Propagator(**options) if options else get_default()
    if options:
        raise TypeError(
            f"pass either propagator= or propagator options, not both: {sorted(options)}"
        )
    return propagator


def set_default(propagator: Propagator) -> None:
    """Make ``propagator`` the default for middleware and HTTP clients created afterwards
    and for every outgoing call made from now on."""
    global default_propagator
    if not isinstance(propagator, Propagator):
        raise TypeError("set_default() takes a Propagator")
    default_propagator = propagator
