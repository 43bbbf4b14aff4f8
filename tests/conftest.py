"""Fixtures shared by the test suite."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from _echo import capture_spans, echo_app, serve
from hypothesis import HealthCheck, settings

from logtrace import current
from logtrace._context import CURRENT
from logtrace._records import SPAN_LOGGER_NAME

# CI runs on a small shared machine: no per-example deadline (a slow example is
# not a failure), and a fixed seed so that a red run can be replayed exactly.
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _no_trace_context() -> Iterator[None]:
    """Start every test outside any trace, whatever the previous test left current.

    Middleware leaves a failed request's context in place for the server's
    exception log line; in a test that calls it directly, that is the test's
    own context.
    """
    token = CURRENT.set(None)
    yield
    with contextlib.suppress(ValueError):
        CURRENT.reset(token)


@pytest.fixture
def span_records() -> Iterator[list[logging.LogRecord]]:
    """The span records written during the test (``logtrace.span`` at DEBUG and up)."""
    with capture_spans() as spans:
        yield spans.records


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """Base URL of an ``echo_app`` server, one per test module."""
    with serve(echo_app) as url:
        yield url


@pytest.fixture
def no_span_records() -> Iterator[None]:
    """Span records off, whatever the root logger's level."""
    logger = logging.getLogger(SPAN_LOGGER_NAME)
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def django_route_middleware(get_response: Any) -> Any:
    """The route recipe of docs/frameworks.md: Django's matched route into the span."""

    def middleware(request: Any) -> Any:
        response = get_response(request)
        match = request.resolver_match
        if match is not None and match.route:
            carrier = request.scope if hasattr(request, "scope") else request.environ
            carrier["logtrace.route"] = "/" + match.route
        return response

    return middleware


@pytest.fixture(scope="session")
def django_urls() -> ModuleType:
    """A configured Django (settings in code, no project) and its URL module.

    Two views: ``/users/<int:user_id>/`` answers the current context as JSON,
    ``/boom/`` raises. Django is configured once per test process.
    """
    import django
    from django.conf import settings
    from django.http import HttpRequest, HttpResponse, JsonResponse
    from django.urls import path

    def user(request: HttpRequest, user_id: int) -> HttpResponse:
        ctx = current()
        assert ctx is not None
        return JsonResponse({"user": user_id, **ctx._asdict()})

    def boom(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("boom in a Django view")

    urls = ModuleType("logtrace_test_django_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("users/<int:user_id>/", user),
        path("boom/", boom),
    ]
    sys.modules[urls.__name__] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="logtrace-tests",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=urls.__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[f"{__name__}.django_route_middleware"],
        LOGGING_CONFIG=None,
        USE_TZ=True,
    )
    django.setup()
    return urls
