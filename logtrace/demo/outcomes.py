"""The demo's outcome table: every trace's entry span, by operation and status.

Read from the spans the stitcher rebuilds from the logs (its Jaeger
export): per entry operation, how many traces succeeded and failed, with
latency percentiles; then each failing trace with the span that failed
first (a failed span none of whose children failed).
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

__all__ = ["outcomes_table", "percentile"]


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def _traces(paths: list[str]) -> list[dict[str, Any]]:
    from logtrace.stitch import Options, stitch

    buffer = io.BytesIO()
    stitch(paths, buffer, Options(format="jaeger"))
    data: list[dict[str, Any]] = json.loads(buffer.getvalue())["data"]
    return data


def outcomes_table(paths: list[str]) -> str:
    """The outcomes of every trace in ``paths``' logs, as text."""
    rows: dict[tuple[str, str], list[tuple[bool, float]]] = {}
    failures = []
    for trace in _traces(paths):
        spans = trace["spans"]
        process = {p: v["serviceName"] for p, v in trace["processes"].items()}
        roots = [s for s in spans if not s.get("references")]
        if not roots:
            continue
        root = min(roots, key=lambda s: s["startTime"])
        entry = (process[root["processID"]], root["operationName"])
        failed = [s for s in spans if _tags(s).get("error") is True]
        rows.setdefault(entry, []).append((bool(failed), root["duration"] / 1e3))
        if failed:
            status = _tags(root).get("http.response.status_code", "error")
            # The failed spans none of whose children failed: where the error was first seen.
            parents = {r["spanID"] for s in failed for r in s.get("references", [])}
            first = [s for s in failed if s["spanID"] not in parents]
            where = ", ".join(
                f"{process[s['processID']]} {s['operationName']!r} "
                f"({_tags(s).get('otel.status_description', 'error')})"
                for s in first
            )
            failures.append(f"  {trace['traceID']}  {status}  first failed in {where}")
    lines = ["outcomes by entry operation (latency in ms):"]
    header = f"  {'service':<10} {'operation':<26} {'ok':>4} {'failed':>6} {'p50':>8} {'p95':>8}"
    lines.append(header)
    for (service, operation), results in sorted(rows.items()):
        ok = sum(not f for f, _ in results)
        times = [t for _, t in results]
        lines.append(
            f"  {service:<10} {operation[:26]:<26} {ok:>4} {len(results) - ok:>6} "
            f"{percentile(times, 50):>8.1f} {percentile(times, 95):>8.1f}"
        )
    if failures:
        lines.append("")
        lines.append(f"failing traces ({len(failures)}), with the span that failed first:")
        lines.extend(failures)
    return "\n".join(lines) + "\n"
