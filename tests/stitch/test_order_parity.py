"""The ordering rules: stitch's numpy version and grep's plain one agree line
for line, and the order keeps each file's order and every linked call's bounds.

Generated logs are written as real files (JSON lines and text lines, times
to the microsecond, the millisecond or the second), scanned and grouped as
``stitch`` does, and ordered both ways with the same clock models.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtrace.stitch._clocks import ClockModel
from logtrace.stitch._correct import apply_clocks
from logtrace.stitch._grep_order import order_matches
from logtrace.stitch._grep_search import Match
from logtrace.stitch._group import group
from logtrace.stitch._model import Source
from logtrace.stitch._order import order
from logtrace.stitch._scan import plan_tasks, scan
from logtrace.stitch._tree import build_tree

BASE = 1_795_000_000.0  # 2026-11-18, a whole second

FORMATS = ("us", "ms", "s", "text_s")


def _stamp(t: float, form: str) -> str:
    """``t`` written as a service of that resolution writes it (truncated)."""
    dt = datetime.fromtimestamp(t, UTC)
    if form == "us":
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if form == "ms":
        return dt.strftime("%Y-%m-%d %H:%M:%S,") + f"{dt.microsecond // 1000:03d}"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Span:
    id: str
    service: int
    parent: str | None
    kind: str | None = None
    """Span record kind, if the span writes one."""
    start: float = 0.0
    end: float = 0.0
    response: float | None = None
    lines: list[float] = field(default_factory=list)


@dataclass
class Generated:
    files: list[list[str]]
    services: list[str]
    formats: list[str]
    file_of_service: list[list[int]]
    offsets: dict[str, float]


@st.composite
def generated(draw: st.DrawFn, consistent: bool = False) -> Generated:
    n_services = draw(st.integers(2, 4))
    services = [f"svc{i}" for i in range(n_services)]
    file_of_service = [[] for _ in services]  # type: list[list[int]]
    formats: list[str] = []
    for s in range(n_services):
        for _ in range(draw(st.integers(1, 2))):
            file_of_service[s].append(len(formats))
            formats.append(draw(st.sampled_from(FORMATS)))
    files: list[list[tuple[float, int, str]]] = [[] for _ in formats]
    counter = 0
    for t in range(draw(st.integers(1, 3))):
        trace = f"{t + 1:032x}"
        root_svc = draw(st.integers(0, n_services - 1))
        root_start = BASE + draw(st.floats(0, 2.0))
        spans = [
            Span(f"{counter + 1:016x}", root_svc, None, "server", root_start, root_start + 0.05)
        ]
        counter += 1
        for _ in range(draw(st.integers(0, 5))):
            up = draw(st.sampled_from(spans))
            mode = draw(st.sampled_from(("client", "direct", "internal", "queue")))
            width = up.end - up.start
            a = up.start + width * draw(st.floats(0.05, 0.45))
            b = up.start + width * draw(st.floats(0.55, 0.95))
            if not consistent:
                a, b = sorted(
                    (
                        up.start + draw(st.floats(-0.01, 0.06)),
                        up.start + draw(st.floats(-0.01, 0.06)),
                    )
                )
            counter += 1
            if mode == "internal":
                spans.append(Span(f"{counter:016x}", up.service, up.id, "internal", a, b))
                continue
            if mode == "queue":
                # A message: its consumer runs after the send, however much later.
                producer = Span(f"{counter:016x}", up.service, up.id, "producer", a, a + 0.001)
                counter += 1
                later = a + draw(st.floats(0.0 if consistent else -0.01, 0.2))
                consumer_svc = draw(
                    st.sampled_from([s for s in range(n_services) if s != up.service])
                )
                consumer = Span(
                    f"{counter:016x}", consumer_svc, producer.id, "consumer", later, later + 0.01
                )
                spans += [producer, consumer]
                continue
            callee_svc = draw(st.sampled_from([s for s in range(n_services) if s != up.service]))
            caller = up
            if mode == "client":
                client = Span(f"{counter:016x}", up.service, up.id, "client", a, b)
                spans.append(client)
                counter += 1
                caller = client
            inner_a = a + (b - a) * draw(st.floats(0.05, 0.3))
            inner_b = a + (b - a) * draw(st.floats(0.7, 0.95))
            if not consistent:
                inner_a, inner_b = sorted(
                    (a + draw(st.floats(-0.01, 0.05)), a + draw(st.floats(-0.01, 0.05)))
                )
            callee = Span(
                f"{counter:016x}",
                callee_svc,
                caller.id,
                draw(st.sampled_from(("server", None))),
                inner_a,
                inner_b,
            )
            if draw(st.booleans()):
                callee.response = (inner_b - inner_a) * 1000 * draw(st.floats(0.3, 1.0))
            spans.append(callee)
        for sp in spans:
            n_lines = draw(st.integers(0 if sp.kind == "client" else 1, 3))
            times = sorted(
                sp.start + (sp.end - sp.start) * draw(st.floats(0, 1)) for _ in range(n_lines)
            )
            if sp.response is not None and draw(st.booleans()):
                # background work after the answer, before the application returned
                times.append(
                    sp.start + sp.response / 1000 + (sp.end - sp.start - sp.response / 1000) / 2
                )
            f = draw(st.sampled_from(file_of_service[sp.service]))
            for x in times:
                files[f].append(
                    (x, f, _line(formats[f], services[sp.service], trace, sp, x, None, draw))
                )
            if sp.kind is not None:
                rec = _line(formats[f], services[sp.service], trace, sp, sp.end, sp.kind, draw)
                files[f].append((sp.end, f, rec))
    for f, rows in enumerate(files):
        rows.sort(key=lambda r: r[0])
        if not consistent and len(rows) > 2 and draw(st.booleans()):
            i = draw(st.integers(0, len(rows) - 2))
            rows[i], rows[i + 1] = rows[i + 1], rows[i]  # a thread raced to the log
        if draw(st.booleans()):
            rows.insert(draw(st.integers(0, len(rows))), (math.nan, f, "no trace here"))
    offsets = {}
    if not consistent:
        offsets = {s: draw(st.sampled_from((0.0, 0.0, 0.004, -0.02))) for s in services}
    return Generated(
        [[r[2] for r in rows] for rows in files], services, formats, file_of_service, offsets
    )


def _line(
    form: str, service: str, trace: str, sp: Span, t: float, kind: str | None, draw: st.DrawFn
) -> str:
    stamp = _stamp(t, "us" if form == "text_s" and kind else form)
    if form == "text_s" and kind is None:
        when = datetime.fromtimestamp(t, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        return f'127.0.0.1 - - [{when}] "GET / HTTP/1.1" 200 trace_id={trace} span_id={sp.id}'
    record: dict[str, object] = {
        "timestamp": stamp if draw(st.integers(0, 9)) else None,
        "service": service,
        "message": "m",
    }
    if record["timestamp"] is None:
        del record["timestamp"]
    record.update(trace_id=trace, span_id=sp.id, parent_span_id=sp.parent)
    if kind is not None:
        record["timestamp"] = stamp
        record.update(
            {
                "span.kind": kind,
                "span.start": _stamp(sp.start, "us"),
                "duration_ms": round((sp.end - sp.start) * 1000, 3),
            }
        )
        if sp.response is not None and kind == "server":
            record["response_ms"] = round(sp.response, 3)
    return json.dumps(record)


def _write(gen: Generated, root: Path) -> list[Source]:
    sources = []
    for f, lines in enumerate(gen.files):
        svc = next(s for s, fs in enumerate(gen.file_of_service) if f in fs)
        path = root / f"{gen.services[svc]}-{f}.log"
        path.write_text("".join(line + "\n" for line in lines))
        sources.append(Source(str(path), str(path)))
    return sources


def _both(
    gen: Generated, root: Path
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], object, object]:
    sources = _write(gen, root)
    clocks = {s: ClockModel(offset_s=o) for s, o in gen.offsets.items()}
    table = group(sources, scan(plan_tasks(sources, 1), str(root), 1))
    tree = build_tree(table)
    corrected = apply_clocks(table, clocks)
    ordered = order(table, corrected, tree, clocks)
    rows = table.rows
    stitched = [(int(table.file[i]), int(rows["line"][i])) for i in ordered.rows.tolist()]
    matches = []
    for f, lines in enumerate(gen.files):
        offset = 0
        for n, line in enumerate(lines, 1):
            matches.append(Match(f, n, offset, line.encode()))
            offset += len(line) + 1
    names = [s.name for s in sources]
    grepped = [(m.file, m.line) for m in order_matches(matches, names, names, clocks)]
    return stitched, grepped, table, ordered


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(generated())
def test_grep_orders_as_stitch_does(gen: Generated) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stitched, grepped, _, _ = _both(gen, Path(tmp))
    assert grepped == stitched


@SETTINGS
@given(generated())
def test_each_file_keeps_its_order(gen: Generated) -> None:
    """A trace's lines of one file come out in line order."""
    with tempfile.TemporaryDirectory() as tmp:
        stitched, _, table, _ = _both(gen, Path(tmp))
    trace_of = {
        (int(f), int(n)): int(t)
        for f, n, t in zip(table.file, table.rows["line"], table.rows["trace"], strict=True)  # type: ignore[attr-defined]
    }
    seen: dict[tuple[int, int], int] = {}
    for f, n in stitched:
        key = (f, trace_of[(f, n)])
        assert n > seen.get(key, 0)
        seen[key] = n


