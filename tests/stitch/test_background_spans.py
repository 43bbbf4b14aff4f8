"""Background tasks traced as spans of their own, in logs without parent IDs.

OpenTelemetry's FastAPI instrumentation runs each ``BackgroundTasks`` job
in a span of its own ("BackgroundTask <name>", a child of the request's
server span) after the response went out. Logged through
opentelemetry-instrumentation-logging, its lines carry that span's ID and
no parent: a span of the callee's service that starts after the caller
heard back, and that no caller contains. ``gateway`` (FastAPI) calls
``pricing`` (FastAPI) after 20 ms of its own work and answers as soon as
pricing does; pricing's job logs 2 or 6 ms after it answered, after the
gateway's whole request: at a clock that many milliseconds off, the job
would fit inside the gateway's request as well as pricing's request does.
On one clock no offset may be invented; with pricing's clock shifted 30 ms,
the shift is found; every line of the request's span stays inside the call.

The page's own work is longer than a round trip of the call even on a
loaded host. Where it is not (10 ms of work against round trips of 9 ms
while the whole test suite runs), the request fits that work's gap as
snugly as its own call's, the job the call's gap, and nothing in the
timing tells that story from two calls in a row: the documented limit
("Work after the answer traced as a span of its own", docs/stitching.md).
"""

from __future__ import annotations

import json
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from _otel_app import HEAD, app_env
from servers import run_uvicorn

from logtrace.stitch import Options, stitch

pytest.importorskip("opentelemetry.instrumentation.fastapi")
pytest.importorskip("opentelemetry.instrumentation.logging")
pytest.importorskip("pythonjsonlogger")
pytestmark = pytest.mark.timeout(180)

APP = HEAD + textwrap.dedent(
    """


    async def job(ms: int) -> None:
        await asyncio.sleep(ms / 1000)
        log.info("job done")


    @api.get("/quote/{n}")
    async def quote(n: int, tasks: BackgroundTasks) -> dict[str, int]:
        log.info("quote asked")
        await asyncio.sleep(0.002)
        tasks.add_task(job, 2 if n % 2 else 6)
        log.info("quote answered")
        return {"n": n}


    @api.get("/page/{n}")
    async def page(n: int) -> dict[str, int]:
        log.info("page asked")
        await asyncio.sleep(0.020)  # the page's own work, before the call
        headers: dict[str, str] = {}
        propagate.inject(headers)
        log.info("calling pricing")
        await client.get(f"{os.environ['BG_PRICING']}/quote/{n}", headers=headers)
        log.info("pricing answered")
        return {"n": n}


    FastAPIInstrumentor.instrument_app(api)
    app = api
    """
)

REQUESTS = 40


def _run(tmp_path: Path, shift_ms: float) -> Path:
    (tmp_path / "bg_app.py").write_text(APP, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()

    def env(service: str, shift: float, pricing: str = "") -> dict[str, str]:
        return {**app_env(service, shift, logs / f"{service}.log"), "BG_PRICING": pricing}

    with (
        run_uvicorn("bg_app:app", app_dir=tmp_path, args=("--log-level", "warning"),
                    log_path=tmp_path / "pricing.out", env=env("pricing", shift_ms)) as pricing,
        run_uvicorn("bg_app:app", app_dir=tmp_path, args=("--log-level", "warning"),
                    log_path=tmp_path / "gateway.out",
                    env=env("gateway", 0.0, pricing.url)) as gateway,
        httpx.Client(timeout=10) as client,
    ):  # fmt: skip
        for n in range(REQUESTS):
            assert client.get(f"{gateway.url}/page/{n}").status_code == 200
        deadline = 50
        while (logs / "pricing.log").read_text().count("job done") < REQUESTS and deadline:
            time.sleep(0.1)
            deadline -= 1
    return logs


@pytest.mark.parametrize("shift_ms", [0.0, 30.0])
def test_background_task_spans_invent_no_skew(tmp_path: Path, shift_ms: float) -> None:
    logs = _run(tmp_path, shift_ms)
    text = (logs / "pricing.log").read_text()
    assert text.count("job done") == REQUESTS and "parent" not in text
    with open(tmp_path / "out.jsonl", "wb") as fh:
        summary = stitch([str(logs)], fh, Options(format="jsonl"))
    offsets = summary.offsets_ms
    told = (offsets, summary.offset_bounds_ms, summary.notes)
    assert abs(offsets["pricing"] - offsets["gateway"] - shift_ms) < 1.0, told
    if not shift_ms:  # every call fits one clock: nothing is corrected
        assert offsets == {"gateway": 0.0, "pricing": 0.0}, offsets

    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in (tmp_path / "out.jsonl").read_bytes().splitlines():
        rec = json.loads(line)
        if rec["trace_id"] is not None:
            traces[rec["trace_id"]].append(rec)
    assert len(traces) == REQUESTS
    for rows in traces.values():
        said = [r["record"]["message"] for r in rows]
        call, answer = said.index("calling pricing"), said.index("pricing answered")
        assert call < said.index("quote asked") < said.index("quote answered") < answer, said
        assert said.index("job done") > said.index("quote answered"), said
        job = rows[said.index("job done")]
        request = rows[said.index("quote asked")]
        # The job's span hangs under a span of the trace, marked inferred,
        # never above the request it followed.
        assert job["parent_span_id"] is not None and job["depth"] >= request["depth"], rows


@pytest.mark.parametrize("run", ["background_in_a_row", "background_fits_the_work_gap"])
def test_a_captured_run_where_the_jobs_looked_like_second_calls(tmp_path: Path, run: str) -> None:
    """Runs of these services (gzipped), pricing's clock 30 ms ahead.

    - ``background_in_a_row`` (the page working 10 ms before its call): at
      10 ms beyond that the request fits the page's own work before its
      call and the job the call's gap, packing 0.8 as densely as two calls
      in a row would: read as calls, the jobs put pricing 11.6 ms off.
    - ``background_fits_the_work_gap`` (this test's services, the whole
      suite running): a slow first request widened the stretch where the
      requests fit their calls to 5 ms, and the jobs, which fit only the
      page's 21 ms of work before its call, lay 4.6 ms beyond it: not
      apart by the stretch's width, they stayed in the evidence, and
      request and job both fitting that work's gap put pricing 14.5 ms off.
      Apart by more than half the stretch's width, they are work after the
      answer."""
    logs = Path(__file__).parent / "captured" / run
    with open(tmp_path / "out.jsonl", "wb") as fh:
        summary = stitch([str(logs)], fh, Options(format="jsonl"))
    offsets = summary.offsets_ms
    assert abs(offsets["pricing"] - offsets["gateway"] - 30.0) < 1.0, offsets
