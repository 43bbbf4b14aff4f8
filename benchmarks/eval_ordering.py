"""How often a stitched trace comes out in exactly the true order.

Generates logs with ``logtrace.testing`` (which knows every record's true
time), then orders each trace four ways and scores the share of traces whose
records come out in exactly the true order:

- ``raw``: by the timestamps as written (what a log viewer does);
- ``jaeger``: Jaeger's per-trace clock-skew adjuster applied to the log spans
  (a child span that does not fit inside its parent on another service is
  shifted to the middle of the parent, and its subtree with it);
- ``clocks``: by timestamps corrected with ``estimate_clocks`` over all calls
  (this script's own minimal reader, to measure the clock model alone);
- ``stitch``: ``python -m logtrace stitch --format jsonl``, as emitted, and
  its records re-sorted by their corrected ``timestamp``.

On every row it also counts callee records that ``stitch`` places outside
their caller's call: before the caller's line that made the call, or after
the line that received the answer (the target is none).

A last row takes logs that name no parent span (ECS, OpenTelemetry's logging
instrumentation, Datadog; ``SynthConfig(parent_ids=False)``): raw timestamps
against ``stitch``, which infers the calls from containment, and the callee
records placed before the caller's record that made the call or after the one
that got the answer (from the generator's true parents).

    python benchmarks/eval_ordering.py [--size-mb 60] [--write-docs]
"""

from __future__ import annotations

import argparse
import calendar
import gzip
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from logtrace.stitch._clocks import ClockModel, Edge, estimate_clocks  # noqa: E402
from logtrace.testing import SynthConfig, SynthResult, generate  # noqa: E402

DATA = REPO_ROOT / "benchmarks" / "data"


# --- a minimal reader for the generator's formats ------------------------------

_secs: dict[str, int] = {}
_LOGFMT = re.compile(r'(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S+)')
_PLAIN = re.compile(
    r"^(\S+Z) (\w+) \[(\S+)\] (.*) trace_id=(\w+) span_id=(\w+)(?: parent_span_id=(\w+))?"
)


def _ts(text: str) -> float:
    """ISO 8601 UTC with microseconds (``Z`` or ``+00:00``) to epoch seconds."""
    head = text[:19]
    sec = _secs.get(head)
    if sec is None:
        sec = _secs[head] = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    return sec + int(text[20:26]) / 1e6


@dataclass(slots=True)
class Rec:
    file: int
    line: int
    service: str
    ts: float
    trace: str
    span: str | None
    parent: str | None
    kind: str | None = None
    start: float | None = None
    status: int = 0
    adj: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    message: str = ""


def read_logs(root: Path, files: list[str]) -> list[Rec]:
    """Every record that carries a trace ID, in any of the generator's formats."""
    out: list[Rec] = []
    for fi, name in enumerate(files):
        path = root / name
        opener = gzip.open if name.endswith(".gz") else open
        service_from_name = name.split(".", 1)[0]
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            for number, line in enumerate(fh, 1):
                rec = _parse(line.rstrip("\n"), fi, number, service_from_name)
                if rec is not None:
                    out.append(rec)
    return out


