"""``logtrace stitch --format html``: one self-contained page, checked as text
and in a real headless Chromium (the script runs, injected markup does not)."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _renderdata import (
    ERROR_TRACE,
    EXAMPLE,
    EXAMPLE_TRACES,
    SCRIPT_MESSAGE,
    hostile_logs,
)
from _stitchutil import run, stitch_jsonl

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install -y chromium): "
    "the page is checked in a real headless browser",
)
SECOND_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Node:
    __slots__ = ("attrs", "children", "parent", "tag", "text")

    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text: list[str] = []

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self) -> list[Node]:
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out

    def find(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag and (cls is None or cls in n.classes())]

    def content(self) -> str:
        return "".join(self.text) + "".join(c.content() for c in self.children)


_VOID = {"meta", "input", "br", "img", "link", "hr", "source"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {}, None)
        self.at = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in _VOID:
            self.at = node

    def handle_endtag(self, tag: str) -> None:
        n: Node | None = self.at
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.at = n.parent

    def handle_data(self, data: str) -> None:
        # Text after a child belongs to this node; content() order is close enough here.
        self.at.text.append(data)


def parse(page: str) -> Node:
    builder = _Builder()
    builder.feed(page)
    builder.close()
    return builder.root


def render(out: Path, *argv: str) -> str:
    code, err = run("stitch", "-q", "--format", "html", "-o", str(out), *argv)
    assert code == 0, err
    return out.read_text(encoding="utf-8")


def browser(
    page: Path, profile: Path, fragment: str = "", *mode: str
) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            *(mode or ("--dump-dom",)),
            page.resolve().as_uri() + fragment,
        ],
        capture_output=True,
        timeout=90,
        check=True,
    )


def dom(page: Path, profile: Path, fragment: str = "") -> Node:
    """The page's DOM after its script ran, as Chromium serialises it."""
    return parse(browser(page, profile, fragment).stdout.decode())


def visible_traces(doc: Node) -> list[str]:
    return [d.attrs["data-trace"] for d in doc.find("details", "trace") if "hidden" not in d.attrs]


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "example.html"
    render(out, str(EXAMPLE))
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    out = root / "hostile.html"
    render(out, str(hostile_logs(root / "logs")))
    return out


