"""A Starlette service wrapped in ``TraceMiddleware``, logging through structlog.

uvicorn starlette_app:app --app-dir examples
python examples/starlette_app.py
"""

from __future__ import annotations

import os

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from logtrace import configure_logging, span
from logtrace.asgi import TraceMiddleware

configure_logging("catalog", level=os.environ.get("LOG_LEVEL", "INFO"))
log = structlog.get_logger(__name__)


async def product(request: Request) -> JSONResponse:
    product_id = request.path_params["product_id"]
    log.info("product requested", product_id=product_id)
    with span("render", product_id=product_id):
        body = {"id": product_id, "price": 9.5}
    return JSONResponse(body)


async def fail(request: Request) -> JSONResponse:
    log.info("about to fail")
    raise RuntimeError("catalog unavailable")


# Wrapping the whole application puts Starlette's error handling inside the
# span too, so its 500 response carries the trace headers.
app = TraceMiddleware(
    Starlette(routes=[Route("/products/{product_id:int}", product), Route("/fail", fail)])
)


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_config=None)