def _parse(line: str, fi: int, number: int, service: str) -> Rec | None:
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError:
            return None
        if "trace_id" in obj:
            rec = Rec(
                fi,
                number,
                obj.get("service", service),
                _ts(obj["timestamp"]),
                obj["trace_id"],
                obj.get("span_id"),
                obj.get("parent_span_id"),
            )
            kind = obj.get("span.kind")
            if kind is not None:
                rec.kind = kind
                rec.start = _ts(obj["span.start"])
                rec.status = obj.get("http.response.status_code", 0)
            rec.message = str(obj.get("message", ""))
            return rec
        if "trace.id" in obj:
            rec = Rec(
                fi,
                number,
                obj.get("service.name", service),
                _ts(obj["@timestamp"]),
                obj["trace.id"],
                obj.get("span.id"),
                None,
            )
            rec.message = str(obj.get("message", ""))
            return rec
        if "otelTraceID" in obj:
            rec = Rec(
                fi,
                number,
                obj.get("otelServiceName", service),
                _ts(obj["timestamp"]),
                obj["otelTraceID"],
                obj.get("otelSpanID"),
                None,
            )
            rec.message = str(obj.get("message", ""))
            return rec
        return None
    if line.startswith("ts="):
        kv = dict(_LOGFMT.findall(line))
        if "trace_id" not in kv:
            return None
        rec = Rec(
            fi,
            number,
            kv.get("service", service),
            _ts(kv["ts"]),
            kv["trace_id"],
            kv.get("span_id"),
            None,
        )
        rec.message = kv.get("msg", "").strip('"')
        return rec
    m = _PLAIN.match(line)
    if m:
        rec = Rec(fi, number, m.group(3), _ts(m.group(1)), m.group(5), m.group(6), m.group(7))
        rec.message = m.group(4)
        return rec
    return None


def by_trace(recs: list[Rec]) -> dict[str, list[Rec]]:
    traces: dict[str, list[Rec]] = defaultdict(list)
    for r in recs:
        traces[r.trace].append(r)
    return traces


# --- orderings ------------------------------------------------------------------


def order_by(recs: list[Rec], key_ts: dict[int, float] | None = None) -> list[tuple[int, int]]:
    """Sort by (corrected) timestamp; file position breaks ties."""
    if key_ts is None:
        ranked = sorted(recs, key=lambda r: (r.ts, r.file, r.line))
    else:
        ranked = sorted(recs, key=lambda r: (key_ts[id(r)], r.file, r.line))
    return [(r.file, r.line) for r in ranked]


def jaeger_adjust(recs: list[Rec]) -> dict[int, float]:
    """Jaeger's adjuster on the spans the log records describe.

    A span whose parent lives on another service and does not contain it is
    moved to the middle of its parent (or aligned with its start when longer);
    the shift carries down to its children and to its records.
    """
    spans: dict[str, tuple[str, float, float, str | None]] = {}
    for r in recs:
        if r.kind is not None and r.span is not None and r.start is not None:
            spans[r.span] = (r.service, r.start, r.ts, r.parent)
    shift: dict[str, float] = {}

    def skew_of(span_id: str, depth: int = 0) -> float:
        if span_id in shift:
            return shift[span_id]
        service, start, end, parent = spans[span_id]
        value = 0.0
        if parent is not None and parent in spans and depth < 100:
            p_shift = skew_of(parent, depth + 1)
            p_service, p_start, p_end, _ = spans[parent]
            value = p_shift
            if p_service != service:
                p_start += p_shift
                p_end += p_shift
                c_start, c_end = start + p_shift, end + p_shift
                if c_end - c_start > p_end - p_start:
                    value += p_start - c_start
                elif c_start < p_start or c_end > p_end:
                    latency = ((p_end - p_start) - (c_end - c_start)) / 2
                    value += p_start + latency - c_start
        shift[span_id] = value
        return value

    out: dict[int, float] = {}
    for r in recs:
        s = 0.0
        if r.span is not None and r.span in spans:
            s = skew_of(r.span)
        out[id(r)] = r.ts + s
    return out


