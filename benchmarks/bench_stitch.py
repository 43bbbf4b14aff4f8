"""Stitch and grep speed on about 500 MB of logs from 6 services, in several shapes.

Compares, on the same generated files (some rotated and gzipped), rewritten
into each logging convention of ``gen_logs.SHAPES`` (the same records under
other key names, key orders and timestamp forms) and into a mix of them (one
shape per service):

- ``logtrace stitch --format jsonl DIR -o /dev/null``, with the C extensions
  and without (``LOGTRACE_PURE_PYTHON=1``), against GNU sort grouping the same
  lines by trace ID, then timestamp::

      zcat -f FILES | LC_ALL=C sort -t '"' -kT,T -kS,S > /dev/null

  (T and S are the ``"``-separated fields that hold the trace ID and the
  timestamp in that shape's lines; other lines sort by whatever sits there;
  the mix uses logtrace's own positions), and against DuckDB reading the same
  JSON lines and writing them ordered by trace ID and time;
- ``logtrace stitch --memory 128M`` on logtrace's own shape;
- ``logtrace grep ID DIR`` against ``zcat -f FILES | LC_ALL=C grep -a -F ID``, both
  writing into a pipe.

Variants run interleaved in a fresh random order each round; wall time (median)
and peak resident memory (the sum over the process tree, sampled every 20 ms,
so every stage of a pipeline counts) are reported, with ratios to the baseline.

    python benchmarks/bench_stitch.py [--size-mb 500] [--rounds 3] [--shapes a,b] [--write-docs]
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
from gen_logs import SHAPES, TEXT_SHAPES, reshape_dir  # noqa: E402

from logtrace.testing import SynthConfig, generate  # noqa: E402

DATA = REPO_ROOT / "benchmarks" / "data" / "bench"
DOCS = REPO_ROOT / "docs" / "performance.md"
SECTION = "## Stitcher"
SINK = "| cat > /dev/null"
"""Where the grep commands write: a pipe, so that each prints every matching line."""


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
        if free < size_mb * 10e6:  # the logs and their rewritten shapes
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


SHAPE_NAMES = [*SHAPES, "mix"]

_TIME_KEYS = ("timestamp", "@timestamp", "asctime", "ts", "time")

DUCKDB_ORDER = {
    "logtrace": 'trace_id, "timestamp"',
    "structlog": 'trace_id, "timestamp"',
    "python-json-logger": "trace_id, asctime",
    "ecs": '"trace"."id", "@timestamp"',
    "zap": "trace_id, ts",
    "pino": 'trace_id, "time"',
    "mix": (
        'coalesce(trace_id, "trace"."id"), coalesce(CAST("timestamp" AS VARCHAR), '
        'CAST("@timestamp" AS VARCHAR), asctime, CAST(ts AS VARCHAR), CAST("time" AS VARCHAR))'
    ),
}
"""What DuckDB orders each shape's records by: trace ID, then time."""


def shape_logs(base: Path, shape: str) -> Path:
    """The benchmark logs rewritten in ``shape`` (once, reused while the base
    logs are unchanged)."""
    if shape == "logtrace":
        return base
    out = DATA / "shapes" / shape
    stamp = out.parent / f"{shape}.json"
    want = {"base": str(base), "mtime": max(p.stat().st_mtime for p in base.iterdir())}
    if not (stamp.exists() and json.loads(stamp.read_text()) == want):
        if out.exists():
            shutil.rmtree(out)
        t0 = time.perf_counter()
        reshape_dir(base, out, shape)
        print(f"{shape}: rewritten in {time.perf_counter() - t0:.1f} s", flush=True)
        stamp.write_text(json.dumps(want))
    return out


TEXT_SORT = "-t ' ' -k6,6 -k1,2"
"""``sort``'s keys for OpenTelemetry's text lines: ``[trace_id=...``, then
the date and time."""
TEXT_DUCKDB = (
    "COPY (SELECT * FROM read_csv('{logs}/*', delim='\x01', quote='', escape='', "
    "header=false, columns={{'line': 'VARCHAR'}}, ignore_errors=true) "
    "ORDER BY regexp_extract(line, 'trace_id=([0-9a-f]+)', 1), left(line, 23)) "
    "TO '/dev/null' (FORMAT csv)"
)
"""DuckDB's query for text lines: each line one column, ordered by the trace
ID a regular expression finds in it, then by the time that starts it."""


