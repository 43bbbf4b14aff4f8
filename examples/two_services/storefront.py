"""Service A, ``storefront``: a FastAPI app that calls ``inventory`` through httpx.

``logtrace.httpx.AsyncClient`` makes every call a client span and sends its
ID in ``traceparent``, so inventory's server span names it as its parent.
Writes JSON log lines to ``$LOG_FILE``; finds inventory at ``$INVENTORY_URL``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, HTTPException, Request

import logtrace.httpx
from logtrace import configure_logging
from logtrace.asgi import TraceMiddleware

configure_logging("storefront", filename=os.environ.get("LOG_FILE"))
log = structlog.get_logger("storefront.orders")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    base_url = os.environ.get("INVENTORY_URL", "http://127.0.0.1:8001")
    async with logtrace.httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        app.state.inventory = client
        yield


app = FastAPI(lifespan=lifespan)
app.add_middleware(TraceMiddleware)


@app.post("/orders/{item_id}")
async def place_order(item_id: int, request: Request) -> dict[str, object]:
    log.info("order received", item_id=item_id)
    response = await request.app.state.inventory.get(f"/stock/{item_id}")
    if response.status_code != 200:
        log.warning("inventory refused", item_id=item_id, status=response.status_code)
        raise HTTPException(status_code=502, detail="inventory unavailable")
    quantity = response.json()["quantity"]
    log.info("order placed", item_id=item_id, quantity=quantity)
    return {"item_id": item_id, "status": "placed"}