def edges_from(
    traces: dict[str, list[Rec]], models: dict[str, ClockModel] | None, margin: float = 0.0
) -> list[Edge]:
    """Calls seen in the logs: exact from client span records, else bracketed.

    Without client spans, the caller's records that bracket the callee's span
    bound the call; with ``models`` from a first pass, the bracketing records
    are found on corrected clocks (a second, tighter pass), keeping ``margin``
    seconds away from the callee's span so that a first-pass error cannot
    pick a record from the wrong side.
    """
    edges: list[Edge] = []
    for recs in traces.values():
        servers = {r.span: r for r in recs if r.kind == "server"}
        clients = {r.span: r for r in recs if r.kind == "client"}
        by_span: dict[str | None, list[Rec]] = defaultdict(list)
        for r in recs:
            by_span[r.span].append(r)
        crowded = _parallel(servers, models)
        for s in servers.values():
            assert s.start is not None
            c = clients.get(s.parent)
            if c is not None and c.start is not None:
                edges.append(Edge(c.service, s.service, c.start, c.ts, s.start, s.ts, True))
                continue
            p = servers.get(s.parent)
            if p is None or p.start is None or p.service == s.service:
                continue
            send, receive = p.start, p.ts
            if models is not None and s.span not in crowded:
                mp, ms = models[p.service], models[s.service]
                lo, hi = ms.correct(s.start), ms.correct(s.ts)
                for r in by_span[p.span]:
                    if r.kind is not None:
                        continue
                    t = mp.correct(r.ts)
                    if t <= lo - margin and r.ts > send:
                        send = r.ts
                    elif t >= hi + margin and r.ts < receive:
                        receive = r.ts
            edges.append(Edge(p.service, s.service, send, receive, s.start, s.ts, False))
    return edges


def _parallel(servers: dict[str | None, Rec], models: dict[str, ClockModel] | None) -> set[str]:
    """Server spans (on corrected clocks) that overlap another call of the same
    caller span: the caller's records around them are written for the other
    calls too, so they are not bracketed."""
    if models is None:
        return set()
    by_parent: dict[str | None, list[tuple[float, float, str]]] = defaultdict(list)
    for s in servers.values():
        if s.start is not None and s.span is not None:
            m = models[s.service]
            by_parent[s.parent].append((m.correct(s.start), m.correct(s.ts), s.span))
    out: set[str] = set()
    for calls in by_parent.values():
        calls.sort()
        latest, last = -math.inf, ""
        for start, end, span in calls:
            if start < latest:
                out.update((span, last))
            if end > latest:
                latest, last = end, span
    return out


def clock_order(
    traces: dict[str, list[Rec]], services: list[str]
) -> tuple[dict[int, float], dict[str, ClockModel]]:
    edges = edges_from(traces, None)
    models = estimate_clocks(edges, services)
    if not any(e.exact for e in edges):
        for margin in (100e-6, 30e-6):
            models = estimate_clocks(edges_from(traces, models, margin), services)
    corrected = {id(r): models[r.service].correct(r.ts) for rs in traces.values() for r in rs}
    return corrected, models


# --- the stitcher ----------------------------------------------------------------


LAST_STDERR = [""]
"""What the last :func:`run_stitch` wrote on standard error (its summary)."""
_APPLIED = re.compile(r"(\S+) ([+-]\d+\.\d+) ms")


def stitch_offsets(stderr: str) -> dict[str, float]:
    """The clock offsets (seconds) the stitch's summary says it applied."""
    for line in stderr.splitlines():
        if "clock offsets applied" in line:
            body = line.split(":", 2)[-1]
            return {m[1]: float(m[2]) / 1e3 for m in _APPLIED.finditer(body)}
    return {}


def run_stitch(
    root: Path, files: list[str], extra: list[str] | None = None
) -> dict[str, list[dict[str, Any]]] | None:
    """``logtrace stitch --format jsonl`` output grouped by trace, or None if absent."""
    cmd = [
        sys.executable,
        "-m",
        "logtrace",
        "stitch",
        "--format",
        "jsonl",
        *(extra or []),
        str(root),
    ]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    try:
        proc = subprocess.run(cmd, capture_output=True, env=env, cwd=REPO_ROOT, check=False)
    except OSError:
        return None
    if proc.returncode not in (0, 1) or not proc.stdout:
        sys.stderr.write(
            f"stitch unavailable (exit {proc.returncode}): "
            f"{proc.stderr.decode(errors='replace')[-300:]}\n"
        )
        return None
    LAST_STDERR[0] = proc.stderr.decode(errors="replace")
    index = {name: i for i, name in enumerate(files)}
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in proc.stdout.splitlines():
        obj = json.loads(line)
        if obj.get("trace_id") is None:
            continue
        obj["_file"] = index.get(os.path.basename(obj["file"]), -1)
        out[obj["trace_id"]].append(obj)
    return out


