"""A FastAPI service whose every log line carries the request's trace.

    uvicorn fastapi_app:app --app-dir examples          # uvicorn's command line
    python examples/fastapi_app.py                      # uvicorn.run(..., log_config=None)

Then ``curl -i 127.0.0.1:8000/users/42`` (add ``-H 'traceparent: 00-...'``
to continue a caller's trace) and watch the JSON lines on standard error.
"""

from __future__ import annotations

import asyncio
import logging
import os

import structlog
from fastapi import FastAPI, HTTPException

from logtrace import configure_logging, span
from logtrace.asgi import TraceMiddleware

configure_logging("users-api", level=os.environ.get("LOG_LEVEL", "INFO"))

log = structlog.get_logger(__name__)
stdlib_log = logging.getLogger("users.db")

app = FastAPI()
app.add_middleware(TraceMiddleware)


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> dict[str, object]:
    log.info("looking up user", user_id=user_id)
    with span("db.select", table="users"):
        await asyncio.sleep(0.002)
        stdlib_log.info("query took %.1f ms", 2.0)
    if user_id == 0:
        raise HTTPException(status_code=404, detail="no such user")
    return {"id": user_id, "name": f"user {user_id}"}


@app.get("/fail")
async def fail() -> None:
    log.info("about to fail")
    raise RuntimeError("the database is on fire")


if __name__ == "__main__":
    import uvicorn

    # log_config=None: uvicorn leaves logging as configure_logging set it up.
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_config=None)
