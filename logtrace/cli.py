"""The ``logtrace`` command: ``stitch``, ``grep`` and ``demo``.

Importing this module costs argparse only; the stitcher (numpy, msgspec)
loads when a command runs. Exit codes (docs/cli.md): 0 success; 1 nothing
matched (grep), or bad lines under ``stitch --strict``; 2 usage error,
nothing readable, output not writable, an input skipped under ``--strict``,
or (grep, as grep does) an input skipped; 3 stitched, but inputs were
skipped. Every message names the file. Text that reaches a terminal from a
log (service names, file names, grep's lines) has its control characters
escaped.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from ._stitch_command import run_stitch, tune_numpy
from ._terminal import CommandError, visible, visible_line, warn

__all__ = ["main", "parse_size", "visible", "visible_line"]

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


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAY = 86400.0


def _time(text: str, day_end: bool = False) -> float:
    """ISO 8601 or epoch seconds; a date alone is that day (UTC): its start,
    or with ``day_end`` its last microsecond, so that ``--until`` keeps the day."""
    from logtrace.stitch import parse_timestamp

    date = _DATE.fullmatch(text.strip())
    value = parse_timestamp(text.strip() + "T00:00:00Z" if date else text)
    if value is None:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (try 2026-11-24, 2026-11-24T10:00:00Z or epoch seconds)"
        )
    return value + _DAY - 1e-6 if date and day_end else value


def _until(text: str) -> float:
    return _time(text, day_end=True)


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("--jobs must be 0 (all cores) or more")
    return value or (os.cpu_count() or 1)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pylogtrace")
    except PackageNotFoundError:
        from logtrace import __version__

        return __version__


class _Version(argparse.Action):
    """``--version``, reading the version only when asked."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> None:
        print(f"logtrace {_version()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logtrace", description="Correlate logs across services.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    s = sub.add_parser(
        "stitch",
        help="per-service log files in, one ordered story per trace out",
        description="Read log files (directories, globs, gzip/bzip2/xz, - for stdin) and "
        "print every trace as one ordered narrative across services, clock skew corrected. "
        "Options marked (repeatable) may be given more than once.",
        epilog="Exit status: 0 success; 1 --strict found unreadable lines; 2 usage error, "
        "nothing could be read, the output could not be written, or --strict and an input "
        "could not be read; 3 written, but some inputs could not be read (warnings name them).",
    )
    s.add_argument("paths", nargs="+", metavar="PATH", help="file, directory, glob or -")
    s.add_argument(
        "--trace",
        action="append",
        default=[],
        metavar="ID",
        help="only this trace (repeatable; default: every trace)",
    )
    s.add_argument("--errors", action="store_true", help="only traces with an error (default: off)")
    s.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="NAME",
        help="only traces that touch this service (repeatable; default: every service)",
    )
    s.add_argument(
        "--since",
        type=_time,
        metavar="TIME",
        help="only traces starting at or after TIME: ISO 8601, epoch seconds, or a date alone "
        "(its start, UTC) (default: no limit)",
    )
    s.add_argument(
        "--until",
        type=_until,
        metavar="TIME",
        help="only traces starting at or before TIME; a date alone keeps that whole day (UTC) "
        "(default: no limit)",
    )
    s.add_argument(
        "--format",
        choices=("text", "jsonl", "html", "chrome", "perfetto", "otlp", "jaeger", "zipkin"),
        default=None,
        help="output format: text, jsonl, html; for trace viewers chrome (= perfetto), "
        "otlp (OpenTelemetry JSON lines), jaeger (Jaeger UI upload), zipkin (Zipkin v2) "
        "(default: text; jsonl with --engine spark)",
    )
    s.add_argument(
        "--summary",
        action="store_true",
        help="print traces by outcome, latency per entry operation, the operations that fail "
        "most and where each failing trace's error started; alone, instead of the traces; "
        "with --format, the traces too (the summary then goes to standard error unless -o "
        "sends the traces to a file) (default: off)",
    )
    s.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")
    s.add_argument(
        "--no-skew-correction",
        action="store_true",
        help="keep every service's raw clock (default: corrected)",
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
        help="memory budget, e.g. 512M or 2G (default: 512M); beyond it, work spills to disk",
    )
    s.add_argument(
        "--tmp-dir",
        metavar="DIR",
        help="where spill and spool files go (default: the system's temporary directory)",
    )
    s.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 2, nothing written) if an input cannot be read, and exit 1 if any "
        "line could not be read (default: warn and go on)",
    )
    s.add_argument(
        "-q", "--quiet", action="store_true", help="no summary on stderr (default: summary)"
    )
    s.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="run here, or on Apache Spark (needs the spark extra; PATHs may then be "
        "hdfs:// or s3a:// URIs) (default: local)",
    )
    s.add_argument(
        "--master",
        metavar="URL",
        help="Spark master for --engine spark, e.g. local[4] or spark://host:7077 "
        "(default: spark-submit's, else local[*])",
    )
    s.add_argument(
        "--parts",
        metavar="DIR",
        help="--engine spark, jsonl: write part files to DIR (any path Spark writes) "
        "instead of one merged output",
    )

    g = sub.add_parser(
        "grep",
        help="every line holding an ID, raw, in stitched order",
        description="Print every line that contains ID (a trace, span or request ID), "
        "raw, in the order stitch would put them.",
        epilog="Exit status (as grep's): 0 a line matched; 1 nothing matched; 2 an error, "
        "such as an input that could not be read (the others are still searched).",
    )
    g.add_argument("id", metavar="ID")
    g.add_argument("paths", nargs="+", metavar="PATH")
    names = g.add_mutually_exclusive_group()
    names.add_argument(
        "-H",
        "--with-filename",
        action="store_true",
        default=None,
        help="prefix each line with its file name (default when more than one file)",
    )
    names.add_argument(
        "--no-filename",
        action="store_true",
        help="never prefix the file name (was -h before -h became --help)",
    )
    g.add_argument(
        "-n", "--line-number", action="store_true", help="prefix each line with its line number"
    )
    g.add_argument(
        "--no-skew-correction",
        action="store_true",
        help="order by the times as written, as stitch --no-skew-correction does "
        "(default: the stitch's clocks on inputs up to 32 MB, beyond them "
        "offsets estimated from the calls among the matches)",
    )

    d = sub.add_parser(
        "demo",
        help="run three services on 127.0.0.1, send requests, stitch their logs",
        description="Start three real services (gateway, orders, inventory) on free ports of "
        "127.0.0.1, send a few dozen requests (some fail deep in the chain, some are slow), "
        "then stitch the services' logs: the story of a failing trace, the outcomes, an HTML "
        "report and exports for trace viewers. Offline; stops every service it started. "
        'Needs the demo extra: pip install "pylogtrace[demo]".',
    )
    d.add_argument(
        "--dir",
        metavar="DIR",
        help="where the logs and reports go (default: a new temporary directory)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    since, until = (args.since, args.until) if args.command == "stitch" else (None, None)
    if since is not None and until is not None and since > until:
        print(
            f"logtrace stitch: error: --since ({_iso(args.since)}) is later than "
            f"--until ({_iso(args.until)}): no trace can start in that window",
            file=sys.stderr,
        )
        return 2
    try:
        if args.command == "grep":
            return _grep(args)
        if args.command == "demo":
            return _demo(args)
        return run_stitch(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except CommandError as exc:
        print(f"logtrace: {visible(str(exc))}", file=sys.stderr)
        return 2


_DEMO_EXTRA = ("fastapi", "uvicorn", "httpx", "pythonjsonlogger", "numpy", "msgspec")


def _demo(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in _DEMO_EXTRA if importlib.util.find_spec(m) is None]
    if missing:
        raise CommandError(
            f"demo: needs {', '.join(missing)}: "
            'install the demo extra: python -m pip install "pylogtrace[demo]"'
        )
    tune_numpy()
    from logtrace.demo.run import main as demo

    return demo(directory=args.dir)


def _iso(epoch: float) -> str:
    import datetime

    when = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _quiet_stdout() -> None:
    # The reader went away (| head): drop what is still buffered, quietly.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _grep(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    tune_numpy()
    from logtrace.stitch import InputError, expand_paths, grep_stream

    if not args.id.strip():
        raise CommandError("grep: the ID is empty")
    spool = tempfile.mkdtemp(prefix="logtrace-")
    warnings: list[str] = []
    skipped: list[str] = []
    notes: list[str] = []
    out = sys.stdout.buffer
    # As grep: escaped for a terminal, raw through a pipe or into a file.
    tty = out.isatty()
    pending: list[bytes] = []
    held = 0

    def write(m: Any) -> None:
        nonlocal held
        prefix = names[m.file] if show_name else b""
        if args.line_number:
            prefix += b"%d:" % m.line
        line = prefix + (visible_line(m.raw) if tty else m.raw) + b"\n"
        pending.append(line)
        held += len(line)
        if held >= 1 << 20:
            out.write(b"".join(pending))
            pending.clear()
            held = 0

    try:
        sources = expand_paths(args.paths, spool, skipped)
        show_name = args.with_filename or (not args.no_filename and len(sources) > 1)
        names = [
            (visible(s.name) if tty else s.name).encode(errors="surrogateescape") + b":"
            for s in sources
        ]
        count, ordered = grep_stream(
            [args.id],
            sources,
            warnings,
            write,
            numbers=args.line_number,
            skipped=skipped,
            clocks={} if args.no_skew_correction else None,
            notes=notes,
        )
        out.write(b"".join(pending))
        out.flush()
    except InputError as exc:
        raise CommandError(str(exc)) from None
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    for problem in skipped:
        warn(f"{problem} (skipped)")
    for warning in warnings:
        warn(warning)
    for note in notes:
        print(f"logtrace: note: {note}", file=sys.stderr)
    if not ordered:
        print(
            f"logtrace: note: {count} matching lines, too many to hold in stitched order: "
            "written in file order, file by file",
            file=sys.stderr,
        )
    if skipped:
        return 2
    return 0 if count else 1
