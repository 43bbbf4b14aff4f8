"""Every non-blank input line appears exactly once in the JSON lines output."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import tempfile
from pathlib import Path

from _stitchutil import KEYS, nonblank_lines, stitch_jsonl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from logtrace.stitch._parse import parse_logfmt

TRACES = ["%032x" % (i * 7919 + 1) for i in range(3)]
SPANS = ["%016x" % (i * 104729 + 1) for i in range(5)]

json_record = st.builds(
    lambda ts, trace, span, parent, msg, level: json.dumps(
        {
            "timestamp": f"2026-11-24T10:00:{ts:09.6f}Z",
            "level": level,
            "trace_id": trace,
            "span_id": span,
            "parent_span_id": parent,
            "message": msg,
        }
    ).encode(),
    st.floats(min_value=0, max_value=59.9),
    st.sampled_from(TRACES),
    st.sampled_from(SPANS),
    st.none() | st.sampled_from(SPANS),
    st.text(max_size=30),
    st.sampled_from(["info", "error", "debug"]),
)
hostile = st.one_of(
    json_record,
    json_record.map(lambda b: b[: len(b) // 2]),  # cut short
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.just(b'{"a":' * 3000 + b"1" + b"}" * 3000),
    st.just(b"\x1b[31mred\x1b[0m trace_id=" + TRACES[0].encode()),
    st.sampled_from([b"", b"   ", b"\t", b"{}", b"[]", b"null", b'{"trace_id": null}']),
    st.builds(
        lambda t, s: f'ts=2026-11-24T10:00:01Z trace_id={t} span_id={s} msg="x y"'.encode(),
        st.sampled_from(TRACES),
        st.sampled_from(SPANS),
    ),
)
a_file = st.tuples(
    st.lists(hostile, max_size=25),
    st.sampled_from([b"\n", b"\r\n", b"\r"]),
    st.booleans(),  # final newline
    st.sampled_from(["plain", "gzip", "bz2", "xz"]),
)


def _compress(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data)
    if how == "bz2":
        return bz2.compress(data)
    if how == "xz":
        return lzma.compress(data)
    return data


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example([([b"0="], b"\n", True, "plain")])
@given(st.lists(a_file, min_size=1, max_size=3))
def test_every_nonblank_line_exactly_once(
    files: list[tuple[list[bytes], bytes, bool, str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        expected: dict[tuple[str, int], bytes] = {}
        paths = []
        for i, (lines, ending, final, how) in enumerate(files):
            # A line may not contain a line break of its own: split them into lines.
            data = ending.join(lines) + (ending if final and lines else b"")
            path = root / f"svc{i}.log"
            path.write_bytes(_compress(data, how))
            paths.append(str(path))
            for number, raw in nonblank_lines(data):
                expected[(str(path), number)] = raw
        records = stitch_jsonl(root / "out.jsonl", "--jobs", "1", "-q", *paths)
        seen = [(r["file"], r["line"]) for r in records]
        assert len(seen) == len(set(seen))
        assert set(seen) == set(expected)
        for r in records:
            assert set(r) - {"reason"} == KEYS
            assert ("reason" in r) == (r["trace_id"] is None)
            raw = expected[(r["file"], r["line"])]
            try:
                original = json.loads(raw)
            except (ValueError, RecursionError):
                original = None
            if isinstance(original, dict) and r["record"] != {
                "message": raw.decode("utf-8", "replace")
            }:
                assert r["record"] == original
            else:
                # A text line, or one in logfmt (``key=value`` pairs, even "0=").
                text = raw.decode("utf-8", "replace")
                assert r["record"] in ({"message": text}, parse_logfmt(text))


def test_huge_lines_and_a_file_still_being_written(tmp_path: Path) -> None:
    big = json.dumps({"trace_id": TRACES[0], "blob": "x" * 5_000_000}).encode()
    cut = json.dumps({"trace_id": TRACES[1], "message": "being written"}).encode()[:-7]
    path = tmp_path / "app.log"
    path.write_bytes(big + b"\n" + b"plain line\n" + cut)
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    by_line = {r["line"]: r for r in records}
    assert set(by_line) == {1, 2, 3}
    assert len(by_line[1]["record"]["blob"]) == 5_000_000
    assert by_line[2]["reason"] == "no trace id"
    # The cut line still names its trace in its text: it stays with it.
    assert by_line[3]["trace_id"] == TRACES[1]
    assert by_line[3]["record"] == {"message": cut.decode()}


def test_truncated_line_without_any_id_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    path.write_bytes(b'{"trace_id": "' + TRACES[0].encode() + b'"}\n{"message": "half')
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    assert records[-1]["reason"] == "truncated line"


def test_parallel_ranges_of_one_big_file_number_lines_like_one(tmp_path: Path) -> None:
    from logtrace.stitch import _plan

    path = tmp_path / "big.log"
    lines = [
        json.dumps({"trace_id": TRACES[i % 3], "message": f"m{i}", "pad": "p" * (i % 50)})
        for i in range(20000)
    ]
    path.write_text("\n".join(lines) + "\n")
    old = _plan.CHUNK
    _plan.CHUNK = 100_000
    try:
        records = stitch_jsonl(tmp_path / "out.jsonl", "-q", "--jobs", "2", str(path))
    finally:
        _plan.CHUNK = old
    assert sorted(r["line"] for r in records) == list(range(1, 20001))
    for r in records:
        assert r["record"]["message"] == f"m{r['line'] - 1}"


def test_free_text_after_pairs_reaches_the_output(tmp_path: Path) -> None:
    path = tmp_path / "pay.log"
    free = f"trace_id={TRACES[0]} payment failed: card declined"
    error = f"span_id={SPANS[1]} trace_id={TRACES[0]} ERROR database timeout"
    path.write_text(f'ts=2026-11-24T10:00:01Z trace_id={TRACES[0]} msg="start"\n{free}\n{error}\n')
    records = stitch_jsonl(tmp_path / "out.jsonl", "-q", str(path))
    by_line = {r["line"]: r for r in records}
    assert by_line[1]["record"] == {
        "ts": "2026-11-24T10:00:01Z",
        "trace_id": TRACES[0],
        "msg": "start",
    }
    assert by_line[2]["record"] == {"message": free}
    assert by_line[3]["record"] == {"message": error}
    assert {r["trace_id"] for r in records} == {TRACES[0]}
    assert by_line[3]["span_id"] == SPANS[1]
    # The ERROR word marks the trace as failed.
    errors = stitch_jsonl(tmp_path / "errors.jsonl", "-q", "--errors", str(path))
    assert len(errors) == 3
    path.write_text(f"trace_id={TRACES[0]} payment failed: card declined\n")
    assert stitch_jsonl(tmp_path / "none.jsonl", "-q", "--errors", str(path)) == []


def test_a_file_ending_mid_line_is_read_with_a_warning(tmp_path: Path) -> None:
    from _stitchutil import run

    whole = json.dumps({"trace_id": TRACES[0], "message": "first"})
    cut = tmp_path / "cut.log"
    cut.write_text(whole + "\n" + json.dumps({"trace_id": TRACES[0], "message": "last"}))
    done = tmp_path / "done.log"
    done.write_text(whole + "\n")
    out = tmp_path / "out.jsonl"
    code, err = run("stitch", "--format", "jsonl", "-o", str(out), str(cut), str(done))
    assert code == 0
    assert f"warning: {cut}: ends in the middle of a line" in err
    assert str(done) not in err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {(r["file"], r["line"]) for r in records} == {
        (str(cut), 1),
        (str(cut), 2),
        (str(done), 1),
    }
    assert [r["record"]["message"] for r in records if r["line"] == 2] == ["last"]
