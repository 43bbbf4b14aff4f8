"""Timestamps in the layouts services write, to epoch seconds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logtrace.stitch._timestamps import epoch_from_number, parse_timestamp, timestamp_in_text

MOMENTS = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timedelta(minutes=m))


class TestIso:
    @given(MOMENTS, OFFSETS)
    def test_any_offset_gives_the_same_instant(self, moment: datetime, offset: timedelta) -> None:
        local = moment.astimezone(timezone(offset))
        assert parse_timestamp(local.isoformat()) == pytest.approx(moment.timestamp(), abs=1e-6)

    @given(MOMENTS)
    def test_z_suffix_and_no_zone_are_utc(self, moment: datetime) -> None:
        text = moment.strftime("%Y-%m-%dT%H:%M:%S.%f")
        assert parse_timestamp(text + "Z") == pytest.approx(moment.timestamp(), abs=1e-6)
        assert parse_timestamp(text) == pytest.approx(moment.timestamp(), abs=1e-6)

    @given(MOMENTS)
    def test_space_and_comma_milliseconds(self, moment: datetime) -> None:
        text = moment.strftime("%Y-%m-%d %H:%M:%S") + f",{moment.microsecond // 1000:03d}"
        expected = moment.replace(microsecond=moment.microsecond // 1000 * 1000).timestamp()
        assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)

    def test_compact_offset(self) -> None:
        assert parse_timestamp("2026-11-24T12:00:00.5+0200") == 1795514400.5


class TestEpoch:
    @given(st.integers(min_value=10**9, max_value=4 * 10**9))
    def test_units_are_guessed_from_magnitude(self, seconds: int) -> None:
        for scale in (1, 1000, 10**6, 10**9):
            assert parse_timestamp(seconds * scale) == pytest.approx(seconds)
            assert parse_timestamp(str(seconds * scale)) == pytest.approx(seconds)

    def test_fractional_seconds(self) -> None:
        assert parse_timestamp(1795514400.25) == 1795514400.25
        assert parse_timestamp("1795514400.25") == 1795514400.25

    @pytest.mark.parametrize("value", [0, -5, float("nan"), 1e30, True])
    def test_nonsense_numbers(self, value: float) -> None:
        assert parse_timestamp(value) is None

    def test_epoch_from_number_nan(self) -> None:
        assert epoch_from_number(float("nan")) is None


class TestTextLayouts:
    def test_nginx(self) -> None:
        line = '127.0.0.1 - - [24/Nov/2026:10:00:00 +0100] "GET / HTTP/1.1" 200'
        assert timestamp_in_text(line) == 1795510800.0

    def test_syslog_takes_the_current_year(self) -> None:
        year = datetime.now(timezone.utc).year
        expected = datetime(year, 11, 24, 10, 0, 0, tzinfo=timezone.utc).timestamp()
        assert timestamp_in_text("Nov 24 10:00:00 host app[12]: started") == expected

    def test_python_logging_default(self) -> None:
        assert timestamp_in_text("2026-11-24 10:00:00,123 INFO app: hi") == 1795514400.123

    @pytest.mark.parametrize("text", ["", "no time here", "2026-13-45T99:99:99", "12:00"])
    def test_no_timestamp(self, text: str) -> None:
        assert timestamp_in_text(text) is None
        assert parse_timestamp(text) is None


@given(st.one_of(st.text(max_size=80), st.integers(), st.floats(), st.none(), st.booleans()))
def test_never_raises(value: object) -> None:
    result = parse_timestamp(value)
    assert result is None or isinstance(result, float)
