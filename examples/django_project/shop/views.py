"""Views of the example project."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse

from logtrace import span

log = logging.getLogger("shop.views")


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    log.info("item requested", extra={"item_id": item_id})
    with span("stock.check", item_id=item_id):
        in_stock = item_id % 3
    return JsonResponse({"id": item_id, "in_stock": in_stock})


def fail(request: HttpRequest) -> JsonResponse:
    log.info("about to fail")
    raise RuntimeError("warehouse offline")
