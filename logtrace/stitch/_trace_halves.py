"""A 64-bit trace ID meets the 128-bit ID it is the low half of.

Tracers that keep 128-bit trace IDs often log only their low 64 bits:
Datadog's tracers before 128-bit logging (and any of them with the
``datadog`` propagation style alone, which carries the low half in
``x-datadog-trace-id``), B3's 64-bit ``X-B3-TraceId``, a proxy that
truncates. A request through services logging both forms then has two
trace IDs: ``6b15fdf200000000e4762d231b01be63`` in one log and
``16462395116699631203`` (the same low half in decimal) in the next.

Canonical IDs are left-padded to 32 hex digits (:mod:`._id_forms`), so the
short form is the long one with its high half zeroed. The partition of a
32-digit ID is chosen by its low half (:func:`partition_key`): both forms
land in one partition, and there a zero-high ID joins the one ID whose low
half it is (:func:`low_half_partners`). Where two IDs share that low half,
the short one is ambiguous and stays a trace of its own. Random 64-bit
halves meet by chance about once in 10^19 pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["low_half_partners", "partition_key"]

_ZERO_HIGH = "0" * 16


def partition_key(trace_id: str) -> str:
    """What picks a trace's partition: the low half of a 32-digit ID, else the ID."""
    return trace_id[16:] if len(trace_id) == 32 else trace_id


def low_half_partners(trace_ids: Sequence[str]) -> dict[int, int]:
    """Per position of a zero-high 32-digit ID in ``trace_ids``, the position
    of the one ID with a non-zero high half and the same low half (none
    where no or several such IDs are there)."""
    short: list[int] = []
    long: dict[str, int] = {}
    for i, t in enumerate(trace_ids):
        if len(t) != 32:
            continue
        if t.startswith(_ZERO_HIGH):
            short.append(i)
        else:
            low = t[16:]
            long[low] = -1 if low in long else i
    if not short or not long:
        return {}
    out: dict[int, int] = {}
    for i in short:
        partner = long.get(trace_ids[i][16:], -1)
        if partner >= 0:
            out[i] = partner
    return out
