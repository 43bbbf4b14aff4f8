"""Spark engine vs local engine on the same logs: wall time, scaling from one core to two.

    python benchmarks/bench_spark.py [--data DIR] [--json FILE]

Each run is the command a user types (``logtrace stitch --format jsonl``),
in a process of its own, so that Spark's times include starting its JVM; the
time to start and stop a session alone is measured too, to tell that fixed
cost from the stitch. Every output is compared with the local engine's
(byte for byte). Results go to stdout as a table and, with ``--json``, to a
file. The default data is the 500 MB benchmark set (``gen_logs.py``).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "/work/bench/data500/logs"

SESSION_ONLY = """
import time, sys
from pyspark.sql import SparkSession
t = time.perf_counter()
s = SparkSession.builder.master(sys.argv[1]).config("spark.ui.enabled", "false").getOrCreate()
s.sparkContext.parallelize([1], 1).count()
s.stop()
print(time.perf_counter() - t)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    # Local mode runs the executors inside the driver's JVM: give it room.
    env.setdefault("PYSPARK_SUBMIT_ARGS", "--driver-memory 4g pyspark-shell")
    return env


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=_env(), capture_output=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
    return took


def _size(data: str) -> int:
    return sum(p.stat().st_size for p in Path(data).rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="a folder of logs")
    parser.add_argument("--partitions", type=int, default=0, help="trace partitions (0: by size)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args()
    stitch = [sys.executable, "-m", "logtrace", "stitch", "--format", "jsonl", "-q"]
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        local = os.path.join(tmp, "local.jsonl")
        for jobs in (1, 2):
            out = local if jobs == 2 else os.path.join(tmp, "local1.jsonl")
            results[f"local --jobs {jobs}"] = _timed(
                [*stitch, "--jobs", str(jobs), "-o", out, args.data]
            )
        for cores in (1, 2):
            master = f"local[{cores}]"
            session = subprocess.run(
                [sys.executable, "-c", SESSION_ONLY, master],
                env=_env(),
                capture_output=True,
                check=True,
            )
            results[f"spark {master}: session alone"] = float(session.stdout.decode().split()[-1])
            out = os.path.join(tmp, f"spark{cores}.jsonl")
            argv = [*stitch, "--engine", "spark", "--master", master, "-o", out, args.data]
            results[f"spark {master}"] = _timed(argv)
            if not filecmp.cmp(out, local, shallow=False):
                sys.exit(f"spark {master}: the output differs from the local engine's")
            os.unlink(out)
    size = _size(args.data)
    print(f"input: {args.data}, {size / 1e6:.0f} MB on disk; {os.cpu_count()} cores")
    for name, took in results.items():
        rate = "" if "session" in name else f"  {size / 1e6 / took:6.1f} MB/s"
        print(f"{name:32} {took:8.1f} s{rate}")
    one, two = results["spark local[1]"], results["spark local[2]"]
    print(f"spark scaling, one core to two: {one / two:.2f}x (ideal 2x); outputs identical")
    if args.json:
        Path(args.json).write_text(json.dumps({"bytes": size, "seconds": results}, indent=2))


if __name__ == "__main__":
    main()
