"""The log generator behind :func:`logtrace.testing.generate` (see the package's docstring)."""

from __future__ import annotations

import gzip
import json
import os
import random
import time
from dataclasses import dataclass, field

from ._config import SynthConfig, SynthResult
from ._line_shapes import NOISE, corrupt_line, foreign_line, parentless_line

__all__ = ["SynthConfig", "SynthResult", "generate"]

_NAMES = (
    "gateway",
    "users",
    "orders",
    "inventory",
    "payments",
    "postgres",
    "redis",
    "search",
    "catalog",
    "auth",
    "billing",
    "notify",
)
_LEAF_NAMES = ("postgres", "redis")
_ROUTES = ("/{r}", "/{r}/{{id}}", "/{r}/{{id}}/items", "/{r}/search")
_METHODS = ("GET", "GET", "GET", "POST", "PUT")


@dataclass(slots=True)
class _Service:
    name: str
    index: int
    calls: list[int]
    leaf: bool
    offset: float
    drift: float
    routes: list[tuple[str, str, list[list[int]]]] = field(default_factory=list)
    """(method, route, plan): the plan is a list of steps, each a list of
    callee indexes called in parallel (one element: a plain call)."""
    out: list[tuple[int, int, str]] = field(default_factory=list)
    """(true time in µs, trace number or -1, line)."""
    text: bool = False
    """Writes plain-text lines only, without span records."""

    @property
    def offset_us(self) -> int:
        return round(self.offset * 1e6)


_iso_cache: dict[int, str] = {}


def _iso(us: int) -> str:
    """ISO 8601 UTC with microseconds (no zone); the per-second prefix is cached."""
    sec, frac = divmod(us, 1_000_000)
    prefix = _iso_cache.get(sec)
    if prefix is None:
        if len(_iso_cache) > 100_000:
            _iso_cache.clear()
        prefix = _iso_cache[sec] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{prefix}.{frac:06d}"


