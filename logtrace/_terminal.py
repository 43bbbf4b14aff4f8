"""What the ``logtrace`` command prints to a terminal: log text made safe, warnings, failures.

Text that comes from a log (service names, file names, grep's lines) may
hold control characters; printed raw, an escape sequence in a log could set
the terminal's title or rewrite what it shows. Here they are escaped.
"""

from __future__ import annotations

import re
import sys

__all__ = ["CommandError", "visible", "visible_line", "warn"]


class CommandError(Exception):
    """A command cannot go on: its message is printed on one line and it exits 2."""


_CONTROLS = r"\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\udc80-\udcff"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_CONTROL_OR_TAB = re.compile(f"[\\t{_CONTROLS}]")


def _shown(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with control, bidirectional-override and non-UTF-8 characters
    written as escapes (``\\x1b``): log text must not drive the terminal."""
    return _CONTROL_OR_TAB.sub(_shown, text)


def visible_line(raw: bytes) -> bytes:
    """:func:`visible` for one raw line, tabs kept (what grep's output to a terminal gets)."""
    text = raw.decode("utf-8", "surrogateescape")
    if not _CONTROL.search(text):
        return raw
    return _CONTROL.sub(_shown, text).encode("utf-8", "surrogateescape")


def warn(message: str) -> None:
    print(f"logtrace: warning: {visible(message)}", file=sys.stderr)