def _iso_to_s(text: str | None) -> float:
    """A stitched record's corrected time; records without one sort last."""
    if not text or len(text) < 26:
        return float("inf")
    return _ts(text)


# --- scoring -----------------------------------------------------------------------


def exact_share(
    orders: dict[str, list[tuple[int, int]]], truth: dict[str, list[tuple[int, int]]]
) -> float:
    good = sum(1 for tid, want in truth.items() if orders.get(tid) == want)
    return 100.0 * good / max(len(truth), 1)


def containment_violations(traces: dict[str, list[Rec]], corrected: dict[int, float]) -> int:
    """Callee records before their caller's client span start or after its end."""
    bad = 0
    for recs in traces.values():
        clients = {r.span: r for r in recs if r.kind == "client"}
        children: dict[str | None, list[Rec]] = defaultdict(list)
        for r in recs:
            if r.kind == "server":
                children[r.parent].append(r)
        span_recs: dict[str | None, list[Rec]] = defaultdict(list)
        for r in recs:
            span_recs[r.span].append(r)
        for c in clients.values():
            assert c.start is not None
            lo = corrected[id(c)] - (c.ts - c.start)  # same clock, same correction
            hi = corrected[id(c)]
            for s in children.get(c.span, []):
                for r in span_recs[s.span]:
                    t = corrected[id(r)]
                    if t < lo or t > hi:
                        bad += 1
    return bad


def outside_calls(
    traces: dict[str, list[Rec]],
    truth: dict[str, list[tuple[int, int]]],
    placed: dict[str, list[tuple[int, int]]],
) -> int:
    """Callee records placed (in ``placed`` order) before the caller's line
    that made the call (``calling <callee>``) or after the line that received
    the answer (``<callee> responded``). A call is a server span whose parent
    span is on another service; the caller's lines are those of its parent
    span and, for a client span, of the span that made it."""
    bad = 0
    for tid, recs in traces.items():
        want = {loc: i for i, loc in enumerate(truth.get(tid, []))}
        at = {loc: i for i, loc in enumerate(placed.get(tid, []))}
        by_span: dict[str | None, list[Rec]] = defaultdict(list)
        parent_of: dict[str, str | None] = {}
        service_of: dict[str, str] = {}
        for r in recs:
            by_span[r.span].append(r)
            if r.span is not None:
                service_of.setdefault(r.span, r.service)
                if r.parent is not None:
                    parent_of[r.span] = r.parent
        for span, mine in by_span.items():
            parent = parent_of.get(span or "")
            callee = mine[0].service
            if span is None or parent is None or service_of.get(parent, callee) == callee:
                continue
            caller = list(by_span.get(parent, []))
            grand = parent_of.get(parent)
            if grand is not None and service_of.get(grand) == service_of.get(parent):
                caller += by_span.get(grand, [])
            truly = sorted(want[(r.file, r.line)] for r in mine if (r.file, r.line) in want)
            if not truly or not caller:
                continue
            calls = [
                (want[(c.file, c.line)], (c.file, c.line))
                for c in caller
                if c.message == f"calling {callee}" and want.get((c.file, c.line), -1) < truly[0]
            ]
            answers = [
                (want[(c.file, c.line)], (c.file, c.line))
                for c in caller
                if c.message.startswith(f"{callee} responded")
                and want.get((c.file, c.line), -1) > truly[-1]
            ]
            lo = at.get(max(calls)[1]) if calls else None
            hi = at.get(min(answers)[1]) if answers else None
            for r in mine:
                pos = at.get((r.file, r.line))
                if pos is None:
                    continue
                if (lo is not None and pos < lo) or (hi is not None and pos > hi):
                    bad += 1
    return bad


