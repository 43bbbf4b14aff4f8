"""Write realistic multi-service logs with known true order (see logtrace.testing).

    python benchmarks/gen_logs.py OUT_DIR [--size-mb 500] [--skew-ms 25] [--seed 1] ...

Writes one log per service (older parts of some rotated and gzipped) into
``OUT_DIR/logs`` and ``OUT_DIR/truth.jsonl``: a header line with the files and
the true clock offsets, then one line per trace with its records'
``[file index, line]`` in true order.

With ``--shape NAME`` the records are then rewritten as another logging setup
writes them: the same content (IDs, times, levels, messages, span fields)
under that convention's keys, key order and timestamp form; lines in other
formats, noise and corrupt lines stay as they are. ``mix`` gives each service
another shape. :func:`reshape_dir` does the same to logs already written.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import time
from calendar import timegm
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from logtrace.testing import SynthConfig, generate  # noqa: E402

Record = dict[str, Any]

_SPAN_KEYS = ("trace_id", "span_id", "parent_span_id")
_PINO_LEVELS = {"trace": 10, "debug": 20, "info": 30, "warning": 40, "warn": 40, "error": 50}


def _epoch(stamp: str) -> float:
    """``2026-03-01T10:00:00.022089Z`` as epoch seconds, to the microsecond."""
    whole = timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return round(whole + int(stamp[20:26]) / 1e6, 6)


def _rest(r: Record) -> Record:
    """The keys a shape does not rename (span fields, HTTP attributes...)."""
    skip = {"timestamp", "level", "service", "logger", "message", *_SPAN_KEYS}
    return {k: v for k, v in r.items() if k not in skip}


def _ids(r: Record) -> Record:
    return {k: r[k] for k in _SPAN_KEYS if k in r}


def _structlog(r: Record) -> Record:
    # JSONRenderer keeps insertion order: the event, bound keys, then the
    # level and timestamp processors' keys.
    return {
        "event": r["message"],
        **_ids(r),
        "service": r["service"],
        "logger": r["logger"],
        **_rest(r),
        "level": r["level"].lower(),
        "timestamp": r["timestamp"],
    }


def _json_logger(r: Record) -> Record:
    # python-json-logger with "%(asctime)s %(levelname)s %(name)s %(message)s".
    ts = r["timestamp"]
    return {
        "asctime": f"{ts[:10]} {ts[11:19]},{ts[20:23]}",
        "levelname": r["level"],
        "name": r["logger"],
        "message": r["message"],
        "service": r["service"],
        **_ids(r),
        **_rest(r),
    }


def _ecs(r: Record) -> Record:
    # ecs-logging: dotted log.level, nested objects for the rest.
    out: Record = {
        "@timestamp": r["timestamp"][:23] + "Z",
        "log.level": r["level"].lower(),
        "message": r["message"],
        "ecs.version": "1.6.0",
        "log": {"logger": r["logger"]},
        "service": {"name": r["service"]},
    }
    if r.get("trace_id") is not None:
        out["trace"] = {"id": r["trace_id"]}
    if r.get("span_id") is not None:
        out["span"] = {"id": r["span_id"]}
    if r.get("parent_span_id") is not None:
        out["parent.id"] = r["parent_span_id"]
    out.update(_rest(r))
    return out


def _zap(r: Record) -> Record:
    # zap's production encoder: epoch seconds as a float, "msg".
    return {
        "level": r["level"].lower(),
        "ts": _epoch(r["timestamp"]),
        "logger": r["logger"],
        "msg": r["message"],
        "service": r["service"],
        **_ids(r),
        **_rest(r),
    }


def _pino(r: Record) -> Record:
    # pino: numeric levels, epoch milliseconds.
    return {
        "level": _PINO_LEVELS.get(r["level"].lower(), 30),
        "time": round(_epoch(r["timestamp"]) * 1000),
        "pid": 4242,
        "hostname": "node-1",
        "service": r["service"],
        **_ids(r),
        "msg": r["message"],
        **_rest(r),
    }


_OTEL_LEVELS = {"warn": "WARNING", "fatal": "CRITICAL"}


def _otel_text(r: Record) -> str:
    # OpenTelemetry's LoggingInstrumentor(set_logging_format=True): text,
    # asctime to the millisecond, the IDs and the service in brackets, no
    # parent span; "0" outside a span.
    ts = r["timestamp"]
    level = r["level"].lower()
    return (
        f"{ts[:10]} {ts[11:19]},{ts[20:23]} {_OTEL_LEVELS.get(level, level.upper())} "
        f"[{r['logger']}] [app.py:42] [trace_id={r.get('trace_id') or 0} "
        f"span_id={r.get('span_id') or 0} resource.service.name={r['service']} "
        f"trace_sampled=True] - {r['message']}"
    )


SHAPES: dict[str, Callable[[Record], Record | str] | None] = {
    "logtrace": None,
    "structlog": _structlog,
    "python-json-logger": _json_logger,
    "ecs": _ecs,
    "zap": _zap,
    "pino": _pino,
    "opentelemetry-text": _otel_text,
}
"""Logging conventions logtrace's records can be rewritten into (``None``:
as logtrace writes them; a string: a text line, which carries no span
fields)."""
TEXT_SHAPES = ("opentelemetry-text",)
"""The shapes whose lines are text, not JSON."""

MIX = ("logtrace", "structlog", "python-json-logger", "ecs", "zap", "pino")
"""The shape of each service in ``mix``, services taken in name order."""


def reshape_line(line: bytes, shape: Callable[[Record], Record | str] | None) -> bytes:
    """One line in ``shape``; lines that are not logtrace's records unchanged."""
    if shape is None or not line.startswith(b'{"timestamp": '):
        return line
    try:
        r = json.loads(line)
    except ValueError:
        return line
    if not isinstance(r, dict) or not {"level", "service", "logger", "message"} <= r.keys():
        return line
    out = shape(r)
    return (out if isinstance(out, str) else json.dumps(out)).encode() + b"\n"


def reshape_dir(src: Path, dst: Path, shape: str) -> None:
    """The log files of ``src`` rewritten into ``dst`` in ``shape`` (or
    ``mix``), gzipped ones gzipped again."""
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.iterdir() if p.is_file())
    services = sorted({p.name.split(".")[0] for p in files})
    for path in files:
        name = shape
        if shape == "mix":
            name = MIX[services.index(path.name.split(".")[0]) % len(MIX)]
        fn = SHAPES[name]
        opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fin, opener(dst / path.name, "wb") as fout:
            fout.writelines(reshape_line(line, fn) for line in fin)


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
    ap.add_argument(
        "--shape", choices=[*SHAPES, "mix"], default="logtrace", help="logging convention"
    )
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
    if args.shape != "logtrace":
        logs = out / "logs"
        logs.rename(out / "logs.logtrace")
        reshape_dir(out / "logs.logtrace", logs, args.shape)
        shutil.rmtree(out / "logs.logtrace")
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
