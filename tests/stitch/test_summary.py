"""``logtrace stitch --summary``: outcomes, latency percentiles and root causes,
from three real uvicorn services where the deepest one raises."""

from __future__ import annotations

import io
import itertools
import json
import math
import os
from pathlib import Path

import pytest
from _chain import REQUESTS, Chain, run_chain
from _stitchutil import REPO, cli, run
from hypothesis import given, settings
from hypothesis import strategies as st
from test_render_html import CHROMIUM, dom, render

from logtrace.stitch import Options, stitch, summary_text
from logtrace.stitch._model import Operation, Outcomes
from logtrace.stitch._outcomes import EXACT, merge_outcomes, percentile

EXAMPLE = REPO / "examples" / "two_services" / "logs"
FAILING = sum(1 for item, _ in REQUESTS if item == 0)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return run_chain(tmp_path_factory.mktemp("chain"))


def outcomes_of(paths: list[Path], **options: object) -> tuple[Outcomes, dict[str, int]]:
    summary = stitch(
        [str(p) for p in paths], io.BytesIO(), Options(format="none", summary=True, **options)
    )  # type: ignore[arg-type]
    assert summary.outcomes is not None
    return summary.outcomes, summary.marks


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


class TestRealChain:
    def test_the_gateway_saw_the_failures(self, chain: Chain) -> None:
        expected = [500 if item == 0 and not fallback else 200 for item, fallback in REQUESTS]
        assert chain.statuses == expected

    def test_traces_by_outcome(self, chain: Chain) -> None:
        found, _ = outcomes_of([chain.logs])
        assert list(found.operations) == ["GET /checkout/{item}"]
        op = found.operations["GET /checkout/{item}"]
        failed = sum(1 for item, fallback in REQUESTS if item == 0 and not fallback)
        recovered = sum(1 for item, fallback in REQUESTS if item == 0 and fallback)
        assert (op.traces, op.failed, op.recovered) == (len(REQUESTS), failed, recovered)
        assert found.failing == FAILING

    def test_the_error_started_in_the_deepest_span(self, chain: Chain) -> None:
        found, _ = outcomes_of([chain.logs])
        assert list(found.causes) == [("inventory", "db.select", "inventory_app.OutOfStock")]
        assert found.causes["inventory", "db.select", "inventory_app.OutOfStock"].traces == FAILING
        failed, recovered = chain.traces_of(0, 0), chain.traces_of(0, 1)
        assert {f.trace for f in found.failures} == {*failed, *recovered}
        for failure in found.failures:
            assert failure.service == "inventory" and failure.span == "db.select"
            assert failure.message == "item 0 is out of stock"
            assert failure.where.endswith("inventory_app.py:24 in stock")
            # gateway server, its client span, orders server, its client, inventory server, db
            assert failure.depth == 5
            assert failure.entry == ("500" if failure.trace in failed else "")
        assert [f.start for f in found.failures] == sorted(f.start for f in found.failures)

    def test_latency_percentiles_are_the_entry_spans(self, chain: Chain) -> None:
        found, _ = outcomes_of([chain.logs])
        measured = [
            float(r["duration_ms"]) / 1e3  # type: ignore[arg-type]
            for r in chain.records("gateway")
            if r.get("span.kind") == "server"
        ]
        assert len(measured) == len(REQUESTS)
        op = found.operations["GET /checkout/{item}"]
        for q in (0.5, 0.9, 0.99, 1.0):
            assert percentile(op, q) == nearest_rank(measured, q)
        # The slow request (item 7 sleeps 300 ms) is the maximum.
        assert percentile(op, 1.0) > 0.3

    def test_a_partitioned_run_says_the_same(self, chain: Chain) -> None:
        whole, marks = outcomes_of([chain.logs])
        parted, parted_marks = outcomes_of([chain.logs], partitions=3)
        assert summary_text(parted, parted_marks) == summary_text(whole, marks)
        assert parted.failures == whole.failures

    def test_partitioned_text_output_is_the_same_bytes(self, chain: Chain, tmp_path: Path) -> None:
        # Exceptions take several lines under their line: the merge of
        # partitions must still cut the text at trace boundaries.
        one, three = tmp_path / "one.txt", tmp_path / "three.txt"
        assert run("stitch", "-q", "-o", str(one), str(chain.logs))[0] == 0
        os.environ["LOGTRACE_STITCH_PARTITIONS"] = "3"
        try:
            assert run("stitch", "-q", "-o", str(three), str(chain.logs))[0] == 0
        finally:
            del os.environ["LOGTRACE_STITCH_PARTITIONS"]
        text = one.read_text()
        assert text.count("OutOfStock: item 0 is out of stock") >= FAILING
        assert three.read_bytes() == one.read_bytes()

    def test_a_filter_narrows_the_summary(self, chain: Chain) -> None:
        found, _ = outcomes_of([chain.logs], errors_only=True)
        op = found.operations["GET /checkout/{item}"]
        assert op.traces == FAILING and op.traces == op.failed + op.recovered


