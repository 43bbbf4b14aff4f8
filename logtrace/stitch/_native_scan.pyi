from collections.abc import Callable

ROW_SIZE: int
KEYS: tuple[str, ...]
DECLINED: tuple[str, ...]

class Scanner:
    def __init__(self, services: dict[object, int]) -> None: ...
    def scan(
        self,
        block: bytes | memoryview,
        offset: int,
        lineno: int,
        fallback: Callable[
            [int, int],
            tuple[float, int, int, int, int, int, int, float]
            | list[tuple[int, int, float, int, int, int, int, int, int, float]]
            | bool
            | None,
        ],
        pieces: object = None,
        /,
    ) -> tuple[int, int]: ...
    def rows(self) -> bytearray: ...
    def intern_trace(self, trace_id: str, /) -> int: ...
    def intern_span(self, span_id: str, /) -> int: ...
    def traces(self) -> list[str]: ...
    def spans(self) -> list[str]: ...

def parse(
    line: bytes, /
) -> tuple[str | None, str | None, str | None, float, str, int, float] | None: ...
