"""The demo's three services, each a FastAPI app run by uvicorn in its own process.

Set up as the docs tell users to: ``configure_logging`` (JSON lines with
trace IDs, uvicorn's own lines included), ``TraceMiddleware`` on the app,
``logtrace.httpx.AsyncClient`` for calls to the next service. Which app a
process serves is the uvicorn target (``logtrace.demo.services:gateway``);
``LOGTRACE_DEMO_SERVICE`` names it for logging, ``LOGTRACE_DEMO_LOG`` is its
log file, ``LOGTRACE_DEMO_ORDERS`` and ``LOGTRACE_DEMO_INVENTORY`` are the
URLs of the services it calls.

What fails, so that the stitched logs have something to show:

- item 13 is missing from the inventory database: its query raises, inventory
  logs the exception and answers 500, orders 502, the gateway 502: the error
  starts two services deep;
- quantities over 5 are refused by orders' pricing (a ``ValueError`` in a
  span, logged with its traceback; orders answers 500, the gateway 502);
- item 5 is slow: inventory's query takes 300 ms.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException

import logtrace
import logtrace.httpx
from logtrace import TraceMiddleware, span

__all__ = ["gateway", "inventory", "orders"]


def _die_with_parent(parent: str | None) -> None:
    """On Linux, when started by the demo: SIGTERM when the demo dies, and
    exit now if it already has."""
    if not parent or not parent.isdigit() or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):
        raise SystemExit(0)


_die_with_parent(os.environ.get("LOGTRACE_DEMO_PARENT"))
SERVICE = os.environ.get("LOGTRACE_DEMO_SERVICE", "")
if SERVICE:
    logtrace.configure_logging(SERVICE, filename=os.environ.get("LOGTRACE_DEMO_LOG"))
log = logging.getLogger(f"demo.{SERVICE or 'service'}")

MISSING_ITEM = 13
SLOW_ITEM = 5
MAX_QUANTITY = 5


def _client(env: str) -> logtrace.httpx.AsyncClient:
    return logtrace.httpx.AsyncClient(
        base_url=os.environ.get(env, "http://127.0.0.1:1"), timeout=10
    )


# -- gateway: the entry point -----------------------------------------------------


@asynccontextmanager
async def _gateway_life(app: FastAPI) -> AsyncIterator[None]:
    async with _client("LOGTRACE_DEMO_ORDERS") as client:
        app.state.orders = client
        yield


gateway = FastAPI(lifespan=_gateway_life)
gateway.add_middleware(TraceMiddleware)


@gateway.post("/checkout/{item_id}")
async def checkout(item_id: int, quantity: int = 1) -> dict[str, object]:
    log.info("checkout for item %d, quantity %d", item_id, quantity)
    response = await gateway.state.orders.post(f"/orders/{item_id}", params={"quantity": quantity})
    if response.status_code != 200:
        log.warning("orders answered %d", response.status_code)
        raise HTTPException(status_code=502, detail="the order could not be placed")
    order: dict[str, object] = response.json()
    log.info("checkout done: order %s", order["order_id"])
    return order


# -- orders: prices the order, reserves the stock -----------------------------------


@asynccontextmanager
async def _orders_life(app: FastAPI) -> AsyncIterator[None]:
    async with _client("LOGTRACE_DEMO_INVENTORY") as client:
        app.state.inventory = client
        yield


orders = FastAPI(lifespan=_orders_life)
orders.add_middleware(TraceMiddleware)


@orders.post("/orders/{item_id}")
async def place_order(item_id: int, quantity: int = 1) -> dict[str, object]:
    log.info("placing an order for item %d", item_id)
    try:
        with span("price order", item_id=item_id, quantity=quantity):
            await asyncio.sleep(0.002)
            if quantity > MAX_QUANTITY:
                raise ValueError(f"no price for {quantity} items: at most {MAX_QUANTITY} an order")
    except ValueError:
        log.exception("pricing failed for item %d", item_id)
        raise HTTPException(status_code=500, detail="pricing failed") from None
    response = await orders.state.inventory.post(
        f"/stock/{item_id}/reserve", params={"quantity": quantity}
    )
    if response.status_code != 200:
        log.error("inventory answered %d for item %d", response.status_code, item_id)
        raise HTTPException(status_code=502, detail="inventory failed")
    log.info("order placed for item %d", item_id)
    return {"order_id": f"o-{item_id}-{quantity}", "item_id": item_id, "quantity": quantity}


# -- inventory: the stock database ----------------------------------------------------


class StockError(LookupError):
    """An item the database has no row for."""


inventory = FastAPI()
inventory.add_middleware(TraceMiddleware)


@inventory.post("/stock/{item_id}/reserve")
async def reserve(item_id: int, quantity: int = 1) -> dict[str, object]:
    log.info("reserving %d of item %d", quantity, item_id)
    try:
        with span("db.select", table="stock", item_id=item_id):
            await asyncio.sleep(0.3 if item_id == SLOW_ITEM else 0.003)
            if item_id == MISSING_ITEM:
                raise StockError(f"no stock row for item {item_id}")
    except StockError:
        log.exception("stock lookup failed for item %d", item_id)
        raise HTTPException(status_code=500, detail="stock lookup failed") from None
    with span("db.update", table="stock"):
        await asyncio.sleep(0.002)
    log.info("reserved %d of item %d", quantity, item_id)
    return {"item_id": item_id, "reserved": quantity}
