"""Correlate logs across services.

``import logtrace`` loads only the trace context, the header formats and the
middleware (standard library only). Logging integrations, HTTP client
integrations, the stitcher and the command line load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._context import TraceContext, current
from ._outgoing import outgoing_headers
from ._span import span

__version__ = "0.1.0"

__all__ = [
    "TraceContext",
    "__version__",
    "current",
    "outgoing_headers",
    "span",
]

# Names that live in modules with heavier imports, loaded on first access.
_LAZY: dict[str, str] = {}

if TYPE_CHECKING:
    pass


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'logtrace' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