def _build_graph(cfg: SynthConfig, rng: random.Random) -> list[_Service]:
    n = max(2, cfg.services)
    names = [_NAMES[i] if i < len(_NAMES) else f"svc{i}" for i in range(n)]
    n_leaves = max(1, n // 5)
    # Database-like services last: they are the leaves of the call graph.
    if n <= len(_NAMES):
        leaves = [x for x in _NAMES if x in _LEAF_NAMES][:n_leaves]
        middle = [x for x in _NAMES if x not in _LEAF_NAMES][: n - len(leaves)]
        names = middle + leaves
    skew = cfg.skew_ms / 1000
    drift = cfg.drift_ppm * 1e-6
    services = [
        _Service(
            name,
            i,
            [],
            i >= n - n_leaves,
            round(rng.uniform(-skew, skew), 6),
            rng.uniform(-drift, drift),
        )
        for i, name in enumerate(names)
    ]
    first_leaf = n - n_leaves
    for s in services[1 : 1 + cfg.text_services]:
        s.text = True
    for s in services[:first_leaf]:
        later = list(range(s.index + 1, first_leaf))
        if s.index == 0:
            picks = later[:2] if len(later) >= 2 else later
        else:
            picks = rng.sample(later, min(len(later), rng.choice((0, 1, 1, 2))))
        s.calls = [*picks, rng.randrange(first_leaf, n)]
    # Every non-gateway service needs a caller.
    called = {c for s in services for c in s.calls}
    for s in services[1:first_leaf]:
        if s.index not in called:
            services[rng.randrange(0, s.index)].calls.insert(0, s.index)
    for s in services:
        resource = s.name if s.index else "api"
        for k in range(3):
            method = rng.choice(_METHODS)
            route = rng.choice(_ROUTES).format(r=resource)
            plan: list[list[int]] = []
            if s.calls:
                callees = [c for c in s.calls if rng.random() < 0.85] or s.calls[:1]
                if s.index == 0 and len(callees) > 1 and k != 2:
                    plan.append(callees)  # gateway fans out in parallel
                else:
                    plan.extend([c] for c in callees)
                if rng.random() < 0.3:
                    plan.append([callees[-1]])
            s.routes.append((method, route, plan))
    return services


@dataclass(slots=True)
class _Gen:
    cfg: SynthConfig
    rng: random.Random
    services: list[_Service]
    trace_ids: list[str] = field(default_factory=list)
    span_counter: int = 0
    delay_base: dict[tuple[int, int], float] = field(default_factory=dict)
    size: int = 0
    used: set[int] = field(default_factory=set)
    """True times (µs) taken in the current trace: no two records share one."""
    parents: list[dict[str, str | None]] = field(default_factory=list)
    """Per trace: each span's parent span (the truth logs without parent IDs lack)."""

    def span_id(self) -> str:
        return "%016x" % (self.rng.getrandbits(64) or 1)

    def local(self, s: _Service, t_us: int) -> str:
        """``t_us`` (true µs) as ``s``'s clock shows it."""
        local = t_us + s.offset_us
        if s.drift:
            local += round(s.drift * (t_us - self.cfg.start * 1e6))
        return _iso(local)

    def slot(self, t: float) -> int:
        """A free true microsecond at or just after ``t`` in this trace.

        Records of one trace never share a microsecond, so the true order is
        always knowable from microsecond timestamps and exact clocks.
        """
        t_us = round(t * 1e6)
        used = self.used
        while t_us in used:
            t_us += 1
        used.add(t_us)
        return t_us

    def delay(self, a: int, b: int) -> float:
        """One-way network delay: a per-link floor plus a long-ish tail."""
        base = self.delay_base.get((a, b))
        if base is None:
            # Same path both ways, give or take a few microseconds.
            link = self.delay_base.get((b, a))
            if link is None:
                link = self.rng.uniform(0.00015, 0.0004)
            skew = self.cfg.asymmetry_us / 2e6
            base = self.delay_base[(a, b)] = link + self.rng.uniform(-skew, skew)
        return base + self.rng.expovariate(3000.0)

    def line(
        self,
        s: _Service,
        t: float,
        trace: int,
        level: str,
        event: str,
        span: str,
        parent: str | None,
        extra: str = "",
    ) -> None:
        """An ordinary log record, mostly logtrace JSON, sometimes foreign."""
        t_us = self.slot(t)
        ts = self.local(s, t_us)
        tid = self.trace_ids[trace]
        rng = self.rng
        if not self.cfg.parent_ids:
            text = parentless_line(s.index % 3, s.name, ts, level, event, tid, span)
        elif s.text:
            text = f"{ts}Z {level.upper()} [{s.name}] {event} trace_id={tid} span_id={span}" + (
                "" if parent is None else f" parent_span_id={parent}"
            )
        elif rng.random() < self.cfg.foreign_rate:
            text = foreign_line(rng.randrange(4), s.name, ts, level, event, tid, span)
        else:
            p = "null" if parent is None else f'"{parent}"'
            text = (
                f'{{"timestamp": "{ts}Z", "level": "{level.upper()}", "service": "{s.name}", '
                f'"logger": "{s.name}.app", "message": "{event}", "trace_id": "{tid}", '
                f'"span_id": "{span}", "parent_span_id": {p}{extra}}}'
            )
        self.size += len(text) + 1
        s.out.append((t_us, trace, text))

    def span_record(
        self,
        s: _Service,
        kind: str,
        t0: float,
        t1: float,
        trace: int,
        span: str,
        parent: str | None,
        name: str,
        status: int,
        attrs: str,
    ) -> None:
        if s.text or not self.cfg.parent_ids:
            return  # plain-text services write no span records; span records name the parent
        error = status >= 500
        level = "ERROR" if error else "INFO"
        p = "null" if parent is None else f'"{parent}"'
        err = ', "error.type": "' + str(status) + '"' if error else ""
        dur = round((t1 - t0) * (1 + s.drift) * 1000, 3)
        t_us = self.slot(t1)
        text = (
            f'{{"timestamp": "{self.local(s, t_us)}Z", "level": "{level}", '
            f'"service": "{s.name}", "logger": "logtrace.span", "message": "{kind} {name}", '
            f'"trace_id": "{self.trace_ids[trace]}", "span_id": "{span}", '
            f'"parent_span_id": {p}, "span.kind": "{kind}", "span.name": "{name}", '
            f'"span.start": "{self.local(s, round(t0 * 1e6))}Z", "duration_ms": {dur}, '
            f'"http.response.status_code": {status}{attrs}{err}}}'
        )
        self.size += len(text) + 1
        s.out.append((t_us, trace, text))

    def handle(
        self, s: _Service, t: float, trace: int, parent: str | None, depth: int, fail: bool
    ) -> tuple[float, int]:
        """Serve one request arriving at true time ``t``; returns (end, status)."""
        rng = self.rng
        t_start = t
        method, route, plan = s.routes[rng.randrange(len(s.routes))]
        span = self.span_id()
        self.parents[trace][span] = parent
        path = route.replace("{id}", str(rng.randrange(1, 100_000)))
        t += rng.uniform(0.00002, 0.0001)
        self.line(s, t, trace, "info", f"request received {method} {path}", span, parent)
        status = 200
        if s.leaf:
            t += rng.uniform(0.00005, 0.0002)
            self.line(
                s, t, trace, "debug", "query start", span, parent, f', "db.system": "{s.name}"'
            )
            t += rng.lognormvariate(-7.0, 0.8)
            if fail:
                status = 503
                self.line(s, t, trace, "error", "query failed: connection reset", span, parent)
            else:
                self.line(
                    s,
                    t,
                    trace,
                    "debug",
                    "query done",
                    span,
                    parent,
                    f', "rows": {rng.randrange(0, 50)}',
                )
        else:
            steps = plan
            if any(len(step) > 1 for step in plan) and rng.random() >= self.cfg.parallel_rate:
                steps = [[c] for step in plan for c in step]
            for step in steps:
                t += rng.uniform(0.00003, 0.0008)
                t, ok = self.call_group(s, t, trace, span, parent, step, depth)
                if not ok:
                    status = 502
                    t += rng.uniform(0.00002, 0.0001)
                    self.line(s, t, trace, "error", "upstream failed, giving up", span, parent)
                    break
            t += rng.uniform(0.00002, 0.0003)
        if status == 200:
            self.line(s, t, trace, "info", "request completed", span, parent)
        t += rng.uniform(0.00001, 0.00005)
        attrs = (
            f', "http.request.method": "{method}", "url.path": "{path}", '
            f'"http.route": "{route}", "server.address": "{s.name}", "server.port": 8080'
        )
        self.span_record(
            s, "server", t_start, t, trace, span, parent, f"{method} {route}", status, attrs
        )
        return t, status

    def call_group(
        self,
        s: _Service,
        t: float,
        trace: int,
        span: str,
        parent: str | None,
        callees: list[int],
        depth: int,
    ) -> tuple[float, bool]:
        """Call ``callees`` in parallel (one: a plain call), retrying once on 5xx."""
        rng = self.rng
        ends: list[float] = []
        ok = True
        for i, c in enumerate(callees):
            start = t + i * rng.uniform(0.00001, 0.00006)
            end, good = self.call(s, start, trace, span, parent, self.services[c], depth)
            if not good:
                t_retry = end + rng.uniform(0.00003, 0.0002)
                self.line(
                    s, t_retry, trace, "warning", f"retrying {self.services[c].name}", span, parent
                )
                end, good = self.call(
                    s, t_retry + 0.00002, trace, span, parent, self.services[c], depth, no_fail=True
                )
            ok = ok and good
            ends.append(end)
        return max(ends), ok

    def call(
        self,
        s: _Service,
        t: float,
        trace: int,
        span: str,
        parent: str | None,
        callee: _Service,
        depth: int,
        no_fail: bool = False,
    ) -> tuple[float, bool]:
        rng = self.rng
        self.line(s, t, trace, "debug", f"calling {callee.name}", span, parent)
        t0 = t + rng.uniform(0.000005, 0.00003)
        # Without client spans the callee's parent is the caller's own span.
        client = (
            self.span_id() if self.cfg.client_spans and self.cfg.parent_ids and not s.text else span
        )
        fail = not no_fail and rng.random() < (0.04 if callee.leaf else 0.01)
        arrive = t0 + self.delay(s.index, callee.index)
        done, status = self.handle(callee, arrive, trace, client, depth + 1, fail)
        t1 = done + self.delay(callee.index, s.index)
        if client != span:
            method = "GET"
            attrs = (
                f', "http.request.method": "{method}", '
                f'"url.full": "http://{callee.name}:8080/", '
                f'"server.address": "{callee.name}", "server.port": 8080'
            )
            self.span_record(
                s, "client", t0, t1, trace, client, span, f"{method} {callee.name}", status, attrs
            )
        t1 += rng.uniform(0.00001, 0.00006)
        level = "info" if status < 500 else "warning"
        self.line(s, t1, trace, level, f"{callee.name} responded {status}", span, parent)
        return t1, status < 500


def generate(out_dir: str, cfg: SynthConfig | None = None) -> SynthResult:
    """Write one log per service (some rotated) into ``out_dir/logs``, and
    ``out_dir/truth.jsonl`` beside it (outside, so that stitching the log
    directory does not read the answers)."""
    cfg = cfg or SynthConfig()
    rng = random.Random(cfg.seed)
    services = _build_graph(cfg, rng)
    gen = _Gen(cfg, rng, services)
    gateway = services[0]
    t = cfg.start
    n = 0
    while (cfg.traces is None and gen.size < cfg.target_bytes) or (
        cfg.traces is not None and n < cfg.traces
    ):
        gen.trace_ids.append("%032x" % (rng.getrandbits(128) or 1))
        gen.used.clear()
        gen.parents.append({})
        gen.handle(gateway, t, n, None, 0, False)
        n += 1
        t += rng.expovariate(cfg.rate_per_s)
    t_end = t + 1.0

    log_dir = os.path.join(out_dir, "logs")
    os.makedirs(log_dir, exist_ok=True)
    files: list[str] = []
    truth: list[list[tuple[int, int, int]]] = [[] for _ in range(n)]
    records = 0
    written = 0
    for s in services:
        extra = int(len(s.out) * cfg.noise_rate)
        for _ in range(extra):
            tt = round(rng.uniform(cfg.start, t_end) * 1e6)
            make = NOISE[rng.randrange(len(NOISE))]
            s.out.append((tt, -1, make(gen.local(s, tt), s.name)))
        for _ in range(int(len(s.out) * cfg.corrupt_rate)):
            tt = round(rng.uniform(cfg.start, t_end) * 1e6)
            s.out.append((tt, -1, corrupt_line(rng, gen.local(s, tt))))
        s.out.sort(key=_first)
        lines = s.out
        s.out = []
        header = [
            f"INFO:     Started server process [{rng.randrange(100, 60000)}]",
            "INFO:     Waiting for application startup.",
        ]
        if cfg.rotate and s.index % 2 == 0 and len(lines) >= 3:
            third = len(lines) // 3
            parts = [
                (f"{s.name}.log.2.gz", lines[:third]),
                (f"{s.name}.log.1", lines[third : 2 * third]),
                (f"{s.name}.log", lines[2 * third :]),
            ]
        else:
            parts = [(f"{s.name}.log", lines)]
        for k, (name, part) in enumerate(parts):
            file_index = len(files)
            files.append(name)
            lead = header if k == 0 else []
            body = [*lead, *(text for _, _, text in part)]
            number = len(lead)
            for tt, trace, _ in part:
                number += 1
                if trace >= 0:
                    truth[trace].append((tt, file_index, number))
            records += len(part)
            data = ("\n".join(body) + "\n").encode("utf-8", "surrogateescape")
            written += len(data)
            path = os.path.join(log_dir, name)
            if name.endswith(".gz"):
                with gzip.open(path, "wb", compresslevel=1) as fh:
                    fh.write(data)
            else:
                with open(path, "wb") as fh:
                    fh.write(data)
    truth_path = os.path.join(out_dir, "truth.jsonl")
    offsets = {s.name: s.offset for s in services}
    drifts = {s.name: s.drift for s in services}
    with open(truth_path, "w", encoding="utf-8") as fh:
        head = {
            "files": files,
            "offsets_s": offsets,
            "drifts": drifts,
            "seed": cfg.seed,
            "skew_ms": cfg.skew_ms,
            "drift_ppm": cfg.drift_ppm,
            "client_spans": cfg.client_spans,
            "parent_ids": cfg.parent_ids,
            "start": cfg.start,
        }
        fh.write(json.dumps(head) + "\n")
        for i, recs in enumerate(truth):
            recs.sort()
            order = [[f, ln] for _, f, ln in recs]
            entry: dict[str, object] = {"trace_id": gen.trace_ids[i], "records": order}
            if not cfg.parent_ids:
                entry["parents"] = gen.parents[i]
            fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
    return SynthResult(
        files=[os.path.join(log_dir, f) for f in files],
        truth=truth_path,
        records=records,
        traces=n,
        bytes=written,
        offsets_s=offsets,
        drifts=drifts,
        services=[s.name for s in services],
    )


def _first(item: tuple[int, int, str]) -> int:
    return item[0]
