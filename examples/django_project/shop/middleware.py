"""Names the server span after Django's route (``/items/<int:item_id>``), not the raw path."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from logtrace.wsgi import ROUTE_KEY


def route_to_span(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        response = get_response(request)
        match = request.resolver_match
        if match is not None and match.route:
            carrier = getattr(request, "scope", None) or request.environ
            carrier[ROUTE_KEY] = "/" + match.route
        return response

    return middleware
