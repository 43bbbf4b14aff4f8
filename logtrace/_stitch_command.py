"""``logtrace stitch``: runs the stitcher (local or on Spark) for the command line,
writes the traces and the summary, and reports on standard error."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, Any

from ._terminal import CommandError, visible, warn

__all__ = ["filtered_run", "run_stitch", "tune_numpy"]


def _open_output(path: str | None) -> tuple[IO[bytes], bool]:
    if path is None or path == "-":
        return sys.stdout.buffer, sys.stdout.isatty()
    try:
        return open(path, "wb"), False
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror or exc}") from None


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


def tune_numpy() -> None:
    """Settings numpy reads at import, for a batch job over large arrays.

    - The stitcher does no linear algebra; without this, numpy's BLAS starts
      a thread per core at import, in the parent and again in every worker.
    - numpy asks the kernel for huge pages for every large array. Where
      transparent huge pages are on request (``madvise``, a common default),
      a fault on one may stall in memory compaction: measured on 500 MB of
      logs, the per-trace stage took 0.24 to 0.64 s of CPU from run to run
      with them and 0.30 to 0.33 s without.

    Values already in the environment win.
    """
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


def run_stitch(args: argparse.Namespace) -> int:
    tune_numpy()
    from logtrace.stitch import InputError, Options, stitch

    summary_only = args.summary and args.format is None and args.engine != "spark"
    if args.format is None:
        args.format = "jsonl" if args.engine == "spark" else "text"
    fmt = "none" if summary_only else args.format
    if args.engine == "spark":
        if fmt not in ("jsonl", "text", "html", "chrome"):
            raise CommandError(f"--engine spark writes jsonl, text, html or chrome, not {fmt}")
        if fmt != "jsonl" and not filtered_run(args):
            raise CommandError(
                f"--engine spark writes {fmt} for filtered runs only (--trace, --errors, "
                "--service, --since, --until); use --format jsonl for a whole run"
            )
    out, tty = _open_output(None if summary_only else args.output)
    options = Options(
        traces=args.trace,
        errors_only=args.errors,
        services=args.service,
        since=args.since,
        until=args.until,
        format=fmt,
        skew_correction=not args.no_skew_correction,
        jobs=args.jobs,
        memory=args.memory,
        color=tty and fmt == "text" and not os.environ.get("NO_COLOR"),
        tmp_dir=args.tmp_dir,
        strict=args.strict,
        summary=args.summary,
    )
    try:
        if args.engine == "spark":
            summary = _stitch_on_spark(args, out, options)
        else:
            summary = stitch(args.paths, out, options, _progress())
    except InputError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise CommandError(
            f"{exc.filename or args.output or 'output'}: {exc.strerror or exc}"
        ) from None
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    # Skipped inputs are warned about even with --quiet: the exit status alone
    # would not say which.
    for problem in summary.skipped:
        warn(f"{problem} (skipped)")
    if not args.quiet:
        _print_summary(summary, options.skew_correction)
        if not args.summary:
            _explain_marks(summary)
    if args.summary and summary.outcomes is not None:
        to_stdout = summary_only or args.output not in (None, "-")
        _write_outcomes(summary, args.output if summary_only else None, to_stdout)
    if args.strict and summary.unparseable:
        return 1
    return 3 if summary.skipped else 0


def _explain_marks(summary: Any) -> None:
    """What each mark in the output means, once (``--summary`` says it too)."""
    from logtrace.stitch import mark_explanations

    for line in mark_explanations(summary.marks):
        print(f"logtrace: {line}", file=sys.stderr)


def _write_outcomes(summary: Any, path: str | None, to_stdout: bool) -> None:
    """``--summary``: to ``path``, else standard output, or standard error
    when the traces went to standard output."""
    from logtrace.stitch import summary_text

    text = summary_text(summary.outcomes, summary.marks)
    if path is not None and path != "-":
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror or exc}") from None
        return
    stream = sys.stdout if to_stdout else sys.stderr
    stream.write(text)
    stream.flush()


def _stitch_on_spark(args: argparse.Namespace, out: IO[bytes], options: Any) -> Any:
    try:
        from logtrace.stitch.spark import stitch_to
    except ImportError as exc:
        raise CommandError(
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
        warn(warning)
    written = summary.written_traces
    shown = f" ({written} written)" if written != summary.traces else ""
    skipped = f", {len(summary.skipped)} skipped" if summary.skipped else ""
    print(
        f"logtrace: {summary.files} files{skipped}, {summary.records} records, "
        f"{summary.traces} traces{shown}, {summary.unattributed} unattributed, "
        f"{summary.unparseable} unparseable",
        file=sys.stderr,
    )
    for note in summary.notes:
        print(f"logtrace: {note}", file=sys.stderr)
    if not skew_correction:
        print("logtrace: clock skew correction off (raw timestamps)", file=sys.stderr)
    elif summary.offsets_ms:
        offsets = ", ".join(
            f"{visible(name)} {summary.clock_text(name)}"
            + (f" ({summary.drift_ppm[name]:+.1f} ppm)" if summary.drift_ppm.get(name) else "")
            for name in summary.offsets_ms
        )
        reference = summary.reference
        against = f" (ahead of {visible(reference)}'s clock)" if reference is not None else ""
        print(
            f"logtrace: clock offsets applied{against} [interval the calls allow]: {offsets}",
            file=sys.stderr,
        )
        one_sided = [name for name in summary.uncorrected if summary.one_sided(name)]
        unbounded = [name for name in summary.uncorrected if not summary.one_sided(name)]
        least = [
            name
            for name in summary.offsets_ms
            if summary.offsets_ms[name] and summary.one_sided(name)
        ]
        for names, why in (
            (unbounded, "no calls bound their clocks"),
            (one_sided, "calls bound their clocks on one side only"),
            (least, "bound on one side only, offset may be off by more"),
        ):
            if names:
                listed = ", ".join(visible(name) for name in names)
                lead = "" if names is least else "left uncorrected, "
                print(f"logtrace: {lead}{why}: {listed}", file=sys.stderr)
