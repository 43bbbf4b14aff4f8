"""Write realistic multi-service logs with known true order (see logtrace.testing).

    python benchmarks/gen_logs.py OUT_DIR [--size-mb 500] [--skew-ms 25] [--seed 1] ...

Writes one log per service (older parts of some rotated and gzipped) into
``OUT_DIR/logs`` and ``OUT_DIR/truth.jsonl``: a header line with the files and
the true clock offsets, then one line per trace with its records'
``[file index, line]`` in true order.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from logtrace.testing import SynthConfig, generate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="directory to write (emptied first)")
    ap.add_argument("--size-mb", type=float, default=500.0, help="approximate volume")
    ap.add_argument("--traces", type=int, help="number of traces instead of a volume")
    ap.add_argument("--services", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skew-ms", type=float, default=25.0, help="clock offsets up to +-this")
    ap.add_argument("--drift-ppm", type=float, default=0.0, help="clock drift up to +-this")
    ap.add_argument("--no-client-spans", action="store_true", help="omit client span records")
    ap.add_argument("--foreign-rate", type=float, default=0.02)
    ap.add_argument("--noise-rate", type=float, default=0.01)
    ap.add_argument("--corrupt-rate", type=float, default=0.0005)
    ap.add_argument("--parallel-rate", type=float, default=0.5)
    ap.add_argument("--rate", type=float, default=40.0, help="traces per second")
    ap.add_argument("--no-rotate", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    cfg = SynthConfig(
        services=args.services,
        traces=args.traces,
        target_bytes=int(args.size_mb * 1e6),
        seed=args.seed,
        skew_ms=args.skew_ms,
        drift_ppm=args.drift_ppm,
        client_spans=not args.no_client_spans,
        foreign_rate=args.foreign_rate,
        noise_rate=args.noise_rate,
        corrupt_rate=args.corrupt_rate,
        parallel_rate=args.parallel_rate,
        rate_per_s=args.rate,
        rotate=not args.no_rotate,
    )
    t0 = time.perf_counter()
    res = generate(str(out), cfg)
    took = time.perf_counter() - t0
    print(
        f"{res.bytes / 1e6:.0f} MB, {res.records} lines, {res.traces} traces, "
        f"{len(res.files)} files in {took:.1f} s -> {out}"
    )
    for name in res.services:
        print(
            f"  {name:<10} offset {res.offsets_s[name] * 1e3:+8.3f} ms"
            f"  drift {res.drifts[name] * 1e6:+6.2f} ppm"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
