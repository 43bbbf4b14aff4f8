"""Worker processes forked from the stitcher, their signals as a new process's.

The scan and the JSON lines writer fork their workers (the parent's tables
are theirs without a copy). A fork inherits the parent's signal handlers:
where the parent is a process that handles SIGTERM in Python (a tracer's
exit hook, an application server's shutdown, a test runner's plugin), a
worker would run that handler when the pool ends it, and one that waits
there on a lock or a thread the fork did not copy never exits, and the
stitch never returns. Each worker therefore starts with SIGTERM and SIGINT
as a new process has them: SIGTERM ends it at once, Ctrl-C stays with the
parent.
"""

from __future__ import annotations

import signal
from multiprocessing import get_context
from multiprocessing.pool import Pool

__all__ = ["forked_pool"]


def forked_pool(workers: int) -> Pool:
    """A pool of ``workers`` forked processes with default SIGTERM handling."""
    return get_context("fork").Pool(workers, initializer=_plain_signals)


def _plain_signals() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
