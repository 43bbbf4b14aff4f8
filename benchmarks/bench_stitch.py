"""Stitch and grep speed on about 500 MB of logs from 6 services.

Compares, on the same generated files (some rotated and gzipped):

- ``logtrace stitch --format jsonl DIR -o /dev/null`` against GNU sort grouping
  the same lines by trace ID, then timestamp::

      zcat -f FILES | LC_ALL=C sort -t '"' -k24,24 -k4,4 > /dev/null

  (in logtrace's JSON lines, splitting on ``"`` puts the timestamp in field 4
  and the trace ID in field 24; other lines sort by whatever sits there);
- ``logtrace grep ID DIR`` against ``zcat -f FILES | LC_ALL=C grep -F ID``.

Variants run interleaved in a fresh random order each round; wall time (median)
and peak resident memory (the sum over the process tree, sampled every 20 ms,
so every stage of a pipeline counts) are reported, with ratios to the baseline.

    python benchmarks/bench_stitch.py [--size-mb 500] [--rounds 5] [--write-docs]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from _common import write_docs_block  # noqa: E402

from logtrace.testing import SynthConfig, generate  # noqa: E402

DATA = REPO_ROOT / "benchmarks" / "data" / "bench"
DOCS = REPO_ROOT / "docs" / "performance.md"
SECTION = "## Stitcher"


def write_block(key: str, body: str, path: Path = DOCS) -> None:
    """Replace (or add) the ``<!-- stitch:key -->`` block in the Stitcher section."""
    write_docs_block(key, body, path, section=SECTION, tag="stitch")


def ensure_data(size_mb: float, seed: int) -> tuple[list[str], dict[str, object]]:
    """The benchmark logs, generated once and reused while the size matches."""
    stamp = DATA / "params.json"
    want = {"size_mb": size_mb, "seed": seed}
    if not (stamp.exists() and json.loads(stamp.read_text()) == want):
        if DATA.exists():
            shutil.rmtree(DATA)
        free = shutil.disk_usage(DATA.parent if DATA.parent.exists() else REPO_ROOT).free
        if free < size_mb * 3e6:
            sys.exit(f"not enough disk space for {size_mb} MB of logs (free {free / 1e9:.1f} GB)")
        t0 = time.perf_counter()
        generate(str(DATA), SynthConfig(target_bytes=int(size_mb * 1e6), seed=seed))
        print(f"generated in {time.perf_counter() - t0:.1f} s", flush=True)
        stamp.write_text(json.dumps(want))
    head = json.loads((DATA / "truth.jsonl").open(encoding="utf-8").readline())
    files = [str(DATA / "logs" / f) for f in head["files"]]
    return files, head


def pick_trace_id(files: list[str], seed: int) -> str:
    """A trace ID from the middle of the busiest file."""
    plain = max((f for f in files if not f.endswith(".gz")), key=os.path.getsize)
    with open(plain, "rb") as fh:
        fh.seek(os.path.getsize(plain) // 2)
        fh.readline()
        for raw in fh:
            m = re.search(rb'"trace_id": "([0-9a-f]{32})"', raw)
            if m:
                return m.group(1).decode()
    raise SystemExit("no trace ID found")


def _tree_memory_kb(root: int) -> tuple[int, int]:
    """Resident and anonymous memory (kB) of ``root`` and all its descendants.

    Anonymous memory is what a memory budget can bound: resident memory also
    counts pages of mapped files (the input read back by offset, spooled
    rows), which the kernel drops under pressure instead of swapping.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    rss = anon = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status", "rb") as fh:
                for line in fh:
                    if line.startswith(b"VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith(b"RssAnon:"):
                        anon += int(line.split()[1])
        except OSError:
            pass
        todo.extend(children.get(pid, ()))
    return rss, anon


def timed(cmd: str, timeout: float) -> tuple[float, int, int, int]:
    """(wall seconds, peak resident and peak anonymous MB of the whole
    process tree, exit status).

    The tree is sampled every 20 ms, so a pipeline counts all its stages.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        ["bash", "-c", cmd],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    peak = peak_anon = 0
    while proc.poll() is None:
        rss, anon = _tree_memory_kb(proc.pid)
        peak, peak_anon = max(peak, rss), max(peak_anon, anon)
        if time.perf_counter() - t0 > timeout:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this call started
            proc.wait()
            sys.stderr.write(f"{cmd[:80]}... timed out after {timeout:.0f} s\n")
            break
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    err = proc.stderr.read() if proc.stderr else b""
    code = proc.returncode
    if code not in (0, 1):
        sys.stderr.write(f"{cmd[:80]}... exited {code}: {err.decode(errors='replace')[-300:]}\n")
    return wall, peak // 1024, peak_anon // 1024, code


def stitch_available() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "logtrace", "stitch", "--help"],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def native_state() -> str:
    """Which C extensions the measured interpreter loads."""
    code = (
        "import importlib.util as u; "
        "print(' '.join(m for m in ('_native_scan', '_native_write') "
        "if u.find_spec('logtrace.stitch.' + m)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=False
    )
    return out.stdout.strip() or "none"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=500.0)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per command")
    ap.add_argument(
        "--no-pure",
        dest="pure",
        action="store_false",
        help="skip the stitch run without the C extensions",
    )
    args = ap.parse_args(argv)

    files, _ = ensure_data(args.size_mb, args.seed)
    size = sum(os.path.getsize(f) for f in files)
    quoted = " ".join(shlex.quote(f) for f in files)
    trace_id = pick_trace_id(files, args.seed)
    py = shlex.quote(sys.executable)
    data = shlex.quote(str(DATA / "logs"))
    variants = {
        "sort": f"zcat -f {quoted} | LC_ALL=C sort -t '\"' -k24,24 -k4,4 > /dev/null",
        "grep -F": f"zcat -f {quoted} | LC_ALL=C grep -F {trace_id} > /dev/null",
    }
    have_stitch = stitch_available()
    if have_stitch:
        variants["stitch"] = f"{py} -m logtrace stitch --format jsonl -o /dev/null {data}"
        variants["logtrace grep"] = f"{py} -m logtrace grep {trace_id} {data} > /dev/null"
        variants["stitch --memory 128M"] = (
            f"{py} -m logtrace stitch --memory 128M --format jsonl -o /dev/null {data}"
        )
        if args.pure:
            variants["stitch, pure Python"] = f"LOGTRACE_PURE_PYTHON=1 {variants['stitch']}"
    else:
        print("logtrace stitch is not available: measuring the baselines only", flush=True)
    count = subprocess.run(
        f"zcat -f {quoted} | wc -lc", shell=True, capture_output=True, check=True
    )
    lines, plain = (int(x) for x in count.stdout.split()[:2])

    walls: dict[str, list[float]] = {k: [] for k in variants}
    rsss: dict[str, list[int]] = {k: [] for k in variants}
    anons: dict[str, list[int]] = {k: [] for k in variants}
    rng = random.Random(args.seed)
    names = list(variants)
    for r in range(args.rounds):
        rng.shuffle(names)
        for name in names:
            wall, rss, anon, _ = timed(variants[name], args.timeout)
            walls[name].append(wall)
            rsss[name].append(rss)
            anons[name].append(anon)
            print(
                f"round {r + 1}: {name:<20} {wall:7.2f} s {rss:6d} MB {anon:6d} MB anon", flush=True
            )

    med = {k: statistics.median(v) for k, v in walls.items()}
    peak = {k: max(v) for k, v in rsss.items()}
    peak_anon = {k: max(v) for k, v in anons.items()}
    rows = [
        "| command | median wall | peak RSS | peak anonymous | vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    pairs = [
        ("sort", None),
        ("stitch", "sort"),
        ("stitch --memory 128M", "sort"),
        ("stitch, pure Python", "sort"),
        ("grep -F", None),
        ("logtrace grep", "grep -F"),
    ]
    for name, base in pairs:
        if name not in med:
            continue
        ratio = f"{med[name] / med[base]:.2f}x" if base else "baseline"
        rows.append(
            f"| `{name}` | {med[name]:.2f} s | {peak[name]} MB | {peak_anon[name]} MB | {ratio} |"
        )
    table = "\n".join(rows)
    print(table)
    body = (
        f"{table}\n\n{plain / 1e6:.0f} MB of logs ({size / 1e6:.0f} MB on disk) in "
        f"{len(files)} files (6 services, some rotated and gzipped), {lines} lines; "
        f"{args.rounds} interleaved rounds, medians; peak RSS and peak anonymous memory are the "
        f"largest sums over the process tree (anonymous: what a budget can bound; RSS also "
        f"counts mapped pages of the input and spool files, which the kernel can drop). "
        f"`stitch` uses the C extensions (`{native_state()}`); "
        f"`stitch --memory 128M` runs in trace partitions to stay within that budget; "
        f"`stitch, pure Python` is the same command as `stitch` with `LOGTRACE_PURE_PYTHON=1`. "
        f"Baselines:\n\n"
        f"    zcat -f FILES | LC_ALL=C sort -t '\"' -k24,24 -k4,4 > /dev/null\n"
        f"    zcat -f FILES | LC_ALL=C grep -F TRACE_ID > /dev/null\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end), Python {sys.version.split()[0]}."
    )
    if args.write_docs:
        write_block("speed", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
