"""House rules for the runtime modules (``logtrace/*.py``): small modules, plain shared
names, no import circles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "logtrace"
MODULES = sorted(p for p in PACKAGE.glob("*.py"))
MAX_LINES = 500


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _internal_imports(path: Path) -> list[tuple[str, str, int]]:
    """``(module, name, line)`` for each ``from .module import name`` at any depth."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            found.extend((node.module.split(".")[0], a.name, node.lineno) for a in node.names)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_is_under_500_lines(path: Path) -> None:
    assert len(path.read_text(encoding="utf-8").splitlines()) < MAX_LINES


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_private_name_is_borrowed_from_another_module(path: Path) -> None:
    borrowed = [
        f"line {line}: {name} from {module}"
        for module, name, line in _internal_imports(path)
        if name.startswith("_") and not (PACKAGE / f"{name}.py").exists()
    ]
    assert borrowed == []


def test_runtime_modules_import_each_other_without_circles() -> None:
    names = {p.stem for p in MODULES}
    graph = {
        p.stem: {module for module, _, _ in _internal_imports(p) if module in names}
        for p in MODULES
    }
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join((*path, module))
        if module in done:
            return
        for dependency in sorted(graph[module]):
            visit(dependency, (*path, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())
