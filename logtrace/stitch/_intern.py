"""IDs and service names interned to small local indexes while a task is scanned.

Rows hold indexes, not strings. Each distinct spelling of an ID is made
canonical once (see :mod:`._id_forms`), checking whole columns of spellings
at a time for the common case: already full-width lowercase hex.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from ._id_forms import norm_span_id, norm_trace_id

__all__ = ["Interner", "fixed_width"]


class Interner:
    """IDs and service names of one task, interned to local indexes.

    Each distinct spelling of an ID is made canonical once; ``None`` (no ID)
    maps to -1 like a spelling that is not an ID.
    """

    __slots__ = ("services", "span_ids", "spans", "trace_ids", "traces")

    def __init__(self, file_service: str) -> None:
        self.traces: dict[object, int] = {None: -1}
        self.trace_ids: dict[str, int] = {}
        self.spans: dict[object, int] = {None: -1}
        self.span_ids: dict[str, int] = {}
        self.services: dict[object, int] = {file_service: 0, None: 0}

    def restart(self) -> None:
        """Forget the IDs (a new segment numbers its own); services stay."""
        self.traces = {None: -1}
        self.trace_ids = {}
        self.spans = {None: -1}
        self.span_ids = {}

    def add_traces(self, spellings: Iterable[object]) -> None:
        _add_ids(self.traces, self.trace_ids, spellings, 32, norm_trace_id)

    def add_spans(self, spellings: Iterable[object]) -> None:
        _add_ids(self.spans, self.span_ids, spellings, 16, norm_span_id)

    def add_services(self, names: Iterable[object]) -> None:
        services = self.services
        for value in names:
            if value not in services:
                services[value] = min(len(services) - 1, 65535)


def _add_ids(
    known: dict[object, int],
    ids: dict[str, int],
    spellings: Iterable[object],
    width: int,
    norm: Callable[[object], str | None],
) -> None:
    """Intern new spellings in order; full-width lowercase hex is already canonical."""
    new = [v for v in spellings if v not in known]
    if not new:
        return
    canonical = _canonical_hex(new, width)
    for value, same in zip(new, canonical, strict=True):
        canon = value if same else norm(value)
        known[value] = -1 if canon is None else ids.setdefault(canon, len(ids))  # type: ignore[arg-type]


def _canonical_hex(values: list[object], width: int) -> list[bool]:
    """Per value: a ``str`` of ``width`` lowercase hex digits, not all zero."""
    c = fixed_width(values, width)
    if c is None:
        return [type(v) is str and len(v) == width and _canonical_hex_one(v, width) for v in values]
    digit = ((c >= 48) & (c <= 57)) | ((c >= 97) & (c <= 102))
    ok = digit.all(axis=1) & (c != 48).any(axis=1)
    result: list[bool] = ok.tolist()
    return result


def _canonical_hex_one(value: str, width: int) -> bool:
    c = fixed_width([value], width)
    return c is not None and bool(_canonical_hex([value], width)[0])


def fixed_width(values: Sequence[object], width: int) -> npt.NDArray[np.uint8] | None:
    """ASCII strings all ``width`` long as an ``(n, width)`` byte array, else ``None``.

    One join and one encode instead of a conversion per value: the NUL
    separators land in the last column only if every piece has the width.
    """
    try:
        joined = "\0".join(values).encode("ascii")  # type: ignore[arg-type]
    except (TypeError, UnicodeEncodeError):
        return None
    n = len(values)
    if len(joined) != (width + 1) * n - 1 or joined.count(0) != n - 1:
        return None
    c = np.frombuffer(joined + b"\0", dtype=np.uint8).reshape(n, width + 1)
    if c[:, width].any():
        return None
    return c[:, :width]
