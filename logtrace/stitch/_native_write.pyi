"""Type stub for the C module that renders the JSON-lines writer's rows."""

from typing import Any, TypeAlias

import numpy.typing as npt
from typing_extensions import Buffer

_Array: TypeAlias = Buffer | npt.NDArray[Any]

def render_batch(
    out: bytearray,
    columns: tuple[_Array, ...],
    traces: tuple[str, ...],
    spans: tuple[str, ...],
    services: tuple[bytes, ...],
    files: tuple[bytes, ...],
    tails: tuple[bytes, ...],
    sources: list[object],
    stamp_rows: _Array,
    stamp_texts: tuple[bytes, ...],
    record_rows: _Array,
    record_texts: tuple[bytes, ...],
) -> int: ...
