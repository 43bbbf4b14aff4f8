"""Timestamp precision: which files write times to the second or millisecond."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from logtrace.stitch._precision import (
    MS,
    SECOND,
    Resolutions,
    classify,
    file_resolution,
    resolution,
    whole_ms,
)
from logtrace.stitch._timestamps import parse_timestamp, timestamp_in_text

moments = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)


@given(moments)
def test_a_time_written_to_the_millisecond_is_a_whole_millisecond(moment: datetime) -> None:
    text = moment.strftime("%Y-%m-%d %H:%M:%S,") + f"{moment.microsecond // 1000:03d}"
    value = parse_timestamp(text)
    assert value is not None and whole_ms(value)
    assert resolution(value, Resolutions(millis=True)) == MS


@given(moments)
def test_a_time_to_the_microsecond_off_the_millisecond_is_not(moment: datetime) -> None:
    if moment.microsecond % 1000 == 0:
        moment += timedelta(microseconds=1)
    value = parse_timestamp(moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert value is not None and not whole_ms(value)
    assert resolution(value, Resolutions(seconds=True, millis=True)) == 0.0


@given(moments)
def test_an_access_line_time_is_a_whole_second(moment: datetime) -> None:
    line = f'127.0.0.1 - - [{moment.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "GET / HTTP/1.1" 200'
    value = timestamp_in_text(line)
    assert value is not None
    assert resolution(value, Resolutions(seconds=True)) == SECOND
    assert resolution(value, Resolutions()) == 0.0


def _micros(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    start = 1_795_000_000
    return [start + rng.randrange(0, 60_000_000) / 1e6 for _ in range(n)]


def test_a_microsecond_file_has_points_only() -> None:
    for seed in range(50):
        assert classify(_micros(400, seed)) == Resolutions()
    assert classify(_micros(1, 0)) == Resolutions()


def test_files_to_the_millisecond_and_to_the_second() -> None:
    millis = [round(v, 3) for v in _micros(300, 1)]
    assert classify(millis) == Resolutions(millis=True)
    assert classify([float(int(v)) for v in _micros(50, 2)]) == Resolutions(seconds=True)
    # gunicorn's stdout: its own lines to the second among the app's to the microsecond
    mixed = _micros(40, 3)
    for i in range(0, 40, 8):
        mixed[i] = float(int(mixed[i]))
    assert classify(mixed) == Resolutions(seconds=True)
    # a millisecond file where a few lines fall on a whole second by chance
    by_chance = [*millis, float(int(millis[0]))]
    assert classify(by_chance) == Resolutions(millis=True)


def test_file_resolution_reads_the_start_of_plain_and_compressed_files(tmp_path: Path) -> None:
    start = datetime(2026, 12, 4, 18, 32, 8, tzinfo=UTC)
    text = "".join(
        (start + timedelta(milliseconds=7 * i)).strftime("%Y-%m-%d %H:%M:%S,")
        + f"{(start + timedelta(milliseconds=7 * i)).microsecond // 1000:03d} INFO step {i}\n"
        for i in range(100)
    )
    plain = tmp_path / "app.log"
    plain.write_text(text)
    packed = tmp_path / "app.log.1.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    assert file_resolution(str(plain)) == Resolutions(millis=True)
    assert file_resolution(str(packed)) == Resolutions(millis=True)
    fine = tmp_path / "fine.jsonl"
    fine.write_text(
        "".join(
            json.dumps({"timestamp": f"2026-12-04T18:32:08.{i:06d}Z"}) + "\n"
            for i in range(1, 99, 7)
        )
    )
    assert file_resolution(str(fine)) == Resolutions()
    assert file_resolution(str(tmp_path / "gone.log")) == Resolutions()
    (tmp_path / "junk.log").write_bytes(b"\x00\xff" * 1000)
    assert file_resolution(str(tmp_path / "junk.log")) == Resolutions()