class TestCommandLine:
    def test_summary_alone_goes_to_standard_output(self, chain: Chain) -> None:
        done = cli("stitch", "--summary", str(chain.logs))
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode()
        assert out.startswith(f"{len(REQUESTS)} traces: 6 ok, 2 failed, 2 recovered\n")
        assert "GET /checkout/{item}" in out
        assert "inventory  db.select  inventory_app.OutOfStock: item 0 is out of stock" in out
        assert "trace " not in out  # no trace blocks
        assert done.stderr.decode().startswith("logtrace: 3 files")

    def test_summary_with_a_format_on_standard_output_goes_to_stderr(self, chain: Chain) -> None:
        done = cli("stitch", "--summary", "--format", "jsonl", str(chain.logs))
        assert done.returncode == 0, done.stderr
        lines = done.stdout.decode().splitlines()
        assert all(json.loads(line)["record"] for line in lines)
        assert "Where the errors started" in done.stderr.decode()

    def test_summary_with_a_format_to_a_file_goes_to_stdout(
        self, chain: Chain, tmp_path: Path
    ) -> None:
        page = tmp_path / "report.html"
        done = cli("stitch", "--summary", "--format", "html", "-o", str(page), str(chain.logs))
        assert done.returncode == 0, done.stderr
        assert "Where the errors started" in done.stdout.decode()
        assert '<section id="summary">' in page.read_text()

    def test_summary_alone_to_a_file(self, chain: Chain, tmp_path: Path) -> None:
        out = tmp_path / "summary.txt"
        code, err = run("stitch", "--summary", "-o", str(out), str(chain.logs))
        assert code == 0, err
        assert out.read_text().startswith(f"{len(REQUESTS)} traces:")

    def test_marks_are_explained_once(self, tmp_path: Path) -> None:
        # The committed example continues a trace its caller started: an orphan.
        done = cli("stitch", str(EXAMPLE))
        err = done.stderr.decode()
        assert err.count("[orphan] (1 span): the span's parent span is not in the logs") == 1
        assert done.stdout.decode().count("[orphan]") == 1
        summary = cli("stitch", "--summary", str(EXAMPLE))
        assert summary.stdout.decode().count("[orphan] (1 span)") == 1
        assert "[orphan]" not in summary.stderr.decode()


def _operation(values: list[float]) -> Outcomes:
    op = Operation(traces=len(values))
    if values:
        part = Outcomes(operations={"op": op})
        op.timed = len(values)
        op.low, op.high = min(values), max(values)
        op.durations = list(values)
        return merge_outcomes([part])
    return Outcomes(operations={"op": op})


class TestMerge:
    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.floats(min_value=1e-6, max_value=1e3), min_size=1, max_size=60),
        st.lists(st.integers(min_value=0, max_value=60), max_size=4),
    )
    def test_merging_partitions_is_splitting_blind(
        self, values: list[float], cuts: list[int]
    ) -> None:
        bounds = sorted({0, len(values), *(min(c, len(values)) for c in cuts)})
        parts = [_operation(values[a:b]) for a, b in itertools.pairwise(bounds)]
        merged = merge_outcomes(parts).operations["op"]
        whole = _operation(values).operations["op"]
        assert merged.traces == len(values)
        for q in (0.5, 0.9, 0.99, 1.0):
            assert percentile(merged, q) == percentile(whole, q) == nearest_rank(values, q)

    def test_many_latencies_become_a_histogram_within_half_a_percent(self) -> None:
        values = [(k % 997 + 1) * 1e-4 for k in range(EXACT + 500)]
        half = len(values) // 2
        merged = merge_outcomes([_operation(values[:half]), _operation(values[half:])])
        op = merged.operations["op"]
        assert op.buckets and not op.durations and op.timed == len(values)
        for q in (0.5, 0.9, 0.99):
            assert percentile(op, q) == pytest.approx(nearest_rank(values, q), rel=0.006)
        assert percentile(op, 1.0) == max(values)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
class TestHtmlSummary:
    def test_the_report_opens_with_the_summary(self, chain: Chain, tmp_path: Path) -> None:
        page = tmp_path / "report.html"
        render(page, str(chain.logs))
        doc = dom(page, tmp_path / "profile")
        assert doc.find("html")[0].attrs.get("data-ready") == "1"
        main = doc.find("main")[0]
        assert main.children[0].attrs.get("id") == "summary"
        table = main.children[0].find("table", "outcomes")[0]
        cells = [[td.content() for td in tr.find("td")] for tr in table.find("tbody")[0].find("tr")]
        assert cells[0][:5] == ["GET /checkout/{item}", "10", "6", "2", "2"]
        assert cells[-1][0] == "all"
        causes = main.children[0].find("ul", "causes")[0].content()
        assert (
            "inventory" in causes and "inventory_app.OutOfStock: item 0 is out of stock" in causes
        )
        links = [a.attrs["href"] for a in main.children[0].find("a")]
        failing = {*chain.traces_of(0, 0), *chain.traces_of(0, 1)}
        assert {link.removeprefix("#q=") for link in links} == failing

    def test_a_failing_trace_link_shows_that_trace(self, chain: Chain, tmp_path: Path) -> None:
        page = tmp_path / "report.html"
        render(page, str(chain.logs))
        wanted = chain.traces_of(0, 0)[0]
        doc = dom(page, tmp_path / "profile", f"#q={wanted}")
        shown = [b for b in doc.find("details", "trace") if "hidden" not in b.attrs]
        assert [b.attrs["data-trace"] for b in shown] == [wanted]
        # Its exceptions are there, collapsed.
        exceptions = [d for d in shown[0].find("details") if "x" in d.parent.classes()]  # type: ignore[union-attr]
        assert exceptions and not any("open" in d.attrs for d in exceptions)
        assert any("OutOfStock: item 0 is out of stock" in d.content() for d in exceptions)