@SETTINGS
@given(generated(consistent=True))
def test_a_callee_stays_inside_its_callers_call(gen: Generated) -> None:
    """On consistent logs with a shared clock: a callee's lines before the
    answer come after every caller line written before the send and before
    every caller line written after the answer."""
    with tempfile.TemporaryDirectory() as tmp:
        stitched, _, table, _ = _both(gen, Path(tmp))
        _check_calls(gen, table, stitched)


_SLACK = {"us": 0.0, "ms": 1e-3, "s": 1.0, "text_s": 1.0}


def _check_calls(gen: Generated, table: object, stitched: list[tuple[int, int]]) -> None:
    from logtrace.stitch._correct import find_calls
    from logtrace.stitch._model import KIND_CLIENT, SPAN_RECORD, Table
    from logtrace.stitch._precision import file_resolution, resolution

    assert isinstance(table, Table)
    tree = build_tree(table)
    rows = table.rows
    position = {key: n for n, key in enumerate(stitched)}
    pos = np.array(
        [position[(int(f), int(ln))] for f, ln in zip(table.file, rows["line"], strict=True)]
    )
    # A line's time lasts what its format writes, or longer where its file looks
    # coarser to the stitcher (microsecond times that all fall on whole seconds).
    found = [file_resolution(src.path) for src in table.sources]
    slack = np.array(
        [
            max(_SLACK[gen.formats[f]], resolution(float(t), found[f]))
            for f, t in zip(table.file.tolist(), table.rows["ts"].tolist(), strict=True)
        ]
    )
    calls = find_calls(table, tree, hops=True)
    span, ts, flags = rows["span"], rows["ts"], rows["flags"]
    for p, x, queued in zip(
        calls.caller.tolist(), calls.callee.tolist(), calls.queued.tolist(), strict=True
    ):
        send = tree.start[p]
        own = np.flatnonzero((span == p) & ~np.isnan(ts))
        receive = (
            (ts[own] + slack[own]).max() if len(own) else np.inf
        )  # a time to the second ends later
        callee_rows = np.flatnonzero(span == x)
        records = callee_rows[(flags[callee_rows] & SPAN_RECORD) != 0]
        if len(records):
            # Lines at or after the callee's span record ran after the answer.
            callee_rows = callee_rows[~(ts[callee_rows] >= ts[records].max())]
        if not len(callee_rows):
            continue
        caller_side = span == p
        if (tree.client[p] or queued) and tree.parent[p] >= 0:
            caller_side |= span == tree.parent[p]
        caller_rows = np.flatnonzero(caller_side & ~np.isnan(ts) & ((flags & SPAN_RECORD) == 0))
        before = caller_rows[ts[caller_rows] + slack[caller_rows] < send]
        after = caller_rows[ts[caller_rows] > receive]
        if len(before):
            assert pos[callee_rows].min() > pos[before].max()
        if len(after) and not queued:  # a message's consumer may run after the answer
            assert pos[callee_rows].max() < pos[after].min()
        client_record = np.flatnonzero(
            (span == p) & ((flags & (SPAN_RECORD | KIND_CLIENT)) == (SPAN_RECORD | KIND_CLIENT))
        )
        if len(client_record) and slack[client_record].max() == 0:
            # The record of the answer (when its time is a point) follows the callee.
            assert pos[callee_rows].max() < pos[client_record].min()


