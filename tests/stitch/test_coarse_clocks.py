"""Times to the millisecond (logging's ``asctime``) bound clocks only within
their millisecond: on one clock, no skew is invented from them."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from logtrace import TraceContextFilter, span
from logtrace.stdlib import json_formatter
from logtrace.stitch import Options, stitch


def _logger(name: str, path: Path, formatter: logging.Formatter) -> logging.Logger:
    handler = logging.FileHandler(path)
    handler.setFormatter(formatter)
    handler.addFilter(TraceContextFilter())
    logger = logging.getLogger(f"coarse.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_millisecond_callee_on_one_clock_gets_no_offset(tmp_path: Path) -> None:
    api = _logger("api", tmp_path / "api.log", json_formatter("api"))
    billing = _logger(
        "billing",
        tmp_path / "billing.log",
        JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"),  # asctime: whole ms
    )
    for n in range(200):
        with span(f"order {n}"):
            api.info("calling billing")
            with span("charge"):
                billing.info("charging card")
            api.info("billing answered")
    for logger in (api, billing):
        for handler in logger.handlers:
            handler.close()
    summary = stitch([str(tmp_path)], io.BytesIO(), Options(format="jsonl"))
    assert summary.traces == 200
    low, high = summary.offset_bounds_ms["billing"]
    assert low <= 0.0 <= high
    assert summary.offsets_ms["billing"] == 0.0
