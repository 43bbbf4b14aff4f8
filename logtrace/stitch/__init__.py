"""The stitcher: per-service log files in, per-trace narratives out.

The public API::

    from logtrace.stitch import Options, stitch

    with open("incident.jsonl", "wb") as out:
        summary = stitch(["logs/"], out, Options(errors_only=True))

One pipeline of stages, one module each, plain data between them (see
docs/architecture.md): plan the inputs, scan them, partition the rows by
trace, estimate clocks, then per partition group, tree, correct, order and
select, and write. Names load on first use: ``import logtrace.stitch``
costs nothing, and nothing here is imported by ``import logtrace``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._grep import Match, grep, grep_stream
    from ._marks import mark_explanations
    from ._model import Options, Summary
    from ._pipeline import stitch
    from ._plan import InputError, expand_paths
    from ._render_summary import summary_text
    from ._source import Source
    from ._timestamps import parse_timestamp

__all__ = [
    "InputError",
    "Match",
    "Options",
    "Source",
    "Summary",
    "expand_paths",
    "grep",
    "grep_stream",
    "mark_explanations",
    "parse_timestamp",
    "stitch",
    "summary_text",
]

_HOMES = {
    "InputError": "._plan",
    "Match": "._grep",
    "Options": "._model",
    "Source": "._source",
    "Summary": "._model",
    "expand_paths": "._plan",
    "grep": "._grep",
    "grep_stream": "._grep",
    "mark_explanations": "._marks",
    "parse_timestamp": "._timestamps",
    "stitch": "._pipeline",
    "summary_text": "._render_summary",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