def stitch_violations(out: dict[str, list[dict[str, Any]]]) -> tuple[int, int]:
    """(by position, by corrected time) callee records outside their client span."""
    by_pos = by_time = 0
    for recs in out.values():
        pos: dict[str, int] = {}
        client: dict[str, tuple[int, float, float]] = {}
        for i, o in enumerate(recs):
            rec = o.get("record") or {}
            if rec.get("span.kind") == "client":
                end = _iso_to_s(o["timestamp"])
                start = end - float(rec.get("duration_ms", 0)) / 1000
                client[str(o.get("span_id"))] = (i, start, end)
            pos.setdefault(str(o.get("span_id")), i)
        server_of: dict[str, str] = {}
        for o in recs:
            rec = o.get("record") or {}
            if rec.get("span.kind") == "server" and o.get("parent_span_id") in client:
                server_of[str(o.get("span_id"))] = str(o["parent_span_id"])
        for i, o in enumerate(recs):
            cid = server_of.get(str(o.get("span_id")))
            if cid is None:
                continue
            ci, start, end = client[cid]
            t = _iso_to_s(o["timestamp"])
            if i > ci:
                by_pos += 1
            if t < start or t > end:
                by_time += 1
    return by_pos, by_time


@dataclass(slots=True)
class Result:
    name: str
    traces: int
    records: int
    scores: dict[str, float]
    violations: dict[str, int]
    worst_offset_error_us: float
    seconds: dict[str, float]


def largest_error(
    res: SynthResult, cfg: SynthConfig, offsets: dict[str, float], at: float
) -> float:
    """The largest error (µs) of ``offsets`` against the generator's clocks at ``at``."""
    ref = res.services[0]
    worst = 0.0
    for s in res.services:
        drift = (res.drifts[s] - res.drifts[ref]) * (at - cfg.start)
        want = res.offsets_s[s] - res.offsets_s[ref] + drift
        worst = max(worst, abs(offsets.get(s, 0.0) - offsets.get(ref, 0.0) - want) * 1e6)
    return worst


def evaluate(name: str, cfg: SynthConfig, keep: bool) -> Result:
    root = DATA / f"eval-{name}"
    if root.exists():
        shutil.rmtree(root)
    res = generate(str(root), cfg)
    with open(res.truth, encoding="utf-8") as fh:
        head = json.loads(fh.readline())
        truth = {}
        for line in fh:
            obj = json.loads(line)
            truth[obj["trace_id"]] = [tuple(x) for x in obj["records"]]
    files: list[str] = head["files"]
    recs = read_logs(root / "logs", files)
    traces = by_trace(recs)
    scores: dict[str, float] = {}
    seconds: dict[str, float] = {}
    violations: dict[str, int] = {}
    raw_order = {t: order_by(rs) for t, rs in traces.items()}
    scores["raw"] = exact_share(raw_order, truth)
    violations["raw (outside the call)"] = outside_calls(traces, truth, raw_order)
    adj: dict[int, float] = {}
    for rs in traces.values():
        adj.update(jaeger_adjust(rs))
    scores["jaeger"] = exact_share({t: order_by(rs, adj) for t, rs in traces.items()}, truth)
    # The ceiling: every record on the true clock, as the generator set it
    # (local = true + offset + drift * (true - start)).
    start, offsets, drifts = cfg.start, res.offsets_s, res.drifts
    on_true = {
        id(r): (r.ts - offsets[r.service] + drifts[r.service] * start) / (1 + drifts[r.service])
        for rs in traces.values()
        for r in rs
    }
    scores["true offsets"] = exact_share(
        {t: order_by(rs, on_true) for t, rs in traces.items()}, truth
    )
    t0 = time.perf_counter()
    corrected, models = clock_order(traces, res.services)
    seconds["clocks"] = time.perf_counter() - t0
    scores["clocks"] = exact_share({t: order_by(rs, corrected) for t, rs in traces.items()}, truth)
    t_mid = cfg.start + res.traces / cfg.rate_per_s / 2
    model_offsets = {s: models[s].offset_at(t_mid) for s in res.services}
    worst = largest_error(res, cfg, model_offsets, t_mid)
    if cfg.client_spans:
        violations["clocks"] = containment_violations(traces, corrected)
        violations["raw"] = containment_violations(traces, {id(r): r.ts for r in recs})
    t0 = time.perf_counter()
    stitched = run_stitch(root / "logs", files)
    applied = stitch_offsets(LAST_STDERR[0])
    # The summary gives no time for a drifting offset: no comparison there.
    worst = largest_error(res, cfg, applied, t_mid) if applied and not cfg.drift_ppm else math.nan
    seconds["stitch"] = time.perf_counter() - t0
    if stitched is not None:
        emitted = {t: [(o["_file"], o["line"]) for o in rs] for t, rs in stitched.items()}
        scores["stitch"] = exact_share(emitted, truth)
        resorted = {
            t: [
                (o["_file"], o["line"])
                for o in sorted(
                    rs, key=lambda o: (_iso_to_s(o["timestamp"]), o["_file"], o["line"])
                )
            ]
            for t, rs in stitched.items()
        }
        scores["stitch, by corrected time"] = exact_share(resorted, truth)
        violations["stitch (outside the call)"] = outside_calls(traces, truth, emitted)
        if cfg.client_spans:
            pos, tim = stitch_violations(stitched)
            violations["stitch (position)"] = pos
            violations["stitch (corrected time)"] = tim
    if not keep:
        shutil.rmtree(root)
    return Result(name, len(truth), res.records, scores, violations, worst, seconds)


