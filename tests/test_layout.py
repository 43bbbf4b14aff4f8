"""The package's shape: small modules, no circles, no private names borrowed.

These read the source (no imports), so a failure names the file and line.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "logtrace"
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _is_module(name: str) -> bool:
    """Whether ``name`` (dotted) is a module or extension of the package."""
    if name in MODULES:
        return True
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".pyi").exists() or any(path.parent.glob(path.name + ".*.so"))


def _imports(module: str, path: Path) -> Iterator[tuple[int, str, str | None]]:
    """(line, imported module, imported name or None) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                yield node.lineno, target, alias.name


def _internal_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for _, target, name in _imports(module, path):
            if not target.startswith("logtrace"):
                continue
            full = f"{target}.{name}" if name and _is_module(f"{target}.{name}") else target
            if full in MODULES and full != module:
                edges[module].add(full)
    return edges


class TestModuleSize:
    @pytest.mark.parametrize("module", sorted(MODULES))
    def test_module_is_small(self, module: str) -> None:
        lines = MODULES[module].read_text(encoding="utf-8").count("\n")
        assert lines <= MAX_LINES, f"{module} has {lines} lines (at most {MAX_LINES})"


class TestPrivateNames:
    def test_no_private_name_is_imported_from_another_module(self) -> None:
        borrowed = []
        for module, path in MODULES.items():
            for line, target, name in _imports(module, path):
                if not target.startswith("logtrace") or name is None:
                    continue
                # A private module is not imported by name either: modules are
                # ``_private``, the names other modules use from them are plain.
                if name.startswith("_") and not name.startswith("__"):
                    borrowed.append(f"{path.name}:{line} imports {name} from {target}")
        assert borrowed == []


class TestImportGraph:
    def test_there_are_no_import_circles(self) -> None:
        edges = _internal_edges()
        # Packages import their submodules lazily or for re-export; a
        # circle through a package's __init__ is still a circle.
        visiting: list[str] = []
        state: dict[str, int] = {}
        circles: list[str] = []

        def visit(node: str) -> None:
            state[node] = 1
            visiting.append(node)
            for nxt in sorted(edges[node]):
                if state.get(nxt) == 1:
                    circles.append(" -> ".join([*visiting[visiting.index(nxt) :], nxt]))
                elif nxt not in state:
                    visit(nxt)
            visiting.pop()
            state[node] = 2

        for node in sorted(edges):
            if node not in state:
                visit(node)
        assert circles == []


STITCH_STAGES = (
    # the data model and helpers every stage may use
    (
        "model",
        (
            "_source",
            "_model",
            "_memory",
            "_native",
            "_id_forms",
            "_timestamps",
            "_segments",
            "_gil",
            "_process_pool",
            "_record_cuts",
        ),
    ),
    ("plan the inputs", ("_plan", "_decompress", "_spool")),
    (
        "scan and parse",
        (
            "_parse_text",
            "_continued",
            "_wrapped",
            "_known_keys",
            "_parse",
            "_batches",
            "_intern",
            "_scan_python",
            "_scan_native",
            "_scan",
        ),
    ),
    ("partition by trace", ("_trace_halves", "_partition")),
    ("group and span tree", ("_group", "_tree", "_precision", "_resolution")),
    (
        "clocks",
        (
            "_clock_least_squares",
            "_clock_asymmetry",
            "_clock_bounds",
            "_clock_graph",
            "_clock_drift",
            "_clock_queues",
            "_clock_columns",
            "_clocks",
            "_span_fields",
            "_span_extras",
            "_correct",
            "_calls",
            "_span_pairs",
            "_span_openings",
            "_interval_depth",
            "_record_gaps",
            "_record_positions",
            "_evidence",
            "_containment_evidence",
            "_through_links",
            "_one_clock",
            "_link_consistency",
            "_link_evidence",
            "_containment",
            "_link_rules",
            "_call_doubt",
            "_gap_matching",
            "_linked_clocks",
            "_inferred_calls",
            "_sibling_links",
        ),
    ),
    (
        "order and select",
        ("_order_keys", "_order_rules", "_order_brackets", "_order", "_select", "_stage"),
    ),
    (
        "write",
        (
            "_record_exception",
            "_record_text",
            "_marks",
            "_timeline",
            "_root_cause",
            "_outcomes",
            "_render_summary",
            "_render_text",
            "_render_range",
            "_render_jsonl_native",
            "_render_jsonl",
            "_render_html",
            "_render_chrome",
            "_spans",
            "_render_otlp",
            "_render_jaeger",
            "_render_zipkin",
            "_export",
            "_write",
        ),
    ),
    (
        "the orchestrator and grep",
        (
            "_pipeline",
            "_search",
            "_grep_search",
            "_grep_calls",
            "_grep_order",
            "_grep_stitched",
            "_grep",
        ),
    ),
    ("the Spark engine's tasks", ("_spark_tasks",)),
)
"""The stitcher's modules in pipeline order (docs/architecture.md)."""


class TestStitchPipeline:
    def test_every_stitch_module_has_a_place_in_the_pipeline(self) -> None:
        placed = {m for _, modules in STITCH_STAGES for m in modules}
        found = {
            name.rpartition(".")[2] for name in MODULES if name.startswith("logtrace.stitch._")
        }
        assert found == placed

    def test_no_stage_imports_a_later_one(self) -> None:
        within = [m for _, modules in STITCH_STAGES for m in modules]
        position = {f"logtrace.stitch.{m}": i for i, m in enumerate(within)}
        backwards = [
            f"{module} imports {target}"
            for module, targets in _internal_edges().items()
            if module in position
            for target in targets
            if target in position and position[target] > position[module]
        ]
        assert backwards == []

    def test_the_stitcher_never_imports_the_log_generator(self) -> None:
        edges = _internal_edges()
        users = [
            m
            for m, targets in edges.items()
            if m.startswith("logtrace.stitch")
            and any(t.startswith("logtrace.testing") for t in targets)
        ]
        assert users == []
