"""The JSON formatter's direct path writes the line python-json-logger's generic path writes."""

from __future__ import annotations

import json
import logging
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from logtrace.stdlib import TraceContextFilter, json_formatter

ID = st.text(alphabet="0123456789abcdef", min_size=16, max_size=32)
# Names a record already has (``extra=`` may not set them): its class's and its instances'.
_TAKEN = {*logging.LogRecord.__dict__, *logging.makeLogRecord({}).__dict__, "message", "asctime"}
KEYS = st.text(min_size=1, max_size=12).filter(lambda k: k not in _TAKEN)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
)


def make_record(msg: str, args: tuple[object, ...], extra: dict[str, object]) -> logging.LogRecord:
    logger = logging.getLogger("orders.db")
    return logger.makeRecord("orders.db", logging.WARNING, "f.py", 7, msg, args, None, extra=extra)


def generic(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The line through python-json-logger's own ``format``."""
    base = type(formatter).__mro__[1]
    return str(base.format(formatter, record))  # type: ignore[attr-defined]


class TestDirectPath:
    @settings(max_examples=300, deadline=None)
    @given(
        msg=st.text(),
        extra=st.dictionaries(KEYS, VALUES, max_size=6),
        ids=st.one_of(st.none(), st.tuples(ID, ID, st.one_of(st.none(), ID))),
    )
    def test_same_line_as_the_generic_path(
        self,
        msg: str,
        extra: dict[str, object],
        ids: tuple[str, str, str | None] | None,
    ) -> None:
        formatter = json_formatter("orders")
        if ids is not None:
            extra = {**extra, "trace_id": ids[0], "span_id": ids[1], "parent_span_id": ids[2]}
        record = make_record(msg, (), extra)
        TraceContextFilter().filter(record)
        direct = formatter.format(record)
        assert direct == generic(formatter, record)
        line = json.loads(direct)
        assert list(line)[:5] == ["timestamp", "level", "service", "logger", "message"]
        assert line["message"] == msg.rstrip()

    def test_arguments_are_merged_once(self) -> None:
        formatter = json_formatter("orders")
        record = make_record("took %d ms on %s", (12, "db1"), {"attempt": 2})
        line = json.loads(formatter.format(record))
        assert line["message"] == "took 12 ms on db1"
        assert line["attempt"] == 2
        assert formatter.format(record) == generic(formatter, record)

    def test_tracebacks_take_the_generic_path(self) -> None:
        formatter = json_formatter("orders")
        try:
            raise KeyError("sku-1")
        except KeyError:
            record = logging.getLogger("x").makeRecord(
                "x", logging.ERROR, "f.py", 1, "lookup failed", (), sys.exc_info()
            )
        line = json.loads(formatter.format(record))
        assert "KeyError: 'sku-1'" in line["exc_info"]
        assert line["message"] == "lookup failed"

    def test_changed_settings_fall_back_to_the_generic_path(self) -> None:
        formatter = json_formatter("orders")
        formatter.static_fields = {"region": "eu"}  # type: ignore[attr-defined]
        formatter.plain = False  # type: ignore[attr-defined]
        line = json.loads(formatter.format(make_record("hi", (), {})))
        assert line["region"] == "eu"