def parentless_violations(
    stitched: dict[str, list[dict[str, Any]]],
    truth: dict[str, list[tuple[int, int]]],
    parents: dict[str, dict[str, str | None]],
    messages: dict[tuple[int, int], str],
) -> int:
    """Callee records placed before the caller's line that made the call
    (``calling <callee>``) or after the line that received the answer
    (``<callee> responded``), as :func:`outside_calls` counts them, with the
    callers taken from the truth (the logs name no parent). The caller's lines
    are those of the parent span and, for a client span, of the span that made it."""
    bad = 0
    for tid, recs in stitched.items():
        span_of = {(o["_file"], o["line"]): str(o.get("span_id")) for o in recs}
        service_of = {str(o.get("span_id")): o["service"] for o in recs}
        pos = {(o["_file"], o["line"]): i for i, o in enumerate(recs)}
        true_order = truth.get(tid, [])
        by_span: dict[str, list[int]] = defaultdict(list)  # indexes into true_order
        for k, key in enumerate(true_order):
            by_span[span_of.get(key, "")].append(k)
        up = parents.get(tid, {})
        for span, parent in up.items():
            mine = by_span.get(span)
            callee = service_of.get(span)
            if not mine or parent is None or service_of.get(parent, callee) == callee:
                continue
            theirs = list(by_span.get(parent, []))
            grand = up.get(parent)
            if grand is not None and service_of.get(grand) == service_of.get(parent):
                theirs += by_span.get(grand, [])
            said = [(k, messages.get(true_order[k], "")) for k in theirs]
            calls = [k for k, m in said if m == f"calling {callee}" and k < mine[0]]
            answers = [k for k, m in said if m.startswith(f"{callee} responded") and k > mine[-1]]
            lo = pos[true_order[max(calls)]] if calls else -1
            hi = pos[true_order[min(answers)]] if answers else len(recs)
            bad += sum(1 for k in mine if not lo < pos[true_order[k]] < hi)
    return bad


