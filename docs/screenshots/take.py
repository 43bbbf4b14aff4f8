"""Take the screenshots of the HTML report in docs/screenshots/, in headless Chromium.

    python docs/screenshots/take.py                 # fresh logs from `logtrace demo`
    python docs/screenshots/take.py --logs DIR      # the logs in DIR instead

Runs ``logtrace demo`` (three services on 127.0.0.1) for its logs unless
``--logs`` is given, stitches them into HTML reports, and has Chromium
(``$CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH) save:

- ``report.png``: the report of every trace;
- ``report-errors.png``: the same page with "errors only" ticked
  (``#errors=1`` in the address);
- ``report-trace.png``: the report of one failing trace, its rows open.

Offline: the pages fetch nothing, Chromium's background networking is off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SIZE = (1400, 900)


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    found = found or shutil.which("chromium-browser")
    if not found:
        sys.exit("take.py: no chromium on the PATH (set $CHROMIUM)")
    return found


def logtrace(*argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [sys.executable, "-m", "logtrace", *argv],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


def shoot(browser: str, page: Path, fragment: str, png: Path, profile: Path) -> None:
    """Load ``page`` (with ``#fragment``) and save what the window shows to ``png``."""
    url = page.as_uri() + (f"#{fragment}" if fragment else "")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--window-size={SIZE[0]},{SIZE[1]}",
            "--virtual-time-budget=3000",  # let the page's script run first
            f"--screenshot={png}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    if not png.is_file() or png.stat().st_size == 0:
        sys.exit(f"take.py: chromium wrote no {png}")
    print(f"wrote {png.relative_to(REPO) if png.is_relative_to(REPO) else png}")


def failing_trace(logs: Path) -> str:
    """A trace that failed deepest: the most services among those with an error."""
    done = logtrace("stitch", "-q", "--errors", "--format", "jsonl", str(logs))
    services: dict[str, set[str]] = {}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        if record.get("trace_id"):
            services.setdefault(record["trace_id"], set()).add(record.get("service", ""))
    if not services:
        sys.exit(f"take.py: no failing trace in {logs}")
    return max(sorted(services), key=lambda t: len(services[t]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--logs", type=Path, help="stitch these logs (default: run the demo)")
    parser.add_argument("--out", type=Path, default=HERE, help="where the PNGs go")
    args = parser.parse_args()
    browser = chromium()
    with tempfile.TemporaryDirectory(prefix="logtrace-shots-") as tmp:
        work = Path(tmp)
        logs: Path = args.logs
        if logs is None:
            logtrace("demo", "--dir", str(work / "demo"))
            logs = work / "demo" / "logs"
        report, one = work / "report.html", work / "trace.html"
        logtrace("stitch", "-q", "--format", "html", "-o", str(report), str(logs))
        trace = failing_trace(logs)
        logtrace("stitch", "-q", "--format", "html", "-o", str(one), "--trace", trace, str(logs))
        args.out.mkdir(parents=True, exist_ok=True)
        shoot(browser, report, "", args.out / "report.png", work / "profile")
        shoot(browser, report, "errors=1", args.out / "report-errors.png", work / "profile")
        shoot(browser, one, "", args.out / "report-trace.png", work / "profile")


if __name__ == "__main__":
    main()
