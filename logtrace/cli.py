"""The ``logtrace`` command: ``stitch`` and ``grep``.

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
from typing import IO, Any

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


_CONTROLS = r"\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\udc80-\udcff"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_CONTROL_OR_TAB = re.compile(f"[\\t{_CONTROLS}]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with control, bidirectional-override and non-UTF-8 characters
    written as escapes (``\\x1b``): log text must not drive the terminal."""
    return _CONTROL_OR_TAB.sub(_shown, text)


def visible_line(raw: bytes) -> bytes:
    """:func:`visible` for one raw line, tabs kept (what grep's output to a terminal gets)."""
    text = raw.decode("utf-8", "surrogateescape")
    if not _CONTROL.search(text):
        return raw
    return _CONTROL.sub(_shown, text).encode("utf-8", "surrogateescape")


def _warn(message: str) -> None:
    print(f"logtrace: warning: {visible(message)}", file=sys.stderr)


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
        choices=("text", "jsonl", "html", "chrome"),
        help="output format (default: text; jsonl with --engine spark)",
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
        return _stitch(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0
    except _Fail as exc:
        print(f"logtrace: {visible(str(exc))}", file=sys.stderr)
        return 2


class _Fail(Exception):
    pass


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

    if args.format is None:
        args.format = "jsonl" if args.engine == "spark" else "text"
    if args.engine == "spark" and args.format != "jsonl" and not filtered_run(args):
        raise _Fail(
            f"--engine spark writes {args.format} for filtered runs only (--trace, --errors, "
            "--service, --since, --until); use --format jsonl for a whole run"
        )

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
        strict=args.strict,
    )
    try:
        if args.engine == "spark":
            summary = _stitch_on_spark(args, out, options)
        else:
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
    # Skipped inputs are warned about even with --quiet: the exit status alone
    # would not say which.
    for problem in summary.skipped:
        _warn(f"{problem} (skipped)")
    if not args.quiet:
        _print_summary(summary, options.skew_correction)
    if args.strict and summary.unparseable:
        return 1
    return 3 if summary.skipped else 0


def _stitch_on_spark(args: argparse.Namespace, out: IO[bytes], options: Any) -> Any:
    try:
        from logtrace.stitch.spark import stitch_to
    except ImportError as exc:
        raise _Fail(
            f"--engine spark needs pyspark ({exc}): pip install 'pylogtrace[spark]'"
        ) from None
    options.color = False
    return stitch_to(args.paths, out, options, args.master, args.parts)


def filtered_run(args: argparse.Namespace) -> bool:
    """Whether the command line selects some traces, not all of them."""
    return bool(
        args.trace
        or args.errors
        or args.service
        or args.since is not None
        or args.until is not None
    )


def _print_summary(summary: Any, skew_correction: bool) -> None:
    for warning in summary.warnings:
        _warn(warning)
    written = summary.written_traces
    shown = f" ({written} written)" if written != summary.traces else ""
    skipped = f", {len(summary.skipped)} skipped" if summary.skipped else ""
    print(
        f"logtrace: {summary.files} files{skipped}, {summary.records} records, "
        f"{summary.traces} traces{shown}, {summary.unattributed} unattributed, "
        f"{summary.unparseable} unparseable",
        file=sys.stderr,
    )
    if not skew_correction:
        print("logtrace: clock skew correction off (raw timestamps)", file=sys.stderr)
    elif summary.offsets_ms:
        offsets = ", ".join(
            f"{visible(name)} {ms:+.3f} ms"
            + (f" ({summary.drift_ppm[name]:+.1f} ppm)" if summary.drift_ppm.get(name) else "")
            for name, ms in summary.offsets_ms.items()
        )
        print(f"logtrace: clock offsets: {offsets}", file=sys.stderr)


def _grep(args: argparse.Namespace) -> int:
    import shutil
    import tempfile

    _quiet_blas()
    from logtrace.stitch import InputError, expand_paths, grep_stream

    if not args.id.strip():
        raise _Fail("grep: the ID is empty")
    spool = tempfile.mkdtemp(prefix="logtrace-")
    warnings: list[str] = []
    skipped: list[str] = []
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
            [args.id], sources, warnings, write, numbers=args.line_number, skipped=skipped
        )
        out.write(b"".join(pending))
        out.flush()
    except InputError as exc:
        raise _Fail(str(exc)) from None
    finally:
        shutil.rmtree(spool, ignore_errors=True)
    for problem in skipped:
        _warn(f"{problem} (skipped)")
    for warning in warnings:
        _warn(warning)
    if not ordered:
        print(
            f"logtrace: note: {count} matching lines, too many to hold in stitched order: "
            "written in file order, file by file",
            file=sys.stderr,
        )
    if skipped:
        return 2
    return 0 if count else 1