def evaluate_without_parents(cfg: SynthConfig, keep: bool) -> Result:
    """Logs that name their trace and span but no parent (ECS, OpenTelemetry's
    logging instrumentation, Datadog): the stitcher infers the calls from
    containment. Scored against the truth's order and parent spans."""
    root = DATA / "eval-no-parent-ids"
    if root.exists():
        shutil.rmtree(root)
    cfg.parent_ids = False
    res = generate(str(root), cfg)
    truth: dict[str, list[tuple[int, int]]] = {}
    parents: dict[str, dict[str, str | None]] = {}
    with open(res.truth, encoding="utf-8") as fh:
        files: list[str] = json.loads(fh.readline())["files"]
        for line in fh:
            obj = json.loads(line)
            truth[obj["trace_id"]] = [(f, n) for f, n in obj["records"]]
            parents[obj["trace_id"]] = obj["parents"]
    messages = {(r.file, r.line): r.message for r in read_logs(root / "logs", files)}
    scores: dict[str, float] = {}
    violations: dict[str, int] = {}
    seconds: dict[str, float] = {}
    worst = math.nan
    for name, extra in (("raw", ["--no-skew-correction"]), ("stitch", [])):
        t0 = time.perf_counter()
        stitched = run_stitch(root / "logs", files, extra)
        seconds[name] = time.perf_counter() - t0
        if stitched is None:
            continue
        emitted = {t: [(o["_file"], o["line"]) for o in rs] for t, rs in stitched.items()}
        scores[name] = exact_share(emitted, truth)
        applied = stitch_offsets(LAST_STDERR[0])
        if name == "stitch" and applied:
            worst = largest_error(res, cfg, applied, cfg.start + res.traces / cfg.rate_per_s / 2)
        violations[f"{name}, callee records outside the call"] = parentless_violations(
            stitched, truth, parents, messages
        )
    if not keep:
        shutil.rmtree(root)
    return Result("no parent IDs", len(truth), res.records, scores, violations, worst, seconds)


CONFIGS: dict[str, dict[str, Any]] = {
    "skew 25 ms, client spans": {"skew_ms": 25.0},
    "skew 0, client spans": {"skew_ms": 0.0},
    "skew 25 ms, no client spans": {"skew_ms": 25.0, "client_spans": False},
    "skew 0, no client spans": {"skew_ms": 0.0, "client_spans": False},
    "skew 25 ms, two plain-text services": {"skew_ms": 25.0, "text_services": 2},
    # Logs without parent span IDs (OpenTelemetry logging, ECS, Datadog) go here.
    "skew 25 ms, no drift, long window": {"skew_ms": 25.0, "rate_per_s": 3.0},
    "skew 25 ms + drift 20 ppm, long window": {
        "skew_ms": 25.0,
        "drift_ppm": 20.0,
        "rate_per_s": 3.0,
    },
}


def run_rows(args: argparse.Namespace, seed: int) -> list[Result]:
    """Every configuration (those ``--only`` names) on logs generated with ``seed``."""
    results = []
    for name, opts in CONFIGS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        cfg = SynthConfig(target_bytes=int(args.size_mb * 1e6), seed=seed, **opts)
        slug = re.sub(r"\W+", "-", name).strip("-")
        r = evaluate(slug, cfg, args.keep)
        r.name = name
        results.append(r)
        cols = ", ".join(f"{k} {v:.1f} %" for k, v in r.scores.items())
        print(
            f"seed {seed}, {name}: {r.traces} traces, {r.records} lines; exact order: {cols}; "
            f"worst offset error {r.worst_offset_error_us:.0f} us; "
            f"violations {r.violations}",
            flush=True,
        )
    if not args.only or any(o in "skew 25 ms, no parent IDs" for o in args.only):
        cfg = SynthConfig(target_bytes=int(args.size_mb * 1e6), seed=seed, skew_ms=25.0)
        r = evaluate_without_parents(cfg, args.keep)
        r.name = "skew 25 ms, no parent IDs"
        results.append(r)
        cols = ", ".join(f"{k} {v:.1f} %" for k, v in r.scores.items())
        print(
            f"seed {seed}, {r.name}: {r.traces} traces, {r.records} lines; exact order: {cols}; "
            f"callee records outside their caller's call {r.violations}",
            flush=True,
        )
    return results


def outside_count(r: Result) -> int | None:
    """Callee records the stitch placed outside their caller's call."""
    return r.violations.get(
        "stitch (outside the call)", r.violations.get("stitch, callee records outside the call")
    )


