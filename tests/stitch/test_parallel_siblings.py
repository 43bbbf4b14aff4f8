"""Two services called in parallel, in logs without parent IDs.

``gateway`` (FastAPI) calls ``orders`` and ``pricing`` at once; orders
works a while, then calls ``db`` twice in a row; pricing answers within one
to three milliseconds. Every service logs through OpenTelemetry's logging
instrumentation (trace and span IDs, no parent), with orders' and db's
clocks shifted 30 ms.

Two rules broke here. Pricing, started with orders and shorter, lies inside
orders' request at some offset in nearly every trace: a link orders ->
pricing that the timing of one trace cannot refute. Believed, it moved
pricing's clock several milliseconds, so pricing's lines came after the
gateway heard its answer; solved without it, the real calls (gateway ->
pricing, gateway -> orders) put the two clocks where the link's interval
does not reach, and the link is dropped. And db's second query, logged
after orders' first "answered" line, looked like work after the answer (a
background task's span) and was left out of the evidence; two calls in a
row fit their own gaps between orders' lines at one offset, as densely as
one call does, and now count as calls. Two more: db lies inside the
gateway's request as well (through orders'), and where db fits between the
gateway's lines, which it writes for pricing while orders works, put the
gateway's first clock 1.2 ms off; and db's spans that lie inside pricing's
at a wrong offset in a third of the traces held pricing off once the
sibling link was gone. The first is no call; the second goes as the
sibling does, one link at a time.
"""

from __future__ import annotations

import json
import textwrap
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
pytestmark = pytest.mark.timeout(240)

APP = HEAD + textwrap.dedent(
    """
    URLS = dict(part.split("=", 1) for part in os.environ["PS_URLS"].split(",") if part)


    async def call(service: str, path: str) -> None:
        headers: dict[str, str] = {}
        propagate.inject(headers)
        log.info("calling %s", service)
        (await client.get(URLS[service] + path, headers=headers)).raise_for_status()
        log.info("%s answered", service)


    @api.get("/checkout")
    async def checkout() -> dict[str, bool]:
        log.info("checkout asked")
        await asyncio.gather(call("pricing", "/quote"), call("orders", "/status"))
        log.info("checkout answered")
        return {"ok": True}


    @api.get("/browse")
    async def browse() -> dict[str, bool]:
        log.info("browse asked")
        await call("pricing", "/quote")
        log.info("browse answered")
        return {"ok": True}


    @api.get("/status")
    async def status() -> dict[str, bool]:
        log.info("status asked")
        await asyncio.sleep(random.uniform(0.0005, 0.0015))
        for _ in range(2):
            await call("db", "/q")
        log.info("status answered")
        return {"ok": True}


    @api.get("/quote")
    async def quote() -> dict[str, bool]:
        log.info("quote asked")
        await asyncio.sleep(random.uniform(0.001, 0.003))
        log.info("quote answered")
        return {"ok": True}


    @api.get("/q")
    async def query() -> dict[str, bool]:
        log.info("query")
        await asyncio.sleep(random.uniform(0.0002, 0.0005))
        log.info("query done")
        return {"ok": True}


    FastAPIInstrumentor.instrument_app(api)
    app = api
    """
)

CHECKOUTS = 75
BROWSES = 25
SHIFTS_MS = {"gateway": 0.0, "pricing": 0.0, "orders": 30.0, "db": -30.0}


def _run(tmp_path: Path) -> Path:
    (tmp_path / "ps_app.py").write_text(APP, encoding="utf-8")
    logs = tmp_path / "logs"
    logs.mkdir()

    def serve(service: str, **urls: str) -> Any:
        env = {
            **app_env(service, SHIFTS_MS[service], logs / f"{service}.log"),
            "PS_URLS": ",".join(f"{k}={v}" for k, v in urls.items()),
        }
        return run_uvicorn("ps_app:app", app_dir=tmp_path, args=("--log-level", "warning"),
                           log_path=tmp_path / f"{service}.out", env=env)  # fmt: skip

    with (
        serve("db") as db,
        serve("pricing") as pricing,
        serve("orders", db=db.url) as orders,
        serve("gateway", pricing=pricing.url, orders=orders.url) as gateway,
        httpx.Client(timeout=10) as client,
    ):
        paths = ["/checkout"] * CHECKOUTS + ["/browse"] * BROWSES
        for n in range(len(paths)):  # a stride prime to the count spreads the browses
            assert client.get(gateway.url + paths[n * 7 % len(paths)]).status_code == 200
    return logs


def test_a_parallel_sibling_is_not_taken_for_the_caller(tmp_path: Path) -> None:
    logs = _run(tmp_path)
    assert "parent" not in (logs / "pricing.log").read_text()
    _assert_story(logs, tmp_path / "out.jsonl", dict.fromkeys(SHIFTS_MS, 1.0))


CAPTURED = Path(__file__).parent / "captured"
"""Logs of runs of these services that a rule once broke (gzipped): a sibling
link kept (pricing 4.3 ms off), a link seen through orders (gateway's clock
1.1 ms off), a gap fit of a caller that seldom waits (orders 0.9 ms off, its
last line after the gateway's answer), a sibling link whose pricing spans
fit between orders' lines in half the traces, met by every link yet
putting orders 1.2 ms off, a sibling link whose few fits between orders'
lines pack more densely than the gateway's call's many (pricing 2.9 ms
off: its first offsets refuted the real call), and whole-millisecond
timestamps (pricing 5.1 ms off; and, with clocks shifted by fractions of a
millisecond, pricing 2 ms off)."""