def _record(service: str, span: int, parent: int | None, **fields: object) -> str:
    line: dict[str, object] = {
        "service": service,
        "message": "m",
        "trace_id": "0" * 31 + "1",
        "span_id": f"{span:016x}",
        "parent_span_id": None if parent is None else f"{parent:016x}",
    }
    line.update(fields)
    return json.dumps(line)


def _kind(kind: str, start_ms: float, end_ms: float) -> dict[str, object]:
    def at(ms: float) -> str:
        return datetime.fromtimestamp(1795000000 + ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return {
        "timestamp": at(end_ms),
        "span.kind": kind,
        "span.start": at(start_ms),
        "duration_ms": round(end_ms - start_ms, 3),
    }


def test_a_consumer_under_a_producer_inside_a_call_may_run_after_its_answer() -> None:
    """A consumer (5) of a message its producer (4) sent inside a call (2 ->
    3) runs when the queue delivers, after that call's answer as likely as
    not. Kept before the answer, it held every line before it in its file
    there too: the record of a later client span (6) came out before its
    callee's lines (7). Found by the property test above."""
    svc0 = [
        _record("svc0", 1, None),
        _record("svc0", 2, 1, **_kind("client", 12.5, 31.25)),
        _record("svc0", 6, 1, **_kind("client", 12.5, 37.5)),
        _record("svc0", 1, None, **_kind("server", 0.0, 50.0)),
        _record("svc0", 5, 4),
        _record("svc0", 5, 4, **_kind("consumer", 144.531, 154.531)),
    ]
    svc1 = [
        _record("svc1", 3, 2),
        _record("svc1", 4, 3),
        _record("svc1", 4, 3, **_kind("producer", 19.531, 20.531)),
        _record("svc1", 3, 2, **_kind("server", 17.188, 26.562)),
    ]
    svc1_b = [_record("svc1", 7, 6), _record("svc1", 7, 6, **_kind("server", 18.75, 31.25))]
    gen = Generated([svc0, svc1, svc1_b], ["svc0", "svc1"], ["us"] * 3, [[0], [1, 2]], {})
    with tempfile.TemporaryDirectory() as tmp:
        stitched, grepped, table, _ = _both(gen, Path(tmp))
    _check_calls(gen, table, stitched)
    assert grepped == stitched
    assert stitched.index((0, 3)) > stitched.index((2, 2))  # 6's record after 7's


def _ms(ms: float) -> str:
    """A time written to the millisecond, as logging's ``asctime`` writes it."""
    return datetime.fromtimestamp(1795000000 + ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]


def _server_ms(start_ms: float, duration_ms: float) -> dict[str, object]:
    """A span record whose own time names the millisecond, its start the microsecond."""
    fields = _kind("server", start_ms, start_ms + duration_ms)
    fields["timestamp"] = _ms(start_ms + duration_ms)
    return fields


@pytest.mark.parametrize(
    ("svc0_lines", "t7", "send8", "answer8", "end7"),
    [
        # 9's record (its start to the microsecond) before 5's line, both in millisecond 22
        (
            [(9, 8, None), (9, 8, _server_ms(22.485, 0.282)), (5, 4, {"timestamp": _ms(22.9)})],
            22.061,
            22.343,
            22.908,
            23.190,
        ),
        # 9's line without a time before 5's line of millisecond 21: 9 started at 21.680
        (
            [(9, 8, None), (5, 4, {"timestamp": _ms(21.9)}), (9, 8, _server_ms(21.680, 0.396))],
            21.086,
            21.482,
            22.274,
            22.669,
        ),
        # 9's line of millisecond 32 (no record) before 5's: 9 began after 8 sent at 32.428
        (
            [(9, 8, {"timestamp": _ms(32.5)}), (5, 4, {"timestamp": _ms(32.9)})],
            32.043,
            32.428,
            33.197,
            33.581,
        ),
    ],
)
def test_a_callers_line_written_after_a_call_back_into_it_started_bounds_nothing(
    svc0_lines: list[tuple[int, int, dict[str, object] | None]],
    t7: float,
    send8: float,
    answer8: float,
    end7: float,
) -> None:
    """svc1 calls svc0 (4 -> 5), which calls svc1 (5 -> 7, no client span),
    which calls svc0 back (8 -> 9). svc0 writes to the millisecond: 5's line
    in the millisecond 7 started in may have come before 7 started, so it
    bounded 7's lines from below; yet a line of 9 came before it in svc0's
    file, and 9 ran inside 7. A caller's line is no earlier than the lines
    before it in its file, nor than the starts their spans and calls state.
    Found by the property test above."""
    svc0 = [_record("svc0", 5, 4)] + [
        _record("svc0", span, parent, **(fields or {})) for span, parent, fields in svc0_lines
    ]
    svc0.append(_record("svc0", 5, 4, **_server_ms(13.0, 25.0)))
    svc1 = [
        _record("svc1", 3, None),
        _record("svc1", 7, 5, timestamp=_kind("x", t7, t7)["timestamp"]),
        _record("svc1", 8, 7, **_kind("client", send8, answer8)),
        _record("svc1", 7, 5, **_kind("server", t7, end7), response_ms=round(end7 - t7, 3)),
        _record("svc1", 4, 3, **_kind("client", 12.5, 40.0)),
        _record("svc1", 3, None, **_kind("server", 0.0, 50.0)),
    ]
    gen = Generated([svc0, svc1], ["svc0", "svc1"], ["ms", "us"], [[0], [1]], {})
    with tempfile.TemporaryDirectory() as tmp:
        stitched, grepped, table, _ = _both(gen, Path(tmp))
    _check_calls(gen, table, stitched)
    assert grepped == stitched
