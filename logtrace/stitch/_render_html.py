"""Render for a browser: one self-contained HTML page, one block per trace.

Log lines are hostile input. Every piece of log text goes through
:func:`html_text` (control and bidirectional-override characters made
visible, then HTML-escaped), and nothing from the logs is ever placed inside
the page's script: the script reads the DOM. A Content-Security-Policy lets
only that script (by hash) run and forbids every fetch, so the page needs no
network and a mistake in escaping still could not run injected code.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Iterator
from typing import IO

import numpy as np

from ._group import RowLines
from ._marks import MARK_MEANINGS, MARKS, count_marks, span_marks
from ._model import ERROR, REASONS, Rendering
from ._outcomes import outcomes
from ._record_exception import Raised
from ._record_text import SHORT_LEVELS, escape, record_parts
from ._render_summary import summary_html
from ._timeline import Timeline, relative_ms, timeline

__all__ = ["html_text", "write_html"]

_MAX_TEXT = 10_000
"""Characters of one message shown; the rest is cut with a note (lines can be megabytes)."""

_MAX_EXCEPTION_LINES = 500
"""Lines of one traceback shown (the last ones)."""

_INVISIBLE = {c: f"\\u{c:04x}" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028]}
_INVISIBLE[0x2029] = "\\u2029"


def html_text(text: str, limit: int = _MAX_TEXT) -> str:
    """``text`` safe to place in HTML content or a quoted attribute."""
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text) - limit} more characters)"
    return html.escape(escape(text).translate(_INVISIBLE), quote=True)


_SCRIPT = """\
(function () {
  var q = document.getElementById("q"), err = document.getElementById("err");
  var count = document.getElementById("count");
  var blocks = Array.prototype.slice.call(document.querySelectorAll("details.trace"));
  var total = blocks.filter(function (d) { return d.getAttribute("data-trace"); }).length;
  var texts = blocks.map(function (d) { return d.textContent.toLowerCase(); });
  function apply(write) {
    var s = q.value.trim().toLowerCase(), e = err.checked, n = 0;
    blocks.forEach(function (d, i) {
      var show = (!s || texts[i].indexOf(s) >= 0) && (!e || d.classList.contains("err"));
      d.hidden = !show;
      if (show && d.getAttribute("data-trace")) { n++; }
    });
    count.textContent = n + " of " + total + " traces shown";
    if (s && n <= 20) { blocks.forEach(function (d) { if (!d.hidden) { d.open = true; } }); }
    if (write) {
      var h = [];
      if (s) { h.push("q=" + encodeURIComponent(q.value.trim())); }
      if (e) { h.push("errors=1"); }
      try {
        history.replaceState(null, "", h.length ? "#" + h.join("&") : location.pathname);
      } catch (x) { /* some viewers refuse; the filter still works */ }
    }
  }
  function fromHash() {
    var p = new URLSearchParams(location.hash.slice(1));
    q.value = p.get("q") || "";
    err.checked = p.get("errors") === "1";
    apply(false);
  }
  function openAll(v) { blocks.forEach(function (d) { if (!d.hidden) { d.open = v; } }); }
  q.addEventListener("input", function () { apply(true); });
  err.addEventListener("change", function () { apply(true); });
  document.getElementById("open").addEventListener("click", function () { openAll(true); });
  document.getElementById("close").addEventListener("click", function () { openAll(false); });
  window.addEventListener("hashchange", fromHash);
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "/" && document.activeElement !== q) { ev.preventDefault(); q.focus(); }
  });
  fromHash();
  document.documentElement.setAttribute("data-ready", "1");
})();
"""

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()

_STYLE = """\
:root{--bg:#fff;--fg:#1d2127;--dim:#6a737d;--line:#e4e7eb;--err:#c62828;--errbg:#fdecea;
--head:#f6f8fa;--bar:#eef1f4}
@media (prefers-color-scheme:dark){:root{--bg:#16181c;--fg:#d8dde3;--dim:#8b949e;
--line:#2b3038;--err:#ff6b6b;--errbg:#3a1d1d;--head:#1e2228;--bar:#252a31}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:13px/1.45 ui-monospace,
"SFMono-Regular",Menlo,Consolas,"DejaVu Sans Mono",monospace}
header{position:sticky;top:0;z-index:1;background:var(--head);border-bottom:1px solid var(--line);
padding:8px 14px}
h1{font-size:15px;margin:0 12px 0 0;display:inline}
.sum{color:var(--dim)}
.controls{margin-top:6px;display:flex;gap:10px;align-items:center;flex-wrap:wrap}
#q{font:inherit;padding:3px 6px;width:28em;max-width:100%;border:1px solid var(--line);
background:var(--bg);color:var(--fg);border-radius:4px}
button{font:inherit;padding:2px 8px;border:1px solid var(--line);background:var(--bg);
color:var(--fg);border-radius:4px;cursor:pointer}
#count{color:var(--dim)}
.legend{margin:6px 0 0;padding:0;list-style:none;display:flex;gap:12px;flex-wrap:wrap}
.legend small{color:var(--dim)}
main{padding:6px 14px 40px}
[hidden]{display:none!important}
details.trace{border:1px solid var(--line);border-radius:6px;margin:8px 0;overflow:hidden}
details.trace>summary{cursor:pointer;padding:5px 10px;background:var(--head);
list-style-position:inside}
details.err>summary{border-left:4px solid var(--err)}
.tid{font-weight:bold}
.when,.dur,.nrec{color:var(--dim);margin-left:10px}
.badge{margin-left:10px;color:#fff;background:var(--err);border-radius:8px;padding:0 7px}
.warn{margin-left:10px;color:#b26a00}
.svc{color:var(--c);font-weight:600}
.chip{margin-left:8px;border:1px solid var(--c);color:var(--c);border-radius:8px;padding:0 6px;
font-size:12px}
.rows{padding:2px 0}
.r{display:flex;align-items:baseline;gap:8px;padding:1px 10px;border-top:1px solid var(--line)}
.r.e{background:var(--errbg)}
.t{flex:0 0 7.5em;text-align:right;color:var(--dim);white-space:nowrap}
.bar{flex:0 0 9em;position:relative;height:9px;background:var(--bar);border-radius:2px;
align-self:center}
.bar i{position:absolute;top:1px;bottom:1px;background:var(--c);opacity:.55;border-radius:2px;
min-width:2px}
.bar b{position:absolute;top:-1px;bottom:-1px;width:2px;margin-left:-1px;background:var(--fg)}
.tree{flex:1 1 auto;min-width:0;display:flex;gap:8px;align-items:baseline}
.l{flex:0 0 3.6em;font-weight:600}
.r.e .l,.r.e .m{color:var(--err)}
.m{white-space:pre-wrap;overflow-wrap:anywhere;min-width:0;max-height:9.5em;overflow:auto}
.f{color:var(--dim);margin-left:6px}
.tag{color:#b26a00;margin-left:6px}
.x{padding:0 10px 2px;border-top:1px dashed var(--line)}
.x summary{cursor:pointer;color:var(--err)}
.x pre{margin:2px 0 4px;white-space:pre-wrap;overflow-wrap:anywhere;max-height:30em;overflow:auto}
.where{color:var(--dim)}
#summary{margin:8px 0 14px}
#summary h2{font-size:14px;margin:4px 0}
#summary h3{font-size:13px;margin:10px 0 2px}
#summary ul{margin:2px 0;padding-left:1.5em}
.outcomes{border-collapse:collapse;margin:4px 0}
.outcomes caption{text-align:left;color:var(--dim)}
.outcomes th,.outcomes td{padding:1px 10px;border-bottom:1px solid var(--line);text-align:right}
.outcomes th:first-child,.outcomes td:first-child{text-align:left}
.outcomes tr.all td{font-weight:600}
.note,.at{color:var(--dim)}
.exc{color:var(--err)}
.csvc{font-weight:600}
.reason{color:#b26a00}
"""


_PALETTE = (
    "#1f6fb4",
    "#2e9e3e",
    "#8a5cc2",
    "#d98200",
    "#138d9c",
    "#8c564b",
    "#c2449a",
    "#5b6b7a",
    "#9a9a12",
    "#3949ab",
)


def _colour(k: int) -> str:
    if k < len(_PALETTE):
        return _PALETTE[k]
    return f"hsl({(40 + k * 137.508) % 300 + 30:.0f} 60% 42%)"


def write_html(r: Rendering, out: IO[bytes]) -> None:
    """The selected traces (then the lines without a trace) as one HTML page."""
    for chunk in _page(r):
        out.write(chunk.encode("utf-8", errors="surrogateescape"))


def _page(r: Rendering) -> Iterator[str]:
    table = r.table
    rows = table.rows
    ordered = r.order.rows
    tl = timeline(r)
    services = table.services
    # By name order, from a palette without red (red means error): the same
    # service has the same colour everywhere on the page.
    rank = {name: k for k, name in enumerate(sorted(services))}
    colour = [f"--c:{_colour(rank[s])}" for s in services]
    traced = ordered[: r.order.n_traced]
    trace_col = rows["trace"][traced]
    n_traces = len(np.unique(trace_col))
    used = np.unique(rows["svc"][ordered]).tolist()
    shift = rows["ts"][ordered] - r.corrected[ordered]
    svc_of = rows["svc"][ordered]

    yield (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        f"style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>logtrace: {n_traces} traces</title>\n<style>{_STYLE}</style>\n"
        '<style id="services">'
    )
    yield "".join(f".s{i}{{{colour[i]}}}" for i in used)
    unattributed = len(ordered) - r.order.n_traced
    yield (
        "</style></head><body>\n<header><h1>logtrace</h1>"
        f'<span class="sum">{n_traces} traces, {len(traced)} records, {len(used)} services'
        f"{f', {unattributed} lines without a trace' if unattributed else ''}</span>\n"
        '<div class="controls"><input id="q" type="search" '
        'placeholder="filter: trace id, service or text (press /)" aria-label="filter">'
        '<label><input id="err" type="checkbox"> errors only</label>'
        '<button id="open" type="button">expand all</button>'
        '<button id="close" type="button">collapse all</button><span id="count"></span></div>\n'
        '<ul class="legend">'
    )
    for i in sorted(used, key=lambda s: services[s]):
        mine = shift[(svc_of == i) & ~np.isnan(shift)]
        clock = f" <small>clock {float(np.median(mine)) * 1e3:+.3f} ms</small>" if len(mine) else ""
        if services[i] in r.clock_notes:  # the offset applied and what the calls allow
            clock = f" <small>clock {html_text(r.clock_notes[services[i]])}</small>"
        yield f'<li class="svc s{i}">{html_text(services[i])}{clock}</li>'
    yield "</ul></header>\n<main>\n"
    if r.order.n_traced:
        yield summary_html(outcomes(r), count_marks(r), html_text)

    line_of = RowLines(r.table)
    try:
        yield from _blocks(r, tl, line_of, open_blocks=n_traces <= 20)
    finally:
        line_of.close()
    yield f"</main>\n<script>{_SCRIPT}</script>\n</body></html>\n"


def _blocks(r: Rendering, tl: Timeline, line_of: RowLines, open_blocks: bool) -> Iterator[str]:
    table = r.table
    rows = table.rows
    ordered = r.order.rows.tolist()
    trace_col = rows["trace"][r.order.rows]
    bounds = (np.flatnonzero(trace_col[1:] != trace_col[:-1]) + 1).tolist()
    starts = [0, *bounds]
    ends = [*bounds, len(ordered)]

    for lo, hi in zip(starts, ends, strict=True):
        if lo >= len(ordered):
            break
        block = ordered[lo:hi]
        trace = _trace(r, block[0])
        if trace < 0:
            yield _unattributed(r, block, line_of)
        else:
            yield _trace_block(r, tl, trace, block, line_of, open_blocks)


def _trace(r: Rendering, row: int) -> int:
    return int(r.table.rows["trace"][row])


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def _trace_block(
    r: Rendering,
    tl: Timeline,
    trace: int,
    block: list[int],
    line_of: RowLines,
    open_block: bool,
) -> str:
    table = r.table
    rows = table.rows
    start = float(tl.trace_start[trace])
    end = float(tl.trace_end[trace])
    lo, hi = float(tl.trace_lo[trace]), float(tl.trace_hi[trace])
    width = hi - lo if hi > lo else 0.0
    flags = rows["flags"][block]
    errors = int(np.count_nonzero(flags & ERROR))
    svcs = sorted(set(rows["svc"][block].tolist()), key=lambda s: table.services[s])
    tid = html_text(table.traces[trace], 200)
    out: list[str] = []
    marks = span_marks(r.tree)
    marked: dict[int, int] = {}
    for row in block:
        flag = int(rows["flags"][row])
        level, message, fields, raised = record_parts(line_of(row), flag)
        svc = int(rows["svc"][row])
        span = int(rows["span"][row])
        depth = int(r.tree.row_depth[row])
        ts = float(tl.shown[row])
        rel = relative_ms(ts - start)
        bar = ""
        if width > 0:
            parts = []
            s_start = float(tl.span_start[span]) if span >= 0 else float("nan")
            s_end = float(tl.span_end[span]) if span >= 0 else float("nan")
            title = ""
            if s_start == s_start and s_end == s_end:
                left = (s_start - lo) / width * 100
                parts.append(
                    f'<i style="left:{left:.2f}%;width:{(s_end - s_start) / width * 100:.2f}%"></i>'
                )
                title = (
                    f' title="span {html_text(table.spans[span], 200)}: {_ms(s_end - s_start)}'
                    f' from {_ms(s_start - start)}"'
                )
            if ts == ts:
                parts.append(f'<b style="left:{(ts - lo) / width * 100:.2f}%"></b>')
            bar = f'<span class="bar s{svc}"{title}>{"".join(parts)}</span>'
        else:
            bar = f'<span class="bar s{svc}"></span>'
        tag = ""
        if span >= 0 and marks[span] and span not in marked:
            mark = MARKS[marks[span]]
            marked[span] = int(marks[span])
            tag = f'<span class="tag" title="{html_text(MARK_MEANINGS[mark])}">[{mark}]</span>'
        extra = " ".join(
            f"{html_text(k, 200)}={html_text(str(v), 2000)}" for k, v in fields.items()
        )
        upper = level.upper()
        upper = SHORT_LEVELS.get(upper, upper)
        error = " e" if flag & ERROR else ""
        out.append(
            f'<div class="r{error}"><span class="t">{rel}</span>{bar}'
            f'<span class="tree" style="padding-left:{depth * 1.5:g}em">'
            f'<span class="svc s{svc}">{html_text(table.services[svc], 200)}</span>'
            f'<span class="l">{html_text(upper, 12)}</span>'
            f'<span class="m">{html_text(message)}'
            f"{f'<span class=f>{extra}</span>' if extra else ''}{tag}</span></span></div>\n"
        )
        if raised is not None:
            out.append(_exception(raised, depth))
    when = ""
    if start == start:
        when = f'<span class="when">{np.datetime64(round(start * 1e6), "us")}Z</span>'
    duration = (
        f'<span class="dur">{_ms(end - start)}</span>' if start == start and end == end else ""
    )
    chips = "".join(
        f'<span class="chip s{s}">{html_text(table.services[s], 200)}</span>' for s in svcs
    )
    badge = (
        f'<span class="badge">{errors} error{"s" if errors != 1 else ""}</span>' if errors else ""
    )
    counts = [list(marked.values()).count(k) for k in range(len(MARKS))]
    warn = "".join(
        f'<span class="warn">{n} {MARKS[k]} span{"s" if n != 1 else ""}</span>'
        for k, n in enumerate(counts)
        if k and n
    )
    return (
        f'<details class="trace{" err" if errors else ""}" data-trace="{tid}"'
        f'{" open" if open_block else ""}><summary><span class="tid">trace {tid}</span>'
        f'{when}{duration}<span class="nrec">{len(block)} records</span>{chips}{badge}{warn}'
        f'</summary>\n<div class="rows">\n{"".join(out)}</div></details>\n'
    )


def _exception(raised: Raised, depth: int) -> str:
    """The exception under its line, collapsed: its headline opens its traceback."""
    lines = raised.text().split("\n")[-_MAX_EXCEPTION_LINES:]
    headline = raised.headline() or lines[0]
    return (
        f'<div class="x" style="padding-left:{depth * 1.5 + 18:g}em"><details>'
        f"<summary>{html_text(headline.split(chr(10))[0], 2000)}</summary>"
        f"<pre>{chr(10).join(html_text(line, 2000) for line in lines)}</pre></details></div>\n"
    )


def _unattributed(r: Rendering, block: list[int], line_of: RowLines) -> str:
    table = r.table
    rows = table.rows
    out = []
    for row in block:
        _, message, _, raised = record_parts(line_of(row), int(rows["flags"][row]), as_written=True)
        where = f"{table.sources[int(table.file[row])].name}:{int(rows['line'][row])}"
        reason = REASONS[int(rows["reason"][row])]
        out.append(
            f'<div class="r"><span class="where">{html_text(where, 500)}</span>'
            f'<span class="reason">{html_text(reason)}</span>'
            f'<span class="m">{html_text(message)}</span></div>\n'
        )
        if raised is not None:  # the lines that continue it
            out.append(_exception(raised, 0))
    return (
        f'<details class="trace unattributed" data-trace=""><summary>'
        f'<span class="tid">lines without a trace</span>'
        f'<span class="nrec">{len(block)} lines</span></summary>\n'
        f'<div class="rows">\n{"".join(out)}</div></details>\n'
    )
