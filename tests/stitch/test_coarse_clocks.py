"""Times to the millisecond (logging's ``asctime``) bound clocks only within
their millisecond: on one clock, no skew is invented from them."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from _stitchutil import REPO
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


@pytest.mark.parametrize("shape", ["ecs", "pino"])
def test_millisecond_times_over_a_long_window_fit_no_drift(tmp_path: Path, shape: str) -> None:
    """Clocks that do not drift, over minutes, written as ecs-logging
    (``@timestamp`` to the millisecond) and pino (epoch milliseconds) write
    them: each minute's interval is about a millisecond wide and how tight it
    is trends with the traffic, which is no evidence of drift. No drift is
    fitted; every offset lies in its interval, within 0.5 ms of the truth."""
    import json
    import sys

    from logtrace.testing import SynthConfig, generate

    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from gen_logs import reshape_dir
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    res = generate(str(tmp_path / "gen"), SynthConfig(traces=2000, seed=5, rate_per_s=10.0))
    reshape_dir(tmp_path / "gen" / "logs", tmp_path / shape, shape)
    files = sorted(str(p) for p in (tmp_path / shape).iterdir())
    summary = stitch(files, io.BytesIO(), Options(format="jsonl"))
    assert set(summary.drift_ppm.values()) == {0.0}
    assert summary.uncorrected == []
    truth = json.loads(Path(res.truth).read_text().splitlines()[0])["offsets_s"]
    for name, (low, high) in summary.offset_bounds_ms.items():
        assert low <= summary.offsets_ms[name] <= high, name
        want = (truth[name] - truth["gateway"]) * 1e3
        assert abs(summary.offsets_ms[name] - want) < 0.5, name
