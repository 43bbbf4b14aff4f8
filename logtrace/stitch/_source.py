"""One input file, as the plan names it: light, so that ``logtrace grep``
can list its inputs before the rest of the stitcher loads."""

from __future__ import annotations

__all__ = ["Source"]


class Source:
    """One input file: the name shown to the user and the path to open."""

    __slots__ = ("name", "path")

    def __init__(self, name: str, path: str) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "path", path)

    name: str
    path: str

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError(f"Source is immutable: cannot set {key}")

    def __delattr__(self, key: str) -> None:
        raise AttributeError(f"Source is immutable: cannot delete {key}")

    def __repr__(self) -> str:
        return f"Source(name={self.name!r}, path={self.path!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Source):
            return NotImplemented
        return (self.name, self.path) == (other.name, other.path)

    def __hash__(self) -> int:
        return hash((self.name, self.path))

    def __reduce__(self) -> tuple[type[Source], tuple[str, str]]:
        return (Source, (self.name, self.path))
