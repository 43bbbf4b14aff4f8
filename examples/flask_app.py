"""A Flask service with stdlib logging: JSON lines that carry the trace.

    gunicorn --chdir examples --access-logfile - flask_app:app
    python examples/flask_app.py                 # Werkzeug's development server

Flask logs an unhandled exception itself (once, on ``app.logger``, with the
traceback) and answers 500; that line carries the IDs like every other.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, request

from logtrace import configure_logging, span
from logtrace.wsgi import ROUTE_KEY, WSGITraceMiddleware

configure_logging("orders", level=os.environ.get("LOG_LEVEL", "INFO"))
log = logging.getLogger("orders.views")

app = Flask("orders")


@app.before_request
def name_the_route() -> None:
    """Give the span the route template (``/orders/<int:order_id>``), not the raw path."""
    if request.url_rule is not None:
        request.environ[ROUTE_KEY] = request.url_rule.rule


@app.get("/orders/<int:order_id>")
def get_order(order_id: int) -> dict[str, object]:
    log.info("order requested", extra={"order_id": order_id})
    with span("price.compute", order_id=order_id):
        total = order_id * 2.5
    return {"id": order_id, "total": total}


@app.get("/fail")
def fail() -> str:
    log.info("about to fail")
    raise RuntimeError("payment provider timed out")


app.wsgi_app = WSGITraceMiddleware(app.wsgi_app)  # type: ignore[method-assign]


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")))
