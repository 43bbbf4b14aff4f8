"""Log files with exceptions, written by the real logging libraries.

Each writer logs, inside a logtrace span (so the lines carry a trace), an
``INFO`` line, then a caught exception (``ValueError`` raised from a
``KeyError``), for the libraries and shapes users have:

- ``stdlib``: logtrace's JSON formatter (``configure_logging``):
  ``exc_info``, and a warning with ``stack_info``;
- ``pjl``: python-json-logger's own ``JsonFormatter`` (``exc_info``);
- ``structlog_text``: structlog's ``format_exc_info`` (``exception``, a string);
- ``structlog_dict``: structlog's ``dict_tracebacks`` (``exception``, a list);
- ``ecs``: ecs-logging's ``StdlibFormatter`` (``error.type``,
  ``error.message``, ``error.stack_trace``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import structlog
from _logutil import preserved_logging

from logtrace import TraceContextFilter, configure_logging, span
from logtrace.processors import add_trace_context

MESSAGE = "bad value for {}"
"""The exception's message, per writer (formatted with its name)."""


def _fail(name: str) -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        raise ValueError(MESSAGE.format(name)) from exc


def _stdlib_run(logger: logging.Logger, name: str, stack: bool = False) -> None:
    with span(f"job {name}"):
        logger.info("starting %s", name)
        try:
            _fail(name)
        except ValueError:
            logger.exception("job failed")
        if stack:
            logger.warning("where are we", stack_info=True)


def write_stdlib(path: Path) -> None:
    with preserved_logging():
        configure_logging("stdlib", filename=path)
        _stdlib_run(logging.getLogger("app"), "stdlib", stack=True)
        logging.getLogger().handlers[0].close()


def _handler(path: Path, formatter: logging.Formatter, fields: str = "otel") -> logging.Handler:
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(formatter)
    handler.addFilter(TraceContextFilter(field_names=fields))
    return handler


def _with_handler(handler: logging.Handler, name: str) -> None:
    logger = logging.getLogger(f"writer.{name}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        _stdlib_run(logger, name)
    finally:
        logger.removeHandler(handler)
        handler.close()


def write_pjl(path: Path) -> None:
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter("{asctime}{levelname}{message}", style="{", timestamp="timestamp")
    _with_handler(_handler(path, formatter), "pjl")


def write_ecs(path: Path) -> None:
    import ecs_logging

    _with_handler(_handler(path, ecs_logging.StdlibFormatter(), "ecs"), "ecs")


def _structlog(path: Path, name: str, processor: Callable[..., object]) -> None:
    with path.open("w", encoding="utf-8") as out:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
                add_trace_context,
                processor,
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=structlog.PrintLoggerFactory(out),
            cache_logger_on_first_use=False,
        )
        try:
            log = structlog.get_logger()
            with span(f"job {name}"):
                log.info("starting", job=name)
                try:
                    _fail(name)
                except ValueError:
                    log.exception("job failed")
        finally:
            structlog.reset_defaults()


def write_structlog_text(path: Path) -> None:
    _structlog(path, "structlog_text", structlog.processors.format_exc_info)


def write_structlog_dict(path: Path) -> None:
    _structlog(path, "structlog_dict", structlog.processors.dict_tracebacks)


WRITERS: dict[str, Callable[[Path], None]] = {
    "stdlib": write_stdlib,
    "pjl": write_pjl,
    "structlog_text": write_structlog_text,
    "structlog_dict": write_structlog_dict,
    "ecs": write_ecs,
}


def write_all(directory: Path) -> dict[str, Path]:
    """One file per writer, named after it."""
    files = {}
    for name, writer in WRITERS.items():
        path = directory / f"{name}.jsonl"
        writer(path)
        files[name] = path
    return files
