"""Service B, ``inventory``: a Starlette app that service A calls over HTTP.

Writes JSON log lines to ``$LOG_FILE`` (standard error when unset).
"""

from __future__ import annotations

import asyncio
import os

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from logtrace import configure_logging, span
from logtrace.asgi import TraceMiddleware

configure_logging("inventory", filename=os.environ.get("LOG_FILE"))
log = structlog.get_logger("inventory.stock")


async def stock(request: Request) -> JSONResponse:
    item_id: int = request.path_params["item_id"]
    log.info("stock lookup", item_id=item_id)
    with span("db.select", table="stock"):
        await asyncio.sleep(0.003)
        if item_id == 0:
            raise LookupError(f"no stock row for item {item_id}")
    log.info("stock found", item_id=item_id, quantity=3)
    return JSONResponse({"item_id": item_id, "quantity": 3})


app = TraceMiddleware(Starlette(routes=[Route("/stock/{item_id:int}", stock)]))
