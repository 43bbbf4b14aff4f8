"""ASGI entry point: ``uvicorn shop.asgi:application --app-dir examples/django_project``."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from logtrace.asgi import TraceMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

application = TraceMiddleware(get_asgi_application())
