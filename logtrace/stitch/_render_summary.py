"""Render the run's outcomes (:mod:`._outcomes`) for people: as text for
``logtrace stitch --summary``, as HTML at the top of the report.

Operation names, services and messages come from the logs: text goes through
:func:`._record_text.escape`, HTML through :func:`html_text`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable

from ._marks import mark_explanations
from ._model import Failure, Operation, Outcomes
from ._outcomes import overall, percentile
from ._record_text import escape

__all__ = ["SHOWN", "duration", "summary_html", "summary_text"]

SHOWN = 20
"""Failing traces listed one by one (the earliest)."""
_OPERATIONS = 30
"""Operations in the table (the busiest); the rest are counted."""
_CAUSES = 20
_QUANTILES = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (1.0, "max"))
_STARTED = "the deepest span with an error whose children succeeded"


def duration(seconds: float) -> str:
    """A latency with three significant digits: ``0.532 ms``, ``53.2 ms``, ``5.32 s``."""
    if math.isnan(seconds):
        return "-"
    ms = seconds * 1e3
    if ms >= 1000:
        return f"{seconds:.3g} s" if seconds < 1000 else f"{seconds:.0f} s"
    if ms >= 100:
        return f"{ms:.0f} ms"
    return f"{ms:.3g} ms" if ms >= 1 else f"{ms:.3f} ms"


def _busiest(result: Outcomes) -> list[tuple[str, Operation]]:
    return sorted(result.operations.items(), key=lambda item: (-item[1].traces, item[0]))


def _failing_most(result: Outcomes) -> list[tuple[str, Operation]]:
    failing = [(name, op) for name, op in result.operations.items() if op.failed + op.recovered]
    return sorted(
        failing,
        key=lambda item: (-item[1].failed, -(item[1].failed + item[1].recovered), item[0]),
    )


def _causes(result: Outcomes) -> list[tuple[int, Failure]]:
    return sorted(
        ((cause.traces, cause.example) for cause in result.causes.values()),
        key=lambda item: (-item[0], item[1].service, item[1].span, item[1].exception),
    )


def _headline(failure: Failure) -> str:
    if failure.exception and failure.message:
        return f"{failure.exception}: {failure.message}"
    return failure.exception or failure.message or "error"


def _counts(total: Operation) -> str:
    ok = total.traces - total.failed - total.recovered
    return (
        f"{total.traces} trace{'s' if total.traces != 1 else ''}: {ok} ok, "
        f"{total.failed} failed, {total.recovered} recovered"
    )


def summary_text(result: Outcomes, marks: dict[str, int]) -> str:
    """The summary as plain text (log text escaped for a terminal)."""
    total = overall(result)
    out = [_counts(total), ""]
    busiest = _busiest(result)
    names = [escape(name) for name, _ in busiest[:_OPERATIONS]]
    width = max([len("operation"), *map(len, names)])
    out.append("Traces by outcome, per entry operation (latency of the entry span)")
    heads = "".join(f"{label:>10}" for _, label in _QUANTILES)
    out.append(f"  {'operation':<{width}}  traces      ok  failed  recovered{heads}")
    rows = [*zip(names, (op for _, op in busiest), strict=False), ("all", total)]
    for name, op in rows:
        ok = op.traces - op.failed - op.recovered
        values = "".join(f"{duration(percentile(op, q)):>10}" for q, _ in _QUANTILES)
        out.append(
            f"  {name:<{width}}  {op.traces:>6}  {ok:>6}  {op.failed:>6}  {op.recovered:>9}{values}"
        )
        if name != "all" and len(busiest) > _OPERATIONS and op is busiest[_OPERATIONS - 1][1]:
            out.append(f"  ({len(busiest) - _OPERATIONS} more operations)")
    failing = _failing_most(result)
    if failing:
        out += ["", "Operations that fail most"]
        for name, op in failing[:10]:
            bad = op.failed + op.recovered
            out.append(
                f"  {escape(name)}: {bad} of {op.traces} failing ({bad / op.traces:.0%}): "
                f"{op.failed} failed, {op.recovered} recovered"
            )
        out += ["", f"Where the errors started ({_STARTED})"]
        for count, example in _causes(result)[:_CAUSES]:
            where = f"  at {escape(example.where)}" if example.where else ""
            out.append(
                f"  {count:>6}  {escape(example.service)}  {escape(example.span) or '-'}  "
                f"{escape(_headline(example))}{where}"
            )
        if len(result.causes) > _CAUSES:
            out.append(f"  ({len(result.causes) - _CAUSES} more causes)")
        shown = result.failures[:SHOWN]
        label = "Failing traces" + (
            f" (the {len(shown)} earliest of {result.failing})"
            if result.failing > len(shown)
            else ""
        )
        out += ["", label]
        for failure in shown:
            out.extend(_failure_text(failure))
    explained = mark_explanations(marks)
    if explained:
        out += ["", "Marks"]
        out += [f"  {line}" for line in explained]
    return "\n".join(out) + "\n"


def _failure_text(failure: Failure) -> list[str]:
    answer = f" -> {escape(failure.entry)}" if failure.entry else " (entry answered)"
    place = f"{escape(failure.service)} {escape(failure.span)}".strip()
    where = f" at {escape(failure.where)}" if failure.where else ""
    return [
        f"  {escape(failure.trace)}  {escape(failure.operation)}{answer}",
        f"      started in {place}: {escape(_headline(failure))}{where}",
    ]


def summary_html(result: Outcomes, marks: dict[str, int], html_text: Callable[..., str]) -> str:
    """The summary as an HTML section (``html_text`` makes log text safe)."""
    total = overall(result)
    busiest = _busiest(result)
    out = [
        '<section id="summary"><h2>Summary</h2>',
        f'<p class="counts">{html.escape(_counts(total))}</p>',
        '<table class="outcomes"><caption>Traces by outcome, per entry operation '
        "(latency of the entry span)</caption><thead><tr><th>operation</th><th>traces</th>"
        "<th>ok</th><th>failed</th><th>recovered</th>"
        + "".join(f"<th>{label}</th>" for _, label in _QUANTILES)
        + "</tr></thead><tbody>",
    ]
    rows = [*((html_text(n, 500), op) for n, op in busiest[:_OPERATIONS]), ("all", total)]
    for name, op in rows:
        ok = op.traces - op.failed - op.recovered
        cls = ' class="all"' if op is total else ""
        out.append(
            f"<tr{cls}><td>{name}</td><td>{op.traces}</td><td>{ok}</td><td>{op.failed}</td>"
            f"<td>{op.recovered}</td>"
            + "".join(f"<td>{duration(percentile(op, q))}</td>" for q, _ in _QUANTILES)
            + "</tr>"
        )
    out.append("</tbody></table>")
    failing = _failing_most(result)
    if failing:
        out.append('<h3>Operations that fail most</h3><ul class="failing">')
        for name, op in failing[:10]:
            bad = op.failed + op.recovered
            out.append(
                f"<li>{html_text(name, 500)}: {bad} of {op.traces} failing "
                f"({bad / op.traces:.0%}): {op.failed} failed, {op.recovered} recovered</li>"
            )
        out.append(f'</ul><h3>Where the errors started</h3><p class="note">{_STARTED}</p>')
        out.append('<ul class="causes">')
        for count, example in _causes(result)[:_CAUSES]:
            out.append(
                f'<li><span class="n">{count}</span> <span class="csvc">'
                f"{html_text(example.service, 200)}</span> {html_text(example.span, 500)} "
                f'<span class="exc">{html_text(_headline(example), 2000)}</span>'
                + (
                    f' <span class="at">at {html_text(example.where, 500)}</span>'
                    if example.where
                    else ""
                )
                + "</li>"
            )
        out.append("</ul>")
        shown = result.failures[:SHOWN]
        out.append(
            f'<details class="failures"><summary>Failing traces ({len(shown)}'
            f"{f' earliest of {result.failing}' if result.failing > len(shown) else ''})"
            '</summary><ul class="failures">'
        )
        for failure in shown:
            tid = html_text(failure.trace, 200)
            answer = f" → {html_text(failure.entry, 200)}" if failure.entry else " (entry answered)"
            out.append(
                f'<li data-trace="{tid}"><a href="#q={tid}">{tid}</a> '
                f"{html_text(failure.operation, 500)}{answer}: started in "
                f'<span class="csvc">{html_text(failure.service, 200)}</span> '
                f"{html_text(failure.span, 500)} "
                f'<span class="exc">{html_text(_headline(failure), 2000)}</span></li>'
            )
        out.append("</ul></details>")
    explained = mark_explanations(marks)
    if explained:
        out.append('<ul class="marks">')
        out += [f"<li>{html.escape(line)}</li>" for line in explained]
        out.append("</ul>")
    out.append("</section>\n")
    return "".join(out)
