"""The wall clock of span records: the one ``logging`` stamps its records with.

A span record's start and its own timestamp sit among the service's log lines,
so they read the clock those lines read: ``time.time()`` before Python 3.13,
``time.time_ns()`` from 3.13 on, looked up on the :mod:`time` module at each
call as :class:`logging.LogRecord` does. A process whose clock is moved after
logtrace was imported (by a test, or a library that moves time) moves its span
records with its lines, and the stitcher sees one clock per service.
"""

from __future__ import annotations

import sys
import time

__all__ = ["wall_ns"]

if sys.version_info >= (3, 13):

    def wall_ns() -> int:
        """Nanoseconds since the epoch, as ``logging`` reads them."""
        return time.time_ns()

else:

    def wall_ns() -> int:
        """Nanoseconds since the epoch, as ``logging`` reads them (a float
        second, converted as the JSON formatter converts ``record.created``)."""
        return round(time.time() * 1e9)
