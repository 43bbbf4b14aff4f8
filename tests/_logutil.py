"""Save and restore global logging state around tests that reconfigure it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from logtrace import _records
from logtrace._setup import SERVER_LOGGERS


@contextmanager
def preserved_logging() -> Iterator[None]:
    """Undo what ``configure_logging`` and ``configure_span_records`` change."""
    import structlog

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    servers = {
        name: (logging.getLogger(name).handlers[:], logging.getLogger(name).propagate)
        for name in SERVER_LOGGERS
    }
    settings = _records.settings
    saved = (settings.enabled, settings.level, settings.names, settings.threshold)
    try:
        yield
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(level)
        for name, (server_handlers, propagate) in servers.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = server_handlers
            logger.propagate = propagate
        settings.enabled, settings.level, settings.names, settings.threshold = saved
        structlog.reset_defaults()
