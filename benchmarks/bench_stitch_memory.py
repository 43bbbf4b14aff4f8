"""Peak memory of ``logtrace stitch`` under a memory budget, as the input grows.

Two kinds of input:

- the service logs of ``bench_stitch.py`` (about 500 MB, 80 lines a trace);
- logs where every line is a trace and a span of its own, the worst case for
  state kept per trace or per ID, at two sizes four times apart.

Each runs ``logtrace stitch --format jsonl -o /dev/null --jobs 2`` at a few
budgets; the peak anonymous memory of the process tree (what a budget can
bound) is reported beside the budget. The figure that matters is how the
peak moves when the input grows at the same budget.

    python benchmarks/bench_stitch_memory.py [--write-docs]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from _common import machine_line, markdown_table  # noqa: E402
from bench_stitch import ensure_data, timed, write_block  # noqa: E402

EDGE = REPO_ROOT / "benchmarks" / "data" / "edge"


def trace_per_line(lines: int) -> Path:
    """A log of ``lines`` lines, each a trace of its own (written once, then reused)."""
    path = EDGE / f"trace-per-line-{lines}.log"
    if path.exists():
        return path
    EDGE.mkdir(parents=True, exist_ok=True)
    rng = random.Random(lines)
    partial = path.with_suffix(".partial")
    with open(partial, "w", encoding="ascii") as f:
        for start in range(0, lines, 100_000):
            f.writelines(
                f'{{"timestamp":"2026-03-01T{k // 3_600_000 % 24:02d}:{k // 60_000 % 60:02d}:'
                f'{k // 1000 % 60:02d}.{k % 1000:03d}123Z","level":"info","service":"edge",'
                f'"trace_id":"{rng.getrandbits(128):032x}","span_id":"{rng.getrandbits(64):016x}",'
                f'"event":"request handled"}}\n'
                for k in range(start, min(lines, start + 100_000))
            )
    partial.rename(path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budgets", default="96M,256M")
    ap.add_argument("--edge-lines", default="1000000,4000000")
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args(argv)

    service_files, _ = ensure_data(500.0, 11)
    inputs: list[tuple[str, list[str]]] = [("service logs", service_files)]
    for n in (int(v) for v in args.edge_lines.split(",")):
        inputs.append((f"a trace per line, {n / 1e6:g} M lines", [str(trace_per_line(n))]))

    rows = []
    for label, files in inputs:
        size = sum(Path(f).stat().st_size for f in files)
        for budget in args.budgets.split(","):
            variants = [("", "")]
            if label == "service logs" and budget == args.budgets.split(",")[0]:
                variants.append((" (pure Python)", "LOGTRACE_PURE_PYTHON=1 "))
            for suffix, env in variants:
                cmd = (
                    f"{env}{sys.executable} -m logtrace stitch -q --jobs 2 --format jsonl "
                    f"--memory {budget} -o /dev/null {' '.join(files)}"
                )
                wall, _, anon, code = timed(cmd, args.timeout)
                if code != 0:
                    print(f"{label} at {budget}: exit {code}", file=sys.stderr)
                    return 1
                print(f"{label}{suffix}, {budget}: {anon} MB anonymous, {wall:.1f} s", flush=True)
                mb = f"{size / 1e6:.0f} MB"
                rows.append([f"{label}{suffix}", mb, budget, f"{anon} MB", f"{wall:.1f} s"])
    table = markdown_table(["input", "size", "--memory", "peak anonymous", "wall"], rows)
    print(table)
    if args.write_docs:
        write_block(
            "memory",
            f"{table}\n\nOne run each, `--jobs 2`; peak anonymous memory of the process tree, "
            f"sampled every 20 ms. Measured {machine_line()}.",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
