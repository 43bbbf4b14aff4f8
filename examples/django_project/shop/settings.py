"""Settings of the example Django project.

Logging goes through Django's own ``LOGGING`` dictConfig: logtrace adds a
filter and a formatter to it. This is the recipe for any application that
already configures logging with ``dictConfig``.
"""

from __future__ import annotations

import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET_KEY = "example-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, object] = {}
USE_TZ = True

MIDDLEWARE = [
    "shop.middleware.route_to_span",
    "django.middleware.common.CommonMiddleware",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"trace": {"()": "logtrace.stdlib.TraceContextFilter"}},
    "formatters": {"json": {"()": "logtrace.stdlib.json_formatter", "service": "django-shop"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["trace"],
            "formatter": "json",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # Django's and the servers' loggers (parents included): no handlers of their
    # own, everything up to the root.
    "loggers": {
        name: {"handlers": [], "propagate": True}
        for name in (
            "django",
            "django.server",
            "gunicorn",
            "gunicorn.error",
            "gunicorn.access",
            "uvicorn",
            "uvicorn.error",
            "uvicorn.access",
        )
    },
}
