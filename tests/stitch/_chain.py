"""Three real services on 127.0.0.1, the deepest one failing: logs for the
summary and root-cause tests.

``gateway`` (FastAPI) calls ``orders`` (FastAPI), which calls ``inventory``
(Starlette); each is a uvicorn server set up as the docs say
(``configure_logging``, ``TraceMiddleware``, ``logtrace.httpx``), writing
JSON lines to its own file. Inventory raises ``OutOfStock`` inside its
``db.select`` span for item 0: orders answers 502 and the gateway 500, unless
the request asks orders to fall back (then orders answers 200 and the trace
is "recovered"). Item 7 is slow.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from servers import run_uvicorn

INVENTORY = """
import asyncio, os
import structlog
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from logtrace import configure_logging, span
from logtrace.asgi import TraceMiddleware

configure_logging("inventory", filename=os.environ["LOG_FILE"])
log = structlog.get_logger("inventory.stock")


class OutOfStock(Exception):
    pass


async def stock(request):
    item = request.path_params["item"]
    log.info("stock lookup", item=item)
    with span("db.select", table="stock"):
        await asyncio.sleep(0.3 if item == 7 else 0.002)
        if item == 0:
            raise OutOfStock(f"item {item} is out of stock")
    return JSONResponse({"item": item, "quantity": 3})


app = TraceMiddleware(Starlette(routes=[Route("/stock/{item:int}", stock)]))
"""

ORDERS = """
import os
from contextlib import asynccontextmanager
import structlog
from fastapi import FastAPI, HTTPException
import httpx
import logtrace.httpx
from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware

configure_logging("orders", filename=os.environ["LOG_FILE"])
log = structlog.get_logger("orders")


@asynccontextmanager
async def lifespan(app):
    # A new connection per call: after an exception in the app, uvicorn closes
    # the connection just after the 500 went out, and a pooled connection
    # reused in that moment fails with ReadError (a different outcome).
    async with logtrace.httpx.AsyncClient(
        base_url=os.environ["NEXT_URL"], timeout=10,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as c:
        app.state.next = c
        yield


app = FastAPI(lifespan=lifespan)
app.add_middleware(TraceMiddleware)


@app.get("/orders/{item}")
async def order(item: int, fallback: int = 0):
    log.info("placing order", item=item)
    response = await app.state.next.get(f"/stock/{item}")
    if response.status_code != 200:
        if fallback:
            log.warning("inventory failed, order backordered", item=item)
            return {"item": item, "status": "backordered"}
        log.warning("inventory refused", item=item, status=response.status_code)
        raise HTTPException(status_code=502, detail="inventory unavailable")
    return {"item": item, "status": "placed"}
"""

GATEWAY = """
import os
from contextlib import asynccontextmanager
import structlog
from fastapi import FastAPI, HTTPException
import httpx
import logtrace.httpx
from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware

configure_logging("gateway", filename=os.environ["LOG_FILE"])
log = structlog.get_logger("gateway")


@asynccontextmanager
async def lifespan(app):
    # A new connection per call: after an exception in the app, uvicorn closes
    # the connection just after the 500 went out, and a pooled connection
    # reused in that moment fails with ReadError (a different outcome).
    async with logtrace.httpx.AsyncClient(
        base_url=os.environ["NEXT_URL"], timeout=10,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as c:
        app.state.next = c
        yield


app = FastAPI(lifespan=lifespan)
app.add_middleware(TraceMiddleware)


@app.get("/checkout/{item}")
async def checkout(item: int, fallback: int = 0):
    log.info("checkout", item=item)
    response = await app.state.next.get(f"/orders/{item}", params={"fallback": fallback})
    if response.status_code != 200:
        raise HTTPException(status_code=500, detail="checkout failed")
    return response.json()
"""

REQUESTS = [(1, 0), (0, 0), (2, 0), (0, 1), (3, 0), (0, 0), (7, 0), (4, 0), (0, 1), (5, 0)]
"""(item, fallback) per request: item 0 fails deep; with fallback, orders recovers."""


@dataclass
class Chain:
    logs: Path
    """The directory with ``gateway.jsonl``, ``orders.jsonl``, ``inventory.jsonl``."""
    statuses: list[int] = field(default_factory=list)
    """The gateway's answer per request of :data:`REQUESTS`."""

    def records(self, service: str) -> list[dict[str, object]]:
        text = (self.logs / f"{service}.jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def traces_of(self, item: int, fallback: int) -> list[str]:
        """The trace IDs of the requests for ``item`` (in request order)."""
        found = []
        for record in self.records("gateway"):
            if record.get("span.kind") == "server" and record.get("url.path") == (
                f"/checkout/{item}"
            ):
                found.append(record)
        wanted = [k for k, request in enumerate(REQUESTS) if request[0] == item]
        assert len(found) == len(wanted)
        # Requests ran one at a time: their server records are in request order.
        return [
            str(record["trace_id"])
            for k, record in zip(wanted, found, strict=True)
            if REQUESTS[k][1] == fallback
        ]


def run_chain(base: Path) -> Chain:
    """Start the three services, send :data:`REQUESTS` one at a time, stop them."""
    logs = base / "logs"
    logs.mkdir()
    for name, source in (("inventory", INVENTORY), ("orders", ORDERS), ("gateway", GATEWAY)):
        (base / f"{name}_app.py").write_text(source, encoding="utf-8")
    chain = Chain(logs)

    def env(name: str, next_url: str = "") -> dict[str, str]:
        return {"LOG_FILE": str(logs / f"{name}.jsonl"), "NEXT_URL": next_url}

    args = ("--no-access-log",)
    with (
        run_uvicorn(
            "inventory_app:app", app_dir=base, env=env("inventory"), log_path=base / "i.out"
        ) as inventory,
        run_uvicorn(
            "orders_app:app",
            app_dir=base,
            env=env("orders", inventory.url),
            log_path=base / "o.out",
            args=args,
        ) as orders,
        run_uvicorn(
            "gateway_app:app",
            app_dir=base,
            env=env("gateway", orders.url),
            log_path=base / "g.out",
            args=args,
        ) as gateway,
        # A request that fails after its 500 went out closes the connection
        # (uvicorn); a kept-alive connection could carry the next request
        # into that close and be reset.
        httpx.Client(
            base_url=gateway.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)
        ) as client,
    ):
        for item, fallback in REQUESTS:
            response = client.get(f"/checkout/{item}", params={"fallback": fallback})
            chain.statuses.append(response.status_code)
        # A server logs an exception after the answer went out.
        failing = sum(1 for item, _ in REQUESTS if item == 0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = (logs / "inventory.jsonl").read_text(encoding="utf-8")
            if text.count("Exception in ASGI application") >= failing:
                break
            time.sleep(0.05)
    return chain
