"""Random trace and span identifiers.

IDs come from :func:`random.getrandbits`: the module-level generator is reseeded
in forked children, costs a fraction of :func:`os.urandom`, and the W3C
specification asks for randomness, not secrecy. ``or 1`` keeps the all-zero
value, which every format treats as invalid, from ever being produced.
``int.to_bytes(...).hex()`` is the cheapest way to zero-padded lowercase hex.
"""

from __future__ import annotations

from random import getrandbits

__all__ = ["new_span_id", "new_trace_id"]


def new_trace_id() -> str:
    """A random 128-bit trace ID as 32 lowercase hex digits."""
    return (getrandbits(128) or 1).to_bytes(16, "big").hex()


def new_span_id() -> str:
    """A random 64-bit span ID as 16 lowercase hex digits."""
    return (getrandbits(64) or 1).to_bytes(8, "big").hex()
