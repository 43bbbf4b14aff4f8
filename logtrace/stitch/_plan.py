"""Plan the inputs: which files a run reads, as which service, in which pieces.

Paths as given (files, directories, glob patterns, ``-`` for stdin) become
:class:`Source` files; each file becomes one scan task, or several byte
ranges cut at line boundaries when it is large, uncompressed and there is
more than one core to give them to.
"""

from __future__ import annotations

import glob
import math
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from itertools import pairwise

from ._model import Source

__all__ = [
    "CHUNK",
    "InputError",
    "ScanTask",
    "expand_paths",
    "input_size",
    "plan_tasks",
    "service_from_path",
    "task_size",
]

_GLOB_CHARS = frozenset("*?[")

CHUNK = 48 << 20
"""Uncompressed files larger than this are scanned as several ranges."""

ScanTask = tuple[int, str, str, int, int]
"""(file index, name as given, path, start offset, end offset or -1 for the end)."""


class InputError(Exception):
    """An input that cannot be read at all; the message names the file."""


def expand_paths(paths: Sequence[str], spool_dir: str) -> list[Source]:
    """Files, directories (recursively), glob patterns and ``-`` (stdin)."""
    sources: list[Source] = []
    for given in paths:
        if given == "-":
            fd, spool = tempfile.mkstemp(prefix="stdin-", dir=spool_dir)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
            sources.append(Source("-", spool))
        elif os.path.isdir(given):
            found: list[str] = []
            for root, dirs, files in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(root, f) for f in files if not f.startswith("."))
            sources.extend(Source(p, p) for p in sorted(found))
        elif os.path.exists(given):
            sources.append(Source(given, given))
        elif _GLOB_CHARS & set(given):
            matches = sorted(p for p in glob.glob(given, recursive=True) if os.path.isfile(p))
            if not matches:
                raise InputError(f"{given}: no file matches")
            sources.extend(Source(p, p) for p in matches)
        else:
            raise InputError(f"{given}: no such file or directory")
    return sources


_SUFFIXES = re.compile(
    r"(?:\.(?:gz|bz2|xz|zst|log|jsonl|json|ndjson|txt|out|err|\d+)"
    r"|[-_.]\d{4}-?\d{2}-?\d{2}(?:[-_T]?\d{2,6})?)+$",
    re.IGNORECASE,
)


def service_from_path(name: str) -> str:
    """``logs/orders.log.1.gz`` -> ``orders``: the file name without log suffixes."""
    if name == "-":
        return "stdin"
    base = os.path.basename(name.rstrip("/")) or name
    stripped = _SUFFIXES.sub("", base)
    return stripped or base


def plan_tasks(sources: Sequence[Source], jobs: int) -> list[ScanTask]:
    """Split large plain files into line-aligned ranges; one task per compressed file."""
    tasks: list[ScanTask] = []
    for index, src in enumerate(sources):
        try:
            size = os.path.getsize(src.path)
            with open(src.path, "rb") as f:
                head = f.read(6)
        except OSError:
            tasks.append((index, src.name, src.path, 0, -1))
            continue
        compressed = head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00"))
        if compressed or size <= CHUNK or jobs <= 1:
            tasks.append((index, src.name, src.path, 0, -1))
            continue
        parts = max(2, math.ceil(size / CHUNK))
        bounds = [0]
        with open(src.path, "rb") as f:
            for k in range(1, parts):
                f.seek(max(size * k // parts, bounds[-1]))
                f.readline()
                pos = f.tell()
                if pos < size and pos > bounds[-1]:
                    bounds.append(pos)
        bounds.append(size)
        for start, end in pairwise(bounds):
            tasks.append((index, src.name, src.path, start, end))
    return tasks


def input_size(tasks: Sequence[ScanTask]) -> int:
    """About how many bytes of lines the tasks hold (compressed files counted 8x)."""
    return sum(task_size(t) for t in tasks)


def task_size(task: ScanTask) -> int:
    """About how many bytes of lines one task holds (what :func:`input_size` adds up)."""
    _, _, path, start, end = task
    if end >= 0:
        return end - start
    try:
        return os.path.getsize(path) * 8  # compressed: about 8x once decompressed
    except OSError:
        return 0
