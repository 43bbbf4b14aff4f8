"""WSGI entry point: ``gunicorn --chdir examples/django_project shop.wsgi``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from logtrace.wsgi import WSGITraceMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

application = WSGITraceMiddleware(get_wsgi_application())
