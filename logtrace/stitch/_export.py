"""Exports to trace viewers: OTLP JSON, Jaeger UI JSON, Zipkin v2.

Each format renders one trace at a time (:mod:`._spans` rebuilds its
spans) into a fragment; a file is the fragments between the format's
frame. A run of many partitions writes each partition's fragments without
the frame, with an index of where each trace went, and the merge puts them
between the frame with the separator (see :func:`._write.merge`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

import numpy as np
import numpy.typing as npt

from ._model import Rendering
from ._render_jaeger import jaeger_trace
from ._render_otlp import otlp_trace, otlp_untraced
from ._render_zipkin import zipkin_trace
from ._spans import TraceSpans, trace_spans, untraced_events

__all__ = ["EXPORT_FORMATS", "FRAMES", "write_export"]

EXPORT_FORMATS = ("otlp", "jaeger", "zipkin")

FRAMES: dict[str, tuple[bytes, bytes, bytes]] = {
    "otlp": (b"", b"", b""),
    "jaeger": (b'{"data":[\n', b",\n", b"\n]}\n"),
    "zipkin": (b"[\n", b",\n", b"\n]\n"),
}
"""Per format: what goes before the traces, between two, and after them."""

_RENDER: dict[str, Callable[[TraceSpans], bytes]] = {
    "otlp": otlp_trace,
    "jaeger": jaeger_trace,
    "zipkin": zipkin_trace,
}


def write_export(
    r: Rendering,
    out: IO[bytes],
    fmt: str,
    framed: bool = True,
    inferred: npt.NDArray[np.bool_] | None = None,
) -> list[tuple[int, int]]:
    """Write the selected traces of ``r`` in ``fmt``; return, per trace
    written, its index in the table and its size in bytes. Without
    ``framed``, the fragments follow each other bare (a partition's part).
    OTLP output also holds the selected lines without a trace."""
    prefix, sep, suffix = FRAMES[fmt]
    render = _RENDER[fmt]
    sizes: list[tuple[int, int]] = []
    if framed:
        out.write(prefix)
    for t in trace_spans(r, inferred):
        body = render(t)
        if not body:
            continue
        if framed and sizes:
            out.write(sep)
        out.write(body)
        sizes.append((t.trace, len(body)))
    if fmt == "otlp":
        for chunk in otlp_untraced(untraced_events(r)):
            out.write(chunk)
    if framed:
        out.write(suffix)
    return sizes
