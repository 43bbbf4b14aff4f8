"""Start both services on 127.0.0.1, place a few orders, show the logs by trace.

    python examples/two_services/run_demo.py               # logs into examples/two_services/logs/
    python examples/two_services/run_demo.py --logs /tmp/demo

Each service writes JSON lines to its own file (``storefront.jsonl``,
``inventory.jsonl``). Three orders are sent: one that succeeds, one that
continues a trace the caller started (its ``traceparent`` is sent along),
and one for item 0, which inventory fails on: inventory logs the exception
once, with its traceback, and storefront answers 502. Then every line of
both files is printed grouped by trace ID, the way ``logtrace stitch``
starts from.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HOST = "127.0.0.1"
CALLER_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def start(module: str, port: int, log_file: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    environment = {**os.environ, **env, "LOG_FILE": str(log_file)}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    command = [
        sys.executable, "-m", "uvicorn", f"{module}:app",
        "--app-dir", str(HERE), "--host", HOST, "--port", str(port),
    ]  # fmt: skip
    return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)


def wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the service on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {HOST}:{port}") from None
            time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)


def place_orders(base_url: str) -> list[tuple[str, int, str]]:
    """Send the three orders; ``(what, status, traceparent of the response)`` for each."""
    results = []
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for what, path, headers in [
            ("new trace", "/orders/42", {}),
            ("caller's trace", "/orders/7", {"traceparent": CALLER_TRACEPARENT}),
            ("failing call", "/orders/0", {}),
        ]:
            response = client.post(path, headers=headers)
            results.append((what, response.status_code, response.headers.get("traceresponse", "")))
    return results


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def show(files: list[Path]) -> None:
    """Every line of the services' files, grouped by trace, in time order."""
    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in files:
        for line in read(path):
            by_trace[line.get("trace_id") or "(no trace)"].append(line)
    for trace_id, lines in sorted(by_trace.items(), key=lambda kv: kv[1][0]["timestamp"]):
        if trace_id == "(no trace)":
            continue
        print(f"\ntrace {trace_id}")
        for line in sorted(lines, key=lambda r: r["timestamp"]):
            message = line["message"].strip()
            if "duration_ms" in line:
                message += f"  ({line['duration_ms']} ms, parent {line['parent_span_id']})"
            if "exc_info" in line:
                message += f"  [{line['exc_info'].splitlines()[-1]}]"
            print(
                f"  {line['timestamp'][11:]}  {line['service']:<10} {line['level']:<7} "
                f"span {line['span_id']}  {line['logger']}: {message}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--logs", type=Path, default=HERE / "logs", help="where the files go")
    args = parser.parse_args(argv)
    logs: Path = args.logs
    logs.mkdir(parents=True, exist_ok=True)
    files = [logs / "storefront.jsonl", logs / "inventory.jsonl"]
    for path in files:
        path.unlink(missing_ok=True)

    inventory_port, storefront_port = free_port(), free_port()
    inventory = start("inventory", inventory_port, files[1], {})
    processes = [inventory]
    try:
        wait_for(inventory_port, inventory)
        storefront = start(
            "storefront",
            storefront_port,
            files[0],
            {"INVENTORY_URL": f"http://{HOST}:{inventory_port}"},
        )
        processes.append(storefront)
        wait_for(storefront_port, storefront)
        results = place_orders(f"http://{HOST}:{storefront_port}")
    finally:
        for process in reversed(processes):
            stop(process)

    print(f"storefront on {HOST}:{storefront_port}, inventory on {HOST}:{inventory_port}")
    for what, status, traceresponse in results:
        print(f"  {what:<15} -> {status}  traceresponse: {traceresponse}")
    show(files)
    print(f"\nlogs: {', '.join(str(p) for p in files)}")
    print(f"stitch them: logtrace stitch {logs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
