"""AWS X-Ray ``X-Amzn-Trace-Id`` (read only).

``Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1``:
the root's epoch and unique parts together are the 32-hex trace ID
(``5759e988bd862e3fe1be46a994272793``). ``Parent`` is the caller's span;
a load balancer sends a ``Root`` alone, and the request then continues the
trace without a parent span. Other fields (``Self``, ``Lineage``, custom
data) are ignored.
"""

from __future__ import annotations

import re
from typing import NamedTuple

__all__ = ["XRay", "parse_xray"]

_ROOT = re.compile(r"1-([0-9a-f]{8})-([0-9a-f]{24})")
_PARENT = re.compile(r"[0-9a-f]{16}")
_FIELD_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_MAX_LENGTH = 1024
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_SAMPLED = {"1": True, "0": False, "?": None}


class XRay(NamedTuple):
    """What an ``X-Amzn-Trace-Id`` header said."""

    trace_id: str
    parent_id: str | None
    sampled: bool | None
    """``None`` when absent or ``?`` (the caller left the decision to us)."""


def parse_xray(value: str) -> XRay:
    """Read an ``X-Amzn-Trace-Id`` value; raise :class:`ValueError` saying why it is invalid."""
    if len(value) > _MAX_LENGTH:
        raise ValueError("oversized")
    if not value.isascii() or not value.isprintable():
        raise ValueError("non-ASCII or control characters")
    root: str | None = None
    parent: str | None = None
    sampled: bool | None = None
    seen: set[str] = set()
    for field in value.split(";"):
        field = field.strip(" \t")
        if not field:
            continue
        name, eq, val = field.partition("=")
        name = name.strip(" \t")
        val = val.strip(" \t")
        if not eq or _FIELD_NAME.fullmatch(name) is None:
            raise ValueError("field is not name=value")
        if name in seen:
            raise ValueError(f"duplicated {name} field" if name in _KNOWN else "duplicated field")
        seen.add(name)
        if name == "Root":
            m = _ROOT.fullmatch(val)
            if m is None:
                raise ValueError("Root is not 1-{8 hex}-{24 hex} in lowercase")
            root = m.group(1) + m.group(2)
            if root == _ZERO_TRACE:
                raise ValueError("Root is all zeros")
        elif name == "Parent":
            if _PARENT.fullmatch(val) is None or val == _ZERO_SPAN:
                raise ValueError("Parent is not 16 lowercase hex digits")
            parent = val
        elif name == "Sampled":
            if val not in _SAMPLED:
                raise ValueError("Sampled is not 1, 0 or ?")
            sampled = _SAMPLED[val]
    if root is None:
        raise ValueError("no Root field")
    return XRay(root, parent, sampled)


_KNOWN = frozenset({"Root", "Parent", "Sampled"})
