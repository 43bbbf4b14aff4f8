"""Type stub for the C module behind logtrace grep's byte search."""

from typing_extensions import Buffer

def find(data: Buffer, needle: Buffer, start: int, stop: int, /) -> int: ...
