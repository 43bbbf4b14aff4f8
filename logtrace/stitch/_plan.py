"""Plan the inputs: which files a run reads, as which service, in which pieces.

Paths as given (files, directories, glob patterns, ``-`` for stdin) become
:class:`Source` files; each file becomes one scan task, or several byte
ranges cut at line boundaries (never inside a record: see
:mod:`._record_cuts`) when it is large, uncompressed and there is more than
one core to give them to.
"""

from __future__ import annotations

import errno
import glob
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Sequence
from itertools import pairwise
from typing import IO, TypeVar

from ._record_cuts import safe_start
from ._source import Source

__all__ = [
    "CHUNK",
    "InputError",
    "ScanTask",
    "expand_paths",
    "input_size",
    "plan_tasks",
    "rotation_key",
    "rotation_order",
    "service_from_path",
    "task_size",
]

_GLOB_CHARS = frozenset("*?[")

CHUNK = 48 << 20
"""Uncompressed files larger than this are scanned as several ranges."""

_T = TypeVar("_T", str, Source)

ScanTask = tuple[int, str, str, int, int]
"""(file index, name as given, path, start offset, end offset or -1 for the end)."""


class InputError(Exception):
    """An input that cannot be read at all; the message names the file."""


def expand_paths(
    paths: Sequence[str], spool_dir: str, problems: list[str] | None = None
) -> list[Source]:
    """Files, directories (recursively), glob patterns and ``-`` (stdin).

    Each file is one input however often it is reached (named twice, with
    its directory, through a symlink: same device and inode). Rotations of a
    log come oldest first, then the live file (:func:`rotation_order`).

    An entry that cannot be read (missing, a dangling symlink, a symlink
    loop, no permission, a FIFO or socket under a directory) raises
    :class:`InputError`, or with ``problems`` is described there and
    skipped; then only a run left with nothing to read raises.
    """
    found = _Found(spool_dir, problems)
    for given in paths:
        if given == "-":
            found.spool_stream("-", sys.stdin.buffer)
        elif os.path.isdir(given):
            names: list[str] = []

            def unlisted(exc: OSError, given: str = given) -> None:
                found.problem(f"{exc.filename or given}: {exc.strerror or exc}")

            for root, dirs, files in os.walk(given, onerror=unlisted):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                names.extend(os.path.join(root, f) for f in files if not f.startswith("."))
            for name in sorted(names):
                found.add(name, named=False)
        elif os.path.lexists(given):
            found.add(given, named=True)
        elif _GLOB_CHARS & set(given):
            matches = sorted(p for p in glob.glob(given, recursive=True) if not os.path.isdir(p))
            if not matches:
                found.problem(f"{given}: no file matches")
            for name in matches:
                found.add(name, named=False)
        else:
            found.problem(f"{given}: no such file or directory")
    if not found.sources and problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"nothing could be read: {problems[0]}{more}")
    return rotation_order(found.sources)


class _Found:
    """The inputs found so far, one per device and inode."""

    def __init__(self, spool_dir: str, problems: list[str] | None) -> None:
        self.sources: list[Source] = []
        self._seen: dict[tuple[int, int], int] = {}
        """Where each file is in ``sources``; -1 for a spooled FIFO."""
        self._spool_dir = spool_dir
        self._problems = problems

    def problem(self, message: str) -> None:
        if self._problems is None:
            raise InputError(message)
        self._problems.append(message)

    def add(self, path: str, named: bool) -> None:
        """A file, if it can be opened; a FIFO named on the command line (as
        ``<(zcat ...)`` is) is read once into the spool."""
        try:
            info = os.stat(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            if os.path.islink(path) and exc.errno == errno.ENOENT:
                reason = f"dangling symlink to {os.readlink(path)}"
            self.problem(f"{path}: {reason}")
            return
        key = (info.st_dev, info.st_ino)
        if key in self._seen:
            # Once; by its own name rather than through a symlink's.
            at = self._seen[key]
            if at >= 0 and os.path.islink(self.sources[at].name) and not os.path.islink(path):
                self.sources[at] = Source(path, path)
            return
        if named and stat.S_ISFIFO(info.st_mode):
            self._seen[key] = -1
            try:
                with open(path, "rb") as stream:
                    self.spool_stream(path, stream)
            except OSError as exc:
                self.problem(f"{path}: {exc.strerror or exc}")
            return
        if not stat.S_ISREG(info.st_mode):
            self.problem(f"{path}: not a regular file (a FIFO, socket or device)")
            return
        try:
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError as exc:
            self.problem(f"{path}: {exc.strerror or exc}")
            return
        self._seen[key] = len(self.sources)
        self.sources.append(Source(path, path))

    def spool_stream(self, name: str, stream: IO[bytes]) -> None:
        fd, spool = tempfile.mkstemp(prefix="stdin-", dir=self._spool_dir)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, 1 << 20)
        self.sources.append(Source(name, spool))


