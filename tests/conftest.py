"""Fixtures shared by the test suite."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from logtrace._records import SPAN_LOGGER_NAME


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def span_records() -> Iterator[list[logging.LogRecord]]:
    """The span records written during the test (``logtrace.span`` at DEBUG and up)."""
    logger = logging.getLogger(SPAN_LOGGER_NAME)
    handler = _ListHandler()
    level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def no_span_records() -> Iterator[None]:
    """Span records off, whatever the root logger's level."""
    logger = logging.getLogger(SPAN_LOGGER_NAME)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