def seeds_table(by_seed: dict[int, list[Result]]) -> str:
    """Per configuration, the stitch's share in order on each seed, and their median."""
    seeds = list(by_seed)
    names = [r.name for r in by_seed[seeds[0]]]
    head = "| logs | " + " | ".join(f"seed {s}" for s in seeds) + " | median | outside the call |"
    rows = [head, "|---|" + "---:|" * (len(seeds) + 2)]
    for name in names:
        got = [next((r for r in by_seed[s] if r.name == name), None) for s in seeds]
        shares = [r.scores["stitch"] for r in got if r is not None and "stitch" in r.scores]
        cells = [
            f"{r.scores['stitch']:.1f} %" if r is not None and "stitch" in r.scores else "n/a"
            for r in got
        ]
        median = f"{statistics.median(shares):.1f} %" if shares else "n/a"
        outside = [n for r in got if r is not None for n in [outside_count(r)] if n is not None]
        rows.append(
            f"| {name} | {' | '.join(cells)} | {median} | {max(outside) if outside else 'n/a'} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=60.0, help="log volume per configuration")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--more-seeds",
        default="",
        help="comma-separated seeds to run every configuration on as well (a second table)",
    )
    ap.add_argument("--only", action="append", help="configuration name substring")
    ap.add_argument("--keep", action="store_true", help="keep the generated logs")
    ap.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    args = ap.parse_args(argv)
    results = run_rows(args, args.seed)
    by_seed = {args.seed: results}
    for seed in (int(x) for x in args.more_seeds.split(",") if x.strip()):
        by_seed[seed] = run_rows(args, seed)
    if len(by_seed) > 1:
        print(seeds_table(by_seed), flush=True)
    if args.write_docs:
        from bench_stitch import write_block

        header = (
            "| logs | traces | raw timestamps | Jaeger adjuster | clock model | stitch "
            "| true offsets | largest offset error | callee records outside the call |"
        )
        rows = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results:

            def cell(key: str, r: Result = r) -> str:
                return f"{r.scores[key]:.1f} %" if key in r.scores else "n/a"

            outside_call: int | str | None = outside_count(r)
            raw_outside = r.violations.get("raw, callee records outside the call")
            if outside_call is not None and raw_outside is not None:
                outside_call = f"{outside_call} (raw timestamps: {raw_outside})"
            error = (
                "n/a"
                if math.isnan(r.worst_offset_error_us)
                else f"{r.worst_offset_error_us:.0f} µs"
            )
            rows.append(
                f"| {r.name} | {r.traces} | {cell('raw')} | {cell('jaeger')} | "
                f"{cell('clocks')} | {cell('stitch')} | {cell('true offsets')} | "
                f"{error} | "
                f"{'n/a' if outside_call is None else outside_call} |"
            )
        checked = [r for r in results if "stitch (position)" in r.violations]
        outside = "; ".join(
            f"{r.name}: stitch {r.violations['stitch (position)']} by position, "
            f"{r.violations['stitch (corrected time)']} by corrected time "
            f"(raw timestamps: {r.violations['raw']})"
            for r in checked
        )
        body = "\n".join(rows) + (
            f"\n\nShare of traces whose records come out in exactly the true order; "
            f"{args.size_mb:.0f} MB of generated logs per row, seed {args.seed}; "
            f"measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. *True "
            f"offsets*: the records sorted on the clocks the generator set, the "
            f"ceiling of any estimate; *largest offset error*: the stitch's worst "
            f"service against the truth (its summary gives offsets to the microsecond). The last "
            f"column counts callee records `stitch` places before the caller's line "
            f"that made the call or after the line that received the answer.\n\n"
            f"Callee records placed before their caller's client span starts or after "
            f"it ends, on logs with client span records: {outside or 'not measured'}.\n"
        )
        write_block("ordering", body)
        if len(by_seed) > 1:
            write_block(
                "ordering-seeds",
                seeds_table(by_seed)
                + f"\n\n`stitch`: share of traces exactly in true order, {args.size_mb:.0f} MB "
                f"of generated logs per row and seed; the last column is the most callee "
                f"records placed outside their caller's call on any seed.\n",
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
