"""``import logtrace`` and the middleware modules load the standard library only."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from servers import REPO

HEAVY = (
    "structlog",
    "httpx",
    "requests",
    "pythonjsonlogger",
    "logtrace.stitch",
    "logtrace.cli",
    "celery",
    "kombu",
    "redis",
    "logtrace.celery",
)
"""Modules that must stay out until their feature is used."""

FRAMEWORKS = ("starlette", "fastapi", "flask", "django", "werkzeug", "uvicorn", "gunicorn")


def loaded_after(statement: str) -> list[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    code = f"import sys\n{statement}\nimport json\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    modules: list[str] = json.loads(result.stdout.splitlines()[-1])
    return modules


def heavy_in(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


@pytest.mark.parametrize(
    "statement",
    ["import logtrace", "import logtrace.asgi, logtrace.wsgi", "from logtrace import current"],
)
def test_no_heavy_module_is_loaded(statement: str) -> None:
    modules = loaded_after(statement)
    assert "logtrace" in modules
    assert heavy_in(modules, HEAVY) == []
    assert heavy_in(modules, FRAMEWORKS) == []


def test_the_check_sees_a_heavy_import() -> None:
    modules = loaded_after("import logtrace, httpx")
    assert "httpx" in heavy_in(modules, HEAVY)