def sort_keys(logs: Path, shape: str) -> str:
    """``sort``'s separator and keys: trace ID, then time."""
    if shape in TEXT_SHAPES:
        return TEXT_SORT
    t, k = sort_fields(logs, shape)
    return f"-t '\"' -k{t},{t} -k{k},{k}"


def sort_fields(logs: Path, shape: str) -> tuple[int, int]:
    """The ``"``-separated fields (1-based) of the trace ID and the timestamp
    in a record of ``shape`` (logtrace's own for the mix)."""
    if shape == "mix":
        return 24, 4
    plain = max((p for p in logs.iterdir() if p.suffix != ".gz"), key=lambda p: p.stat().st_size)
    with plain.open("rb") as fh:
        for raw in fh:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(rec, dict):
                continue
            trace = rec.get("trace_id") or (rec.get("trace") or {}).get("id")
            stamp = next((rec[k] for k in _TIME_KEYS if k in rec), None)
            if not trace or stamp is None:
                continue
            fields = raw.decode().split('"')
            t = fields.index(trace) + 1
            s = next(i for i, f in enumerate(fields) if str(stamp) in f) + 1
            return t, s
    raise SystemExit(f"no record in {plain}")


def stitch_available() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "logtrace", "stitch", "--help"],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def compile_package() -> None:
    """Byte-compile logtrace as installing it from a wheel does: an editable
    install run with ``PYTHONDONTWRITEBYTECODE`` would otherwise compile every
    module on every start, which ``grep`` (tens of milliseconds) would pay."""
    import compileall

    compileall.compile_dir(str(REPO_ROOT / "logtrace"), quiet=1)


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
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--write-docs", action="store_true")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per command")
    ap.add_argument(
        "--shapes",
        default=",".join(SHAPE_NAMES),
        help="comma-separated, of " + ", ".join(SHAPE_NAMES),
    )
    ap.add_argument(
        "--no-pure",
        dest="pure",
        action="store_false",
        help="skip the stitch runs without the C extensions",
    )
    args = ap.parse_args(argv)
    shapes = [s for s in args.shapes.split(",") if s]
    if unknown := set(shapes) - set(SHAPE_NAMES):
        ap.error(f"unknown shapes: {sorted(unknown)}")

    files, _ = ensure_data(args.size_mb, args.seed)
    base = Path(files[0]).parent
    size = sum(os.path.getsize(f) for f in files)
    quoted = " ".join(shlex.quote(f) for f in files)
    trace_id = pick_trace_id(files, args.seed)
    py = shlex.quote(sys.executable)
    data = shlex.quote(str(base))
    have_stitch = stitch_available()
    compile_package()
    try:
        import duckdb  # noqa: F401

        have_duckdb = True
    except ImportError:
        have_duckdb = False
        print("duckdb is not installed: no DuckDB rows", flush=True)
    plain_files = " ".join(shlex.quote(f) for f in files if not f.endswith(".gz"))
    variants: dict[str, str] = {
        "grep -F": f"zcat -f {quoted} | LC_ALL=C grep -a -F {trace_id} {SINK}",
        "grep -F, uncompressed files": f"LC_ALL=C grep -a -F {trace_id} {plain_files} {SINK}",
    }
    for shape in shapes:
        logs = shape_logs(base, shape)
        names = " ".join(shlex.quote(str(logs / Path(f).name)) for f in files)
        variants[f"{shape}: sort"] = (
            f"zcat -f {names} | LC_ALL=C sort {sort_keys(logs, shape)} > /dev/null"
        )
        if have_duckdb:
            sql = (
                TEXT_DUCKDB.format(logs=logs)
                if shape in TEXT_SHAPES
                else f"COPY (SELECT * FROM read_json('{logs}/*', format='newline_delimited', "
                f"ignore_errors=true, union_by_name=true) ORDER BY {DUCKDB_ORDER[shape]}) "
                f"TO '/dev/null' (FORMAT json)"
            )
            variants[f"{shape}: duckdb"] = (
                f"{py} -c 'import duckdb, sys; duckdb.sql(sys.argv[1])' {shlex.quote(sql)}"
            )
        if have_stitch:
            stitch = f"{py} -m logtrace stitch --format jsonl -o /dev/null {shlex.quote(str(logs))}"
            variants[f"{shape}: stitch"] = stitch
            if args.pure:
                variants[f"{shape}: pure"] = f"LOGTRACE_PURE_PYTHON=1 {stitch}"
    if have_stitch:
        variants["logtrace grep"] = f"{py} -m logtrace grep {trace_id} {data} {SINK}"
        variants["logtrace grep, uncompressed files"] = (
            f"{py} -m logtrace grep {trace_id} {plain_files} {SINK}"
        )
        variants["stitch --memory 128M"] = (
            f"{py} -m logtrace stitch --memory 128M --format jsonl -o /dev/null {data}"
        )
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
    run_order = list(variants)
    for r in range(args.rounds):
        rng.shuffle(run_order)
        for name in run_order:
            wall, rss, anon, _ = timed(variants[name], args.timeout)
            walls[name].append(wall)
            rsss[name].append(rss)
            anons[name].append(anon)
            print(
                f"round {r + 1}: {name:<28} {wall:7.2f} s {rss:6d} MB {anon:6d} MB anon",
                flush=True,
            )

    med = {k: statistics.median(v) for k, v in walls.items()}
    peak_anon = {k: max(v) for k, v in anons.items()}

    def cell(name: str, base: str | None = None) -> str:
        if name not in med:
            return "-"
        if base is None:
            return f"{med[name]:.2f} s"
        return f"{med[name]:.2f} s ({med[name] / med[base]:.2f}x)"

    rows = [
        "| shape | sort | stitch (vs sort) | pure Python (vs sort) | DuckDB (vs sort) "
        "| stitch peak anonymous |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for shape in shapes:
        b = f"{shape}: sort"
        rows.append(
            f"| {shape} | {cell(b)} | {cell(shape + ': stitch', b)} | "
            f"{cell(shape + ': pure', b)} | {cell(shape + ': duckdb', b)} | "
            f"{peak_anon.get(shape + ': stitch', '-')} MB |"
        )
    rows += [
        "",
        "| command | median wall | peak anonymous | vs baseline |",
        "|---|---:|---:|---:|",
    ]
    for name, base_name in (
        ("logtrace: sort", None),
        ("stitch --memory 128M", "logtrace: sort"),
        ("grep -F", None),
        ("logtrace grep", "grep -F"),
        ("grep -F, uncompressed files", None),
        ("logtrace grep, uncompressed files", "grep -F, uncompressed files"),
    ):
        if name in med and (base_name is None or base_name in med):
            ratio = f"{med[name] / med[base_name]:.2f}x" if base_name else "baseline"
            rows.append(f"| `{name}` | {med[name]:.2f} s | {peak_anon[name]} MB | {ratio} |")
    table = "\n".join(rows)
    print(table)
    body = (
        f"{table}\n\n{plain / 1e6:.0f} MB of logs ({size / 1e6:.0f} MB on disk) in "
        f"{len(files)} files (6 services, some rotated and gzipped), {lines} lines, per shape; "
        f"{args.rounds} interleaved rounds, medians; peak anonymous memory is the largest sum "
        f"over the process tree (what a budget can bound). `stitch` uses the C extensions "
        f"(`{native_state()}`); pure Python is the same command with "
        f"`LOGTRACE_PURE_PYTHON=1`; `stitch --memory 128M` runs in trace partitions "
        f"(logtrace's shape). Baselines:\n\n"
        f"    zcat -f FILES | LC_ALL=C sort -t '\"' -kT,T -kS,S > /dev/null\n"
        f"    duckdb: COPY (SELECT * FROM read_json('DIR/*', format='newline_delimited',\n"
        f"            ignore_errors=true, union_by_name=true) ORDER BY TRACE, TIME)\n"
        f"            TO '/dev/null' (FORMAT json)\n\n"
        f"and for OpenTelemetry's text lines (`opentelemetry-text`, no parent span IDs: "
        f"the stitch infers the calls):\n\n"
        f"    zcat -f FILES | LC_ALL=C sort {TEXT_SORT} > /dev/null\n"
        f"    duckdb: {TEXT_DUCKDB.format(logs='DIR')}\n"
        f"    zcat -f FILES | LC_ALL=C grep -a -F TRACE_ID | cat > /dev/null\n"
        f"    LC_ALL=C grep -a -F TRACE_ID UNCOMPRESSED_FILES | cat > /dev/null\n\n"
        f"`logtrace grep` writes into the same pipe. Both print every matching line: "
        f"written straight to /dev/null, GNU grep stops reading each file at its first "
        f"match, and without `-a` it prints no line of a file that holds a NUL byte "
        f"(a few generated corrupt lines do), only that the file matches.\n\n"
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} CPUs shared with other jobs (load average "
        f"{os.getloadavg()[0]:.1f} at the end), Python {sys.version.split()[0]}."
    )
    if args.write_docs:
        write_block("speed", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