@pytest.mark.parametrize(
    "run", ["sibling_link", "through_link", "weak_gap_fit", "half_fit_sibling", "dense_sibling"]
)
def test_captured_runs_that_broke_a_rule(tmp_path: Path, run: str) -> None:
    _assert_story(CAPTURED / run, tmp_path / "out.jsonl", dict.fromkeys(SHIFTS_MS, 1.0))


def test_a_captured_run_whose_first_queries_fit_the_second_call(tmp_path: Path) -> None:
    """A run (about one in eight, more under load) where db's first queries
    fit, in every trace, the gap of orders' second call to db, at an offset
    4 ms off, more snugly than their own call's: the second request gets in
    quicker than the first. The second queries fit theirs at the true
    offset, and, apart from the first, were taken for work after the answer
    (packing at 0.8 of the first calls' density); orders -> db went, and db
    hung under the gateway. They open with the line the first queries
    opened with: second calls, whatever the timing says."""
    run = CAPTURED / "parallel_siblings_first_gap"
    _assert_story(run, tmp_path / "out.jsonl", dict.fromkeys(SHIFTS_MS, 1.0))


def test_captured_run_to_the_millisecond(tmp_path: Path) -> None:
    """With ``asctime``'s whole milliseconds pricing's spans fit between
    orders' lines as often as a callee's would: the sibling link stands, but
    no longer pulls pricing's clock off the gateway's. Orders and db are
    known only to a millisecond or two there (the docs' limits): db within
    1.5 ms (2 ms off before the gap fits were counted per callee)."""
    within = {"gateway": 1.0, "pricing": 1.0, "orders": 1.0, "db": 1.5}
    _assert_story(CAPTURED / "whole_ms", tmp_path / "out.jsonl", within, story=False)


UNALIGNED_MS = {"gateway": 0.0, "pricing": 0.0, "orders": 30.37, "db": -29.71}
"""The shifts of the captured run below: whole milliseconds of the shifted
clocks do not line up with the gateway's."""


def test_captured_run_to_the_millisecond_unaligned(tmp_path: Path) -> None:
    """Whole milliseconds, clocks shifted by fractions of one: each gap
    between orders' lines, widened by the millisecond its lines may lie in,
    took the next short db call too, and counted once per gap the overlap
    of the two put the first clocks 1.5 ms off (pricing came out 2 ms off
    the gateway, orders -1.9 ms, db -2.3 ms). Counted per callee span, the
    whole story holds to 1 ms."""
    logs = CAPTURED / "whole_ms_unaligned"
    _assert_story(
        logs, tmp_path / "out.jsonl", dict.fromkeys(UNALIGNED_MS, 1.0), True, UNALIGNED_MS
    )


def test_captured_run_to_the_millisecond_on_a_grid(tmp_path: Path) -> None:
    """Whole milliseconds, clocks shifted by fractions of one. Pricing's
    spans fit most of orders' widened gaps: the sibling link orders ->
    pricing stood and put orders 2.3 ms off (2.8 ms with the rule below
    alone), until a link that explains no span of its own and misses gaps
    clearly more often than the real call was tried. And the tightest bounds
    of gateway -> orders, whole milliseconds apart, one step ahead of an
    even crowd, were dropped as standing apart (0.6 ms off without that
    rule, 0.4 with it). The whole story holds to 1 ms."""
    logs = CAPTURED / "whole_ms_grid"
    _assert_story(
        logs, tmp_path / "out.jsonl", dict.fromkeys(UNALIGNED_MS, 1.0), True, UNALIGNED_MS
    )


def _assert_story(
    logs: Path,
    out: Path,
    within: dict[str, float],
    story: bool = True,
    shifts: dict[str, float] | None = None,
) -> None:
    """Offsets within ``within`` (ms) of the ``shifts`` (:data:`SHIFTS_MS`
    unless given); with ``story``, gateway
    -> db seen as no call, no sibling link, and every trace opening and
    closing with the gateway's lines, pricing's lines inside, under the
    gateway."""
    with open(out, "wb") as fh:
        summary = stitch([str(logs)], fh, Options(format="jsonl"))
    offsets = summary.offsets_ms
    for service, shift in (shifts or SHIFTS_MS).items():
        assert abs(offsets[service] - offsets["gateway"] - shift) < within[service], offsets
    if not story:
        return
    (note,) = summary.notes
    # db lies inside the gateway's request through orders': no call
    assert "gateway -> db via orders, not a call" in note, note
    assert "orders -> pricing" not in note, note

    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in out.read_bytes().splitlines():
        rec = json.loads(line)
        if rec["trace_id"] is not None:
            traces[rec["trace_id"]].append(rec)
    assert len(traces) == CHECKOUTS + BROWSES
    for rows in traces.values():
        said = [r["record"]["message"] for r in rows]
        asked, answered = said.index("quote asked"), said.index("quote answered")
        quote = rows[asked]
        # pricing hangs under the gateway's request, not under orders'
        assert quote["depth"] == 1 and quote["parent_span_id"] == rows[0]["span_id"], rows
        assert said[0] in ("checkout asked", "browse asked"), said
        assert said[-1] in ("checkout answered", "browse answered"), said
        assert 0 < asked < answered < len(said) - 1, said
