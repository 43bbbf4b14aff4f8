"""Short turns at the GIL while other threads wait on this one.

Worker threads that spend most of their time in C without the GIL (rendering
a batch, searching a block) still need it for a moment between two pieces of
work; by default the thread running Python keeps it for up to 5 ms before
handing it over. Inside :func:`short_gil_turns` it hands it over within 0.1 ms.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["short_gil_turns"]


@contextmanager
def short_gil_turns(seconds: float = 1e-4) -> Iterator[None]:
    """The interpreter's switch interval at most ``seconds`` inside the block."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
