"""Build the stitcher's optional C accelerators.

logtrace is complete without them: when no C compiler is at hand (or
``LOGTRACE_NO_EXTENSIONS`` is set) the build goes on and the stitcher uses
its pure-Python paths, which give the same output, only slower.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import Extension, setup

HERE = Path(__file__).parent
NATIVE = ("_native_scan", "_native_write", "_native_find")


def _extensions() -> list[Extension]:
    if os.environ.get("LOGTRACE_NO_EXTENSIONS"):
        return []
    found = []
    for name in NATIVE:
        source = Path("logtrace", "stitch", f"{name}.c")
        if (HERE / source).exists():
            found.append(
                Extension(
                    f"logtrace.stitch.{name}",
                    [str(source)],
                    extra_compile_args=["-O2"] if os.name != "nt" else [],
                    optional=True,
                )
            )
    return found


setup(ext_modules=_extensions())
