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


def test_every_public_name_resolves_and_is_listed() -> None:
    """The package's names load on first use: each one listed resolves to
    the object its module defines, ``from logtrace import *`` gives them all,
    and an unknown name is an AttributeError."""
    code = (
        "import logtrace, importlib\n"
        "names = {}\n"
        "exec('from logtrace import *', names)\n"
        "missing = [n for n in logtrace.__all__ if n not in names]\n"
        "assert not missing, missing\n"
        "for name, module in logtrace._WHERE.items():\n"
        "    assert getattr(logtrace, name) is getattr(\n"
        "        importlib.import_module('logtrace.' + module), name), name\n"
        "assert sorted(logtrace.__all__) == sorted(['__version__', *logtrace._WHERE])\n"
        "assert set(logtrace.__all__) <= set(dir(logtrace))\n"
        "try:\n"
        "    logtrace.no_such_name\n"
        "except AttributeError:\n"
        "    print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.stdout.strip() == "ok", result.stderr


def test_the_command_line_loads_no_runtime() -> None:
    """``logtrace grep`` starts without the middleware and logging integrations."""
    modules = loaded_after("import logtrace.cli")
    runtime = ("logtrace.asgi", "logtrace.wsgi", "logtrace._setup", "logtrace.propagation")
    assert heavy_in(modules, runtime) == []
