"""Inputs for the html and chrome renderer tests: the example logs, a skewed
copy of them, and a file of hostile lines."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from _stitchutil import REPO

EXAMPLE = REPO / "examples" / "two_services" / "logs"
EXAMPLE_TRACES = {
    "81dd72623810a5f17ac6f178b1759c44",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "17269a0ad04edb171422a02cadf134e9",
}
ERROR_TRACE = "17269a0ad04edb171422a02cadf134e9"

HOSTILE_TRACE = "0af7651916cd43dd8448eb211c80319c"
PWN = "document.documentElement.setAttribute('data-pwned','1')"
SCRIPT_MESSAGE = f'<script>{PWN}</script><img src=x onerror="{PWN}">'
ROOT, LEFT, RIGHT, LOOSE = (
    "b7ad6b7169203331",
    "00f067aa0ba902b7",
    "53995c3f42cd8ad8",
    "9a1b2c3d4e5f6071",
)


def skewed_copy(dest: Path, ms: float = 40.0) -> Path:
    """The example logs with the inventory clock running ``ms`` ahead."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "storefront.jsonl").write_bytes((EXAMPLE / "storefront.jsonl").read_bytes())

    def later(text: str) -> str:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (t + datetime.timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    source = (EXAMPLE / "inventory.jsonl").read_text(encoding="utf-8")
    with open(dest / "inventory.jsonl", "w", encoding="utf-8") as out:
        for line in source.splitlines():
            record = json.loads(line)
            for key in ("timestamp", "span.start"):
                if key in record:
                    record[key] = later(record[key])
            out.write(json.dumps(record) + "\n")
    return dest


def _at(ms: float) -> str:
    t = datetime.datetime(2026, 11, 24, 10, 0, tzinfo=datetime.timezone.utc)
    return (t + datetime.timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(ms: float, span: str, parent: str | None, message: str, **extra: Any) -> str:
    obj: dict[str, Any] = {
        "timestamp": _at(ms),
        "level": extra.pop("level", "INFO"),
        "service": extra.pop("service", "evil"),
        "message": message,
        "trace_id": HOSTILE_TRACE,
        "span_id": span,
    }
    if parent:
        obj["parent_span_id"] = parent
    obj.update(extra)
    return json.dumps(obj)


def _span_record(start: float, end: float, span: str, parent: str | None, name: str) -> str:
    return _record(
        end,
        span,
        parent,
        f"internal {name}",
        logger="logtrace.span",
        **{"span.kind": "internal", "span.name": name, "span.start": _at(start)},
        duration_ms=end - start,
    )


def hostile_logs(dest: Path) -> Path:
    """One service's log with markup, escapes, a huge line, binary junk, and two
    overlapping spans under one root (concurrent work in one service)."""
    dest.mkdir(parents=True, exist_ok=True)
    lines = [
        _record(1, ROOT, None, SCRIPT_MESSAGE, level="ERROR"),
        _record(2, ROOT, None, "colour \x1b[31mred\x1b[0m and \u202eright-to-left"),
        _record(3, ROOT, None, "field markup", **{"http.route": '"><script>alert(1)</script>'}),
        _record(4, ROOT, None, "x" * 2_000_000),
        _record(12, LEFT, ROOT, "left working"),
        _record(35, RIGHT, ROOT, "right working"),
        _span_record(10, 60, LEFT, ROOT, "left"),
        _span_record(30, 80, RIGHT, ROOT, "right"),
        # A span with no span record: its extent is its first to last record.
        _record(40, LOOSE, ROOT, "loose begins"),
        _record(50, LOOSE, ROOT, "loose ends"),
        _span_record(0, 100, ROOT, None, "root"),
        _record(5, ROOT, None, "other service", service="<i>markup</i>"),
        '{"message": "no trace <script>' + PWN + '</script>", "level": "INFO"}',
        "\x00\x01\x02binary junk <b>\xff",
        '{"trace_id": "' + HOSTILE_TRACE + '", "message": "cut',
    ]
    path = dest / "evil.log"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    return path
