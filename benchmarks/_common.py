"""Timing helpers shared by the middleware benchmarks.

The machines these run on are shared and noisy, so every script measures the
same way: many short rounds, the variants in a fresh random order each round,
and medians over rounds. Overhead is the median of per-round differences to
the baseline measured in the same round, so slow drift of the machine cancels.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS_FILE = REPO_ROOT / "docs" / "performance.md"

# Measure the checkout, not whatever copy of logtrace happens to be installed.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

CLOCKS = {"cpu": time.thread_time_ns, "wall": time.perf_counter_ns}
"""Timers for in-process batches. ``cpu`` (the default) counts only the time
this thread ran: being descheduled by a neighbour on a shared machine does
not count, which removes most of the noise there; ``wall`` is the classic."""

_FLUSH: dict[str, Any] = {}


def flush_caches() -> None:
    """Push this process's recently used memory out of the CPU caches.

    A tight loop keeps a middleware's code and data in L1/L2, which a server
    never does: between two requests it runs the HTTP parser, the event loop
    and the rest of the app. ``--cold`` runs call this between requests, which
    makes in-process figures predict in-server costs much better.
    """
    if not _FLUSH:
        _FLUSH["buffer"] = bytearray(16 << 20)  # larger than L2, a good part of L3
        _FLUSH["objects"] = [object() for _ in range(1 << 18)]
    bytes(_FLUSH["buffer"])
    for _ in _FLUSH["objects"][::8]:
        pass


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
"""The incoming ``traceparent`` every benchmark request carries."""


def interleaved(names: Sequence[str], rounds: int, seed: int = 0) -> Iterable[tuple[int, str]]:
    """``(round, name)`` pairs: every name once per round, in a new random order."""
    rng = random.Random(seed)
    order = list(names)
    for r in range(rounds):
        rng.shuffle(order)
        for name in order:
            yield r, name


@dataclass(frozen=True)
class Row:
    """One variant's summary over all rounds."""

    name: str
    median: float
    """Median over rounds of the per-round value (seconds per request, or requests/s)."""
    delta: float
    """Median over rounds of (variant - baseline) in the same round."""
    delta_q1: float
    delta_q3: float
    ratio: float
    """Median over rounds of variant / baseline in the same round."""
    ratio_q1: float
    ratio_q3: float
    rounds: int


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def summarize(
    samples: Mapping[str, Sequence[float]], baseline: str, order: Sequence[str]
) -> list[Row]:
    """Paired per-round statistics of every variant against ``baseline``.

    ``samples[name][r]`` is round ``r``'s value for ``name``; rounds where
    either side is missing are skipped.
    """
    base = samples[baseline]
    rows = []
    for name in order:
        values = samples.get(name)
        if not values:
            continue
        pairs = [(v, b) for v, b in zip(values, base, strict=True) if v == v and b == b]
        deltas = [v - b for v, b in pairs]
        ratios = [v / b for v, b in pairs]
        q1, q3 = _quartiles(deltas)
        r1, r3 = _quartiles(ratios)
        rows.append(
            Row(
                name=name,
                median=statistics.median(values),
                delta=statistics.median(deltas),
                delta_q1=q1,
                delta_q3=q3,
                ratio=statistics.median(ratios),
                ratio_q1=r1,
                ratio_q3=r3,
                rounds=len(pairs),
            )
        )
    return rows


def overhead_cells(row: Row, label: str, baseline: str) -> list[str]:
    """One table row in µs: median, median overhead over ``baseline``, its IQR, ratio."""
    if row.name == baseline:
        return [label, f"{row.median * 1e6:.2f}", "-", "-", "1.00x"]
    return [
        label,
        f"{row.median * 1e6:.2f}",
        f"{row.delta * 1e6:+.2f}",
        f"{row.delta_q1 * 1e6:+.2f} .. {row.delta_q3 * 1e6:+.2f}",
        f"{row.ratio:.2f}x",
    ]


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every in-process benchmark takes: rounds, batch length, clock, seed, docs."""
    parser.add_argument("--rounds", type=int, default=150, help="interleaved rounds (default 150)")
    parser.add_argument(
        "--batch-ms",
        type=float,
        default=10.0,
        help="length of one variant's batch in a round (default 10 ms)",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: this thread's CPU time (default, robust on shared machines); wall: elapsed",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="refresh this benchmark's block in docs/performance.md",
    )


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table, first column left-aligned, the rest right."""
    rows = [list(header), *map(list, rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [cells[0].ljust(widths[0])]
        out += [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(out) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 2)) if i == 0 else ("-" * (w + 1) + ":") for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(rows[0]), rule, *(line(r) for r in rows[1:])])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions(*dists: str) -> str:
    """``name version`` for each installed distribution, comma-separated."""
    out = []
    for dist in dists:
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(f"{dist} (not installed)")
    return ", ".join(out)


def machine_line() -> str:
    """Where and when the figures were taken, for the printed report and the docs."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    impl = platform.python_implementation()
    return (
        f"{now}; {cpu_model()}, nproc {usable}; {impl} {platform.python_version()} "
        f"on {platform.system()} {platform.release()}"
    )


def git_revision() -> str:
    """The checked-out commit (short), with ``+`` when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=10", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+" if dirty else "")


# --- docs/performance.md -------------------------------------------------------

_SKELETON = """\
# Performance

What logtrace costs on the hot paths (per request, per outgoing call, per log
record, per input line of the stitcher), how it was measured, and how to
re-run the measurements. Every figure states the machine and date it was taken
on; the scripts live in `benchmarks/` (see `benchmarks/README.md`).

## Middleware

"""

_SECTION = "## Middleware"


def write_docs_block(
    key: str,
    body: str,
    path: Path = DOCS_FILE,
    *,
    section: str = _SECTION,
    tag: str = "bench",
) -> None:
    """Replace (or add) the block ``key`` inside ``section`` of the page.

    A block sits between ``<!-- tag:key -->`` and ``<!-- /tag:key -->``
    so that each script refreshes its own figures and leaves the prose and the
    other sections of the page alone.
    """
    start, end = f"<!-- {tag}:{key} -->", f"<!-- /{tag}:{key} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else _SKELETON
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        if section not in text:
            text = text.rstrip("\n") + f"\n\n{section}\n\n"
        head, _, tail = text.partition(section)
        nxt = re.search(r"^## ", tail, re.M)
        cut = nxt.start() if nxt else len(tail)
        part = tail[:cut].rstrip("\n") + "\n\n" + block + "\n"
        rest = tail[cut:]
        text = head + section + part + ("\n" + rest if rest else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
