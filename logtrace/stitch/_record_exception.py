"""The exception a log record carries: its type, message and traceback.

Each logging library writes an exception its own way, and every renderer
(and the summary's root cause) wants the same three things from it:

- the standard library through logtrace's JSON formatter or
  python-json-logger: ``exc_info`` (the formatted traceback, whose last line
  is ``Type: message``) and ``stack_info`` (``Stack (most recent call
  last): ...``);
- structlog: ``exception``, a formatted traceback (``format_exc_info``) or a
  list of one dict per exception of the chain (``dict_tracebacks``: the
  raised one first, then its causes);
- ECS (ecs-logging): ``error.type``, ``error.message``, ``error.stack_trace``,
  nested under ``error`` or as dotted keys;
- OpenTelemetry's semantic conventions: ``exception.type``,
  ``exception.message``, ``exception.stacktrace``.

A record with only a type (a span record's ``exception.type``) carries no
exception here: its type is already among the line's key fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Raised", "last_frame", "record_exception"]

_MAX_FRAMES = 200
"""Frames of a ``dict_tracebacks`` exception written out (the last ones)."""

_HEADER = re.compile(r"^(Traceback|Stack) \(most recent call last\):$")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+)(?:, in (?P<name>.*))?$')
_TYPE_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")


@dataclass(frozen=True, slots=True)
class Raised:
    """An exception (or a stack) as a record carries it."""

    type: str
    """The exception's type as written (``""`` for a stack without an exception)."""
    message: str
    traceback: str
    """Every line of the traceback or stack, ending with the ``Type: message``
    line when the library wrote one (``""`` when the record has none)."""

    def headline(self) -> str:
        """``Type: message`` (or whichever of them is known)."""
        if self.type and self.message:
            return f"{self.type}: {self.message}"
        return self.type or self.message

    def text(self) -> str:
        """What to show under the line: the traceback, after the headline when
        the traceback does not already end with it."""
        headline = self.headline()
        tb = self.traceback.rstrip("\n")
        if not tb:
            return headline
        if headline and headline.splitlines()[0] not in tb:
            return f"{headline}\n{tb}"
        return tb


def record_exception(obj: dict[str, Any]) -> Raised | None:
    """The exception (or stack) that the decoded record ``obj`` carries, if any."""
    structlog = obj.get("exception")
    if isinstance(structlog, list) and structlog and isinstance(structlog[0], dict):
        return _from_dicts(structlog)
    if isinstance(structlog, str) and structlog.strip():
        return _from_text(structlog)
    exc_info = obj.get("exc_info")
    stack_info = obj.get("stack_info")
    if isinstance(exc_info, str) and exc_info.strip():
        raised = _from_text(exc_info)
        if isinstance(stack_info, str) and stack_info.strip():
            raised = Raised(raised.type, raised.message, f"{raised.traceback}\n{stack_info}")
        return raised
    if isinstance(stack_info, str) and stack_info.strip():
        return Raised("", "", stack_info)
    error = obj.get("error")
    nested = error if isinstance(error, dict) else {}
    found = _named(obj, nested, "error", ("type", "message", "stack_trace"))
    if found is None:
        found = _named(obj, {}, "exception", ("type", "message", "stacktrace"))
    return found


def _named(
    obj: dict[str, Any], nested: dict[str, Any], prefix: str, keys: tuple[str, str, str]
) -> Raised | None:
    """ECS or OpenTelemetry fields: ``prefix.type`` and the rest, dotted or nested."""
    values = []
    for key in keys:
        value = obj.get(f"{prefix}.{key}", nested.get(key))
        values.append(value if isinstance(value, str) else "" if value is None else str(value))
    kind, message, trace = values
    if not message.strip() and not trace.strip():
        return None
    if trace and not kind and not message:
        parsed = _from_text(trace)
        return Raised(parsed.type, parsed.message, trace)
    return Raised(kind, message, trace)


def _from_text(text: str) -> Raised:
    """A formatted traceback: its last exception's ``Type: message`` line(s)
    follow the frames of its last ``Traceback (most recent call last):``."""
    lines = text.rstrip("\n").split("\n")
    start = max((k for k, line in enumerate(lines) if _HEADER.match(line)), default=-1)
    if start >= 0 and lines[start].startswith("Stack"):
        return Raised("", "", text)
    k = start + 1
    while k < len(lines) and (lines[k].startswith((" ", "\t")) or not lines[k]):
        k += 1
    if start >= 0 and k < len(lines):
        match = _TYPE_LINE.match(lines[k])
        if match:
            message = "\n".join([match.group("message") or "", *lines[k + 1 :]]).strip("\n")
            return Raised(match.group("type"), message, text)
    # No header (ECS's frames only, a hand-written text): its last unindented line.
    for line in reversed(lines):
        if line and not line.startswith((" ", "\t")):
            match = _TYPE_LINE.match(line)
            if match and match.group("message") is not None:
                return Raised(match.group("type"), match.group("message"), text)
            break
    return Raised("", "", text)


def _from_dicts(chain: list[Any]) -> Raised:
    """structlog's ``dict_tracebacks``: the raised exception first, its causes
    (or the exceptions being handled) after; written as Python prints a chain."""
    excs = [exc for exc in chain if isinstance(exc, dict)]
    text = ""
    for k in range(len(excs) - 1, -1, -1):
        exc = excs[k]
        lines = ["Traceback (most recent call last):"]
        frames = exc.get("frames")
        frames = frames[-_MAX_FRAMES:] if isinstance(frames, list) else []
        for frame in frames:
            if isinstance(frame, dict):
                lines.append(
                    f'  File "{frame.get("filename", "?")}", line {frame.get("lineno", "?")},'
                    f" in {frame.get('name', '?')}"
                )
                if frame.get("line"):
                    lines.append(f"    {str(frame['line']).strip()}")
        kind, value = str(exc.get("exc_type", "")), str(exc.get("exc_value", ""))
        lines.append(f"{kind}: {value}" if value else kind)
        if text:
            text += _CAUSE if excs[k + 1].get("is_cause") else _CONTEXT
        text += "\n".join(lines)
    first = excs[0]
    return Raised(str(first.get("exc_type", "")), str(first.get("exc_value", "")), text)


_CAUSE = "\n\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\n\nDuring handling of the above exception, another exception occurred:\n\n"


def last_frame(traceback: str) -> str:
    """``file:line in name`` of the innermost frame of the last exception of
    ``traceback`` (where it was raised), or ``""``."""
    found = ""
    for line in traceback.split("\n"):
        if _HEADER.match(line):
            found = ""
        match = _FRAME.match(line)
        if match:
            name = match.group("name")
            found = f"{match.group('file')}:{match.group('line')}" + (f" in {name}" if name else "")
    return found
