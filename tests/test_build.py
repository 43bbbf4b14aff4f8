"""The package builds without a C compiler: the stitcher's extensions are optional."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("setuptools")


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(
        ROOT / "logtrace",
        tmp_path / "logtrace",
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"),
    )
    return tmp_path


def build(where: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=where,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def built(where: Path) -> list[str]:
    return sorted(p.name.split(".")[0] for p in (where / "logtrace" / "stitch").glob("*.so"))


def test_a_failing_compiler_leaves_the_pure_python_stitcher(source_copy: Path) -> None:
    result = build(source_copy, CC="false")
    assert result.returncode == 0, result.stderr
    assert built(source_copy) == []
    assert "_native_scan" in result.stderr  # the build says what it skipped


def test_no_extensions_when_asked(source_copy: Path) -> None:
    result = build(source_copy, LOGTRACE_NO_EXTENSIONS="1")
    assert result.returncode == 0, result.stderr
    assert built(source_copy) == []


@pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None, reason="no C compiler here"
)
def test_every_extension_builds_with_a_compiler(source_copy: Path) -> None:
    result = build(source_copy)
    assert result.returncode == 0, result.stderr
    assert built(source_copy) == ["_native_find", "_native_scan", "_native_write"]
