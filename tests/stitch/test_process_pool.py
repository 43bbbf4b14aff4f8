"""Forked workers end when their pool ends them, whatever the parent's SIGTERM handler.

A process that handles SIGTERM in Python (a tracer's exit hook, as ddtrace's
pytest plugin installs one in the test runner; an application server) forks
workers that inherit the handler: ended by their pool with SIGTERM, a
worker whose handler waits never exits, and the stitch hung at its end.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "two_services" / "logs"

SCRIPT = textwrap.dedent(
    """
    import io, signal, sys, threading

    from logtrace.stitch import Options, stitch

    def wait_forever(signum, frame):
        threading.Event().wait()  # a handler that never returns

    signal.signal(signal.SIGTERM, wait_forever)
    out = io.BytesIO()
    summary = stitch([sys.argv[1]], out, Options(format="jsonl", jobs=2))
    print(summary.records, len(out.getvalue().splitlines()))
    """
)


def test_workers_of_a_parent_that_handles_sigterm_still_end() -> None:
    files = sorted(p for p in EXAMPLE.iterdir() if p.is_file())
    assert len(files) >= 2  # two scan tasks at least: the scan forks its workers
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(EXAMPLE)],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records, written = map(int, done.stdout.split())
    assert records > 0 and written >= records
