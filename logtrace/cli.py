"""The ``logtrace`` command: ``stitch`` and ``grep``.

Importing this module costs argparse only; the stitcher (numpy, msgspec)
loads when a command runs. Exit codes: 0 success, 1 nothing matched (grep)
or bad lines under ``--strict``, 2 usage or I/O error, with a one-line
message naming the file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

__all__ = ["main", "parse_size"]

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``512M``, ``2G``, ``1500000`` -> bytes (``--memory``)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    unit = value[-1:] if value[-1:] in _UNITS else ""
    number = value[: len(value) - len(unit)]
    try:
        size = int(float(number) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 512M or 2G)") from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return size


def _time(text: str) -> float:
    from logtrace.stitch import parse_timestamp

    value = parse_timestamp(text)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (try 2026-11-24T10:00:00Z or epoch seconds)"
        )
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("--jobs must be 0 (all cores) or more")
    return value or (os.cpu_count() or 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logtrace", description="Correlate logs across services.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser(
        "stitch",
        help="per-service log files in, one ordered story per trace out",
        description="Read log files (directories, globs, gzip/bzip2/xz, - for stdin) and "
        "print every trace as one ordered narrative across services, clock skew corrected.",
    )
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--trace", action="append", default=[], metavar="ID", help="only this trace")
    s.add_argument("--errors", action="store_true", help="only traces with an error")
    s.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME",
        help="only traces that touch this service",
    )
    s.add_argument("--since", type=_time, metavar="TIME", help="only traces starting at or after")
    s.add_argument("--until", type=_time, metavar="TIME", help="only traces starting at or before")
    s.add_argument("--format", choices=("text", "jsonl", "html", "chrome"), default="text")
    s.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    s.add_argument(
        "--no-skew-correction", action="store_true", help="keep every service's raw clock"
    )
    s.add_argument(
        "--jobs",
        type=_jobs,
        default=os.cpu_count() or 1,
        metavar="N",
        help="worker processes (default: all cores; 0 means all)",
    )
    s.add_argument(
        "--memory",
        type=parse_size,
        default=parse_size("512M"),
        metavar="SIZE",
        help="memory budget, e.g. 512M or 2G (default 512M); beyond it, work spills to disk",
    )
    s.add_argument("--tmp-dir", metavar="DIR", help="where spill and spool files go")
    s.add_argument("--strict", action="store_true", help="exit 1 if any line could not be read")
    s.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr")

    g = sub.add_parser(
        "grep",
        add_help=False,
        help="every line holding an ID, raw, in stitched order",
        description="Print every line that contains ID (a trace, span or request ID), "
        "raw, in the order stitch would put them.",
    )
    g.add_argument("id", metavar="ID")
    g.add_argument("paths", nargs="+", metavar="PATH")
    names = g.add_mutually_exclusive_group()
    names.add_argument("-H", "--with-filename", action="store_true", default=None)
    names.add_argument("-h", "--no-filename", action="store_true")
    g.add_argument("-n", "--line-number", action="store_true")
    g.add_argument("--help", action="help", help="show this help message and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    try:
        if args.command == "grep":
            return _grep(args)
        return _stitch(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except _Fail as exc:
        print(f"logtrace: {exc}", file=sys.stderr)
        return 2


class _Fail(Exception):
    pass


def _quiet_stdout() -> None:
    # The reader went away (| head): drop what is still buffered, quietly.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _open_output(path: str | None) -> tuple[IO[bytes], bool]:
    if path is None or path == "-":
        return sys.stdout.buffer, sys.stdout.isatty()
    try:
        return open(path, "wb"), False
    except OSError as exc:
        raise _Fail(f"{path}: {exc.strerror or exc}") from None


def _progress() -> Any:
    if not sys.stderr.isatty():
        return None

    def show(stage: str, fraction: float) -> None:
        filled = int(fraction * 30)
        sys.stderr.write(f"\r{stage:8} [{'#' * filled}{'.' * (30 - filled)}] {fraction:4.0%}")
        if stage == "writing":
            sys.stderr.write("\r" + " " * 50 + "\r")
        sys.stderr.flush()

    return show


def _quiet_blas() -> None:
    """The stitcher does no linear algebra; without this, numpy's BLAS starts
    a thread per core at import, in the parent and again in every worker."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def _stitch(args: argparse.Namespace) -> int:
    _quiet_blas()
    from logtrace.stitch import InputError, Options, stitch

    out, tty = _open_output(args.output)
    options = Options(
        traces=args.trace,
        errors_only=args.errors,
        services=args.service,
        since=args.since,
        until=args.until,
        format=args.format,
        skew_correction=not args.no_skew_correction,
        jobs=args.jobs,
        memory=args.memory,
        color=tty and args.format == "text" and not os.environ.get("NO_COLOR"),
        tmp_dir=args.tmp_dir,
    )
    try:
        summary = stitch(args.paths, out, options, _progress())
    except InputError as exc:
        raise _Fail(str(exc)) from None
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise _Fail(f"{exc.filename or args.output or 'output'}: {exc.strerror or exc}") from None
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    if not args.quiet:
        for warning in summary.warnings:
            print(f"logtrace: warning: {warning}", file=sys.stderr)
        shown = (
            f" ({summary.written_traces} written)"
            if summary.written_traces != summary.traces
            else ""
        )
        print(
            f"logtrace: {summary.files} files, {summary.records} records, "
            f"{summary.traces} traces{shown}, {summary.unattributed} unattributed, "
            f"{summary.unparseable} unparseable",
            file=sys.stderr,
        )
        if not options.skew_correction:
            print("logtrace: clock skew correction off (raw timestamps)", file=sys.stderr)
        elif summary.offsets_ms:
            label = "clock offsets"
            offsets = ", ".join(
                f"{name} {ms:+.3f} ms"
                + (f" ({summary.drift_ppm[name]:+.1f} ppm)" if summary.drift_ppm.get(name) else "")
                for name, ms in summary.offsets_ms.items()
            )
            print(f"logtrace: {label}: {offsets}", file=sys.stderr)
    if args.strict and summary.unparseable:
        return 1
    return 0


def _grep(args: argparse.Namespace) -> int:
    import tempfile

    _quiet_blas()
    from logtrace.stitch import InputError, expand_paths, grep

    if not args.id.strip():
        raise _Fail("grep: the ID is empty")
    spool = tempfile.mkdtemp(prefix="logtrace-")
    warnings: list[str] = []
    try:
        sources = expand_paths(args.paths, spool)
        matches = grep([args.id], sources, warnings, numbers=args.line_number)
    except InputError as exc:
        raise _Fail(str(exc)) from None
    finally:
        import shutil

        shutil.rmtree(spool, ignore_errors=True)
    show_name = args.with_filename or (not args.no_filename and len(sources) > 1)
    out = sys.stdout.buffer
    names = [s.name.encode(errors="surrogateescape") for s in sources]
    chunk = []
    for m in matches:
        prefix = b""
        if show_name:
            prefix = names[m.file] + b":"
        if args.line_number:
            prefix += b"%d:" % m.line
        chunk.append(prefix + m.raw + b"\n")
    out.write(b"".join(chunk))
    out.flush()
    for warning in warnings:
        print(f"logtrace: warning: {warning}", file=sys.stderr)
    return 0 if matches else 1