_COMPRESSED = re.compile(r"\.(?:gz|bz2|xz|zst)$", re.IGNORECASE)
_NUMBERED = re.compile(r"\.(\d{1,6})$")
_DATED = re.compile(r"[-_.](\d{4})-?(\d{2})-?(\d{2})(?:[-_T]?(\d{2})(\d{2})?(\d{2})?)?$")


def rotation_key(name: str) -> tuple[str, tuple[int, ...]]:
    """``app.log.3.gz`` -> ``("app.log", (1, -3))``: the live file's name, and a
    rank that sorts a log's rotations oldest first: dated rotations
    (``app.log-20261203.gz``, ``app.log.2026-12-03``) by date, then numbered
    ones (``.10`` before ``.2`` before ``.1``), then the live file."""
    base = _COMPRESSED.sub("", name)
    numbered = _NUMBERED.search(base)
    if numbered:
        return base[: numbered.start()], (1, -int(numbered.group(1)))
    dated = _DATED.search(base)
    if dated:
        when = tuple(int(g or 0) for g in dated.groups())
        return base[: dated.start()], (0, *when)
    return base, (2,)


def rotation_order(sources: Sequence[_T]) -> list[_T]:
    """``sources`` (paths or :class:`Source`) with each log's rotations
    together, oldest first, where the first of them was; other files keep
    their order."""
    groups: dict[str, list[tuple[tuple[int, ...], int, _T]]] = {}
    for position, item in enumerate(sources):
        name = item.name if isinstance(item, Source) else str(item)
        live, rank = rotation_key(name)
        groups.setdefault(live, []).append((rank, position, item))
    return [item for group in groups.values() for _, _, item in sorted(group)]


_SUFFIXES = re.compile(
    r"(?:\.(?:gz|bz2|xz|zst|log|jsonl|json|ndjson|txt|out|err|\d+)"
    r"|[-_.]\d{4}-?\d{2}-?\d{2}(?:[-_T]?\d{2,6})?)+$",
    re.IGNORECASE,
)


_K8S_CONTAINER_FILE = re.compile(r"^[^_/]+_[^_/]+_(?P<container>[^/]+)-[0-9a-f]{64}$")
"""A kubelet's ``/var/log/containers`` name (suffixes off):
``<pod>_<namespace>_<container>-<container ID>``."""
_K8S_POD_DIR = re.compile(r"^[^_/]+_[^_/]+_[0-9a-f-]{36}$")
"""A kubelet's ``/var/log/pods`` directory: ``<namespace>_<pod>_<pod UID>``."""


def service_from_path(name: str) -> str:
    """``logs/orders.log.1.gz`` -> ``orders``: the file name without log suffixes.

    Kubernetes node files name their container: ``/var/log/containers/
    web-7d9f_shop_orders-<ID>.log`` and ``/var/log/pods/shop_web-7d9f_<UID>/
    orders/0.log`` are both ``orders``.
    """
    if name == "-":
        return "stdin"
    path = name.rstrip("/")
    base = os.path.basename(path) or name
    stripped = _SUFFIXES.sub("", base)
    container = _K8S_CONTAINER_FILE.match(stripped)
    if container is not None:
        return container["container"]
    if stripped.isdigit() or not stripped:  # /var/log/pods/<pod dir>/<container>/0.log
        pod_dir, container_dir = os.path.split(os.path.dirname(path))
        if container_dir and _K8S_POD_DIR.match(os.path.basename(pod_dir)):
            return container_dir
    return stripped or base


def plan_tasks(sources: Sequence[Source], jobs: int) -> list[ScanTask]:
    """Split large plain files into ranges of whole records; one task per compressed file."""
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
                pos = safe_start(f, size)  # not inside a record (a traceback)
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
