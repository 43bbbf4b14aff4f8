from collections.abc import Callable

import numpy as np
import numpy.typing as npt

ROW_SIZE: int

class Scanner:
    def __init__(
        self, trace_ids: dict[str, int], span_ids: dict[str, int], services: dict[object, int]
    ) -> None: ...
    def scan(
        self,
        block: bytes,
        out: npt.NDArray[np.void],
        offset: int,
        lineno: int,
        fallback: Callable[[int, int], tuple[float, int, int, int, int, int, int, float] | None],
        /,
    ) -> int: ...

def parse(
    line: bytes, /
) -> tuple[str | None, str | None, str | None, float, str, int, float] | None: ...
