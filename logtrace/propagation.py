"""Reading and writing trace context in HTTP headers.

A :class:`Propagator` decides which formats are read from a request (and in
which order of precedence), which are written on outgoing calls and which on
responses. Reading is the :class:`~logtrace._extract.Extractor` it builds on;
writing is here. The middleware and the HTTP client integrations use the default
one (:func:`get_default`); an application changes it once at start-up with
:func:`set_default`.

Incoming headers are untrusted input. Nothing here raises on them: a header
that is malformed, duplicated, oversized, non-ASCII or carries control
characters is ignored, the request gets a fresh valid context, and one debug
line on the ``logtrace.propagation`` logger says why, quoting the value only
escaped and truncated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ._b3 import format_b3, format_b3_multi
from ._context import TraceContext
from ._extract import Extractor
from ._formats import TRACE_HEADERS
from ._request_id import REQUEST_ID_MAX_LENGTH
from ._w3c import TRACESTATE_MAX_LENGTH

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

_HEADER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_.]{0,63}")

# trace-flags text by [sampled][random]; other bits are always written as zero.
_FLAGS_TEXT = (("00", "02"), ("01", "03"))
_FLAGS_TAIL = (("-00", "-02"), ("-01", "-03"))


class Propagator(Extractor):
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
        "_out_b3",
        "_out_b3multi",
        "_out_rid",
        "_out_w3c",
        "_resp_rid",
        "_resp_rid_bytes",
        "_resp_tp",
        "_resp_tp_bytes",
        "inject",
        "response",
        "traceresponse_header",
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
        if request_id_header is not None and request_id_header.lower() in TRACE_HEADERS:
            raise ValueError("request_id_header clashes with a trace context header")
        if tracestate_max_length < 0:
            raise ValueError("tracestate_max_length must not be negative")
        if tracestate_level not in (1, 2):
            raise ValueError("tracestate_level is 1 or 2 (the W3C Trace Context level)")

        super().__init__(
            tuple(extract),
            None if request_id_header is None else request_id_header.lower(),
            trust_incoming,
            tracestate_max_length,
            tracestate_level,
            request_id_max_length,
        )
        self.inject = tuple(inject)
        self.response = tuple(response)
        self.traceresponse_header = traceresponse_header.lower()

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


default_propagator = Propagator()
"""The propagator in use unless an application sets another with :func:`set_default`."""


def get_default() -> Propagator:
    """The propagator the middleware and HTTP client integrations use."""
    return default_propagator


def chosen_propagator(propagator: Propagator | None, options: dict[str, Any]) -> Propagator:
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