class TestPage:
    def test_one_block_per_trace_then_the_lines_without_one(self, example: Path) -> None:
        doc = parse(example.read_text(encoding="utf-8"))
        blocks = doc.find("details", "trace")
        assert {b.attrs["data-trace"] for b in blocks[:3]} == EXAMPLE_TRACES
        assert "unattributed" in blocks[3].classes() and len(blocks) == 4
        assert len(blocks[3].find("div", "r")) == 16
        assert [b.attrs["data-trace"] for b in blocks if "err" in b.classes()] == [ERROR_TRACE]

    def test_records_in_stitched_order_with_depth(self, example: Path, tmp_path: Path) -> None:
        records = [
            r for r in stitch_jsonl(tmp_path / "o.jsonl", "-q", str(EXAMPLE)) if r["trace_id"]
        ]
        doc = parse(example.read_text(encoding="utf-8"))
        shown = []
        for block in doc.find("details", "trace")[:3]:
            for row in block.find("div", "r"):
                tree = row.find("span", "tree")[0]
                depth = float(re.findall(r"padding-left:([\d.]+)em", tree.attrs["style"])[0]) / 1.5
                message = "".join(row.find("span", "m")[0].text)
                shown.append((block.attrs["data-trace"], int(depth), message))
        want = [(r["trace_id"], r["depth"], r["record"]["message"]) for r in records]
        assert shown == want

    def test_corrected_relative_times_and_key_fields(self, example: Path) -> None:
        page = example.read_text(encoding="utf-8")
        assert '<span class="t">+0.000ms</span>' in page
        assert "http.response.status_code=500" in page
        assert "115.770 ms" in page  # the error trace's length, as the text output says

    def test_one_colour_per_service(self, example: Path) -> None:
        doc = parse(example.read_text(encoding="utf-8"))
        classes: dict[str, set[str]] = {}
        for node in doc.find("span", "svc"):
            classes.setdefault(node.content(), set()).update(node.classes() - {"svc"})
        assert classes.keys() == {"inventory", "storefront"}
        assert all(len(c) == 1 for c in classes.values())
        assert classes["inventory"] != classes["storefront"]
        style = doc.find("style")[1].content()
        colours = re.findall(r"\.s\d+\{--c:([^}]+)\}", style)
        assert len(set(colours)) == 2

    def test_self_contained_and_only_its_own_script_may_run(self, example: Path) -> None:
        page = example.read_text(encoding="utf-8")
        doc = parse(page)
        scripts = doc.find("script")
        assert len(scripts) == 1 and "src" not in scripts[0].attrs
        for node in doc.walk():
            assert not {"src", "action"} & node.attrs.keys(), node.tag
            # Links only within the page (the summary's failing traces filter it).
            assert node.attrs.get("href", "#q=").startswith("#q="), node.tag
        assert "url(" not in page and "@import" not in page and "<link" not in page
        digest = hashlib.sha256(scripts[0].content().encode()).digest()
        csp = next(
            m for m in doc.find("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"
        )
        policy = csp.attrs["content"]
        assert "default-src 'none'" in policy
        assert f"'sha256-{base64.b64encode(digest).decode()}'" in policy

    def test_log_text_is_escaped(self, hostile: Path) -> None:
        page = hostile.read_text(encoding="utf-8")
        assert SCRIPT_MESSAGE not in page
        assert html.escape(SCRIPT_MESSAGE) in page
        assert page.count("<script") == 1 and "<img" not in page
        assert "&lt;i&gt;markup&lt;/i&gt;" in page and "<i>" not in page
        assert "\x1b" not in page and "\\e[31m" in page
        assert "\u202e" not in page and "\\u202e" in page
        assert "\x00" not in page
        assert "more characters)" in page and len(page) < 200_000

    def test_input_without_traces(self, tmp_path: Path) -> None:
        (tmp_path / "app.log").write_text("started <b>\n", encoding="utf-8")
        doc = parse(render(tmp_path / "p.html", str(tmp_path / "app.log")))
        blocks = doc.find("details", "trace")
        assert [b.attrs["data-trace"] for b in blocks] == [""]
        assert "".join(blocks[0].find("span", "m")[0].text) == "started <b>"


@needs_browser
class TestInBrowser:
    def test_script_runs_and_shows_every_trace(self, example: Path, tmp_path: Path) -> None:
        doc = dom(example, tmp_path)
        html_node = doc.find("html")[0]
        assert html_node.attrs.get("data-ready") == "1"  # not blocked by the page's own policy
        assert sorted(visible_traces(doc)[:3]) == sorted(EXAMPLE_TRACES)
        count = next(n for n in doc.walk() if n.attrs.get("id") == "count")
        assert count.content() == "3 of 3 traces shown"

    def test_injected_markup_is_shown_not_run(self, hostile: Path, tmp_path: Path) -> None:
        doc = dom(hostile, tmp_path)
        html_node = doc.find("html")[0]
        assert html_node.attrs.get("data-ready") == "1"
        assert "data-pwned" not in html_node.attrs
        assert len(doc.find("script")) == 1 and doc.find("img") == []
        stray = [n for n in doc.find("i") if n.parent is None or "bar" not in n.parent.classes()]
        assert stray == []
        messages = ["".join(m.text) for m in doc.find("span", "m")]
        assert SCRIPT_MESSAGE in messages
        services = {n.content() for n in doc.find("span", "svc")}
        assert "<i>markup</i>" in services

    @pytest.mark.parametrize(
        ("fragment", "expected"),
        [
            ("#q=stock/7", [SECOND_TRACE]),  # text of a record
            (f"#q={ERROR_TRACE[:12].upper()}", [ERROR_TRACE]),  # trace ID, any case
            ("#errors=1", [ERROR_TRACE]),
            ("#q=inventory&errors=1", [ERROR_TRACE]),  # a service
            ("#q=no-such-thing", []),
        ],
    )
    def test_filter_from_the_address(
        self, example: Path, tmp_path: Path, fragment: str, expected: list[str]
    ) -> None:
        doc = dom(example, tmp_path, fragment)
        assert visible_traces(doc) == expected
        count = next(n for n in doc.walk() if n.attrs.get("id") == "count")
        assert count.content() == f"{len(expected)} of 3 traces shown"

    def test_many_traces_start_closed_and_a_match_opens(self, tmp_path: Path) -> None:
        from logtrace.testing import SynthConfig, generate

        synth = generate(str(tmp_path / "logs"), SynthConfig(traces=30, seed=2, services=3))
        page = tmp_path / "many.html"
        render(page, *synth.files)
        doc = dom(page, tmp_path / "p1")
        blocks = [b for b in doc.find("details", "trace") if b.attrs["data-trace"]]
        assert len(blocks) == 30 and not any("open" in b.attrs for b in blocks)
        wanted = blocks[7].attrs["data-trace"]
        doc = dom(page, tmp_path / "p2", f"#q={wanted}")
        shown = [b for b in doc.find("details", "trace") if "hidden" not in b.attrs]
        assert [b.attrs["data-trace"] for b in shown] == [wanted] and "open" in shown[0].attrs

    def test_screenshot_renders(self, example: Path, tmp_path: Path) -> None:
        shot = tmp_path / "page.png"
        browser(example, tmp_path / "profile", "", "--window-size=1400,900", f"--screenshot={shot}")
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
