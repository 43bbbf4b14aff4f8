"""``logtrace grep``: every line holding an ID, raw, in stitched order."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from _stitchutil import REPO, cli, stitch_jsonl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import logtrace.stitch._grep as grep_module
from logtrace.stitch import expand_paths, grep_stream
from logtrace.testing import SynthConfig, SynthResult, generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> SynthResult:
    return generate(str(tmp_path_factory.mktemp("g")), SynthConfig(traces=60, seed=3))


def _trace_lines(synth: SynthResult, trace: str) -> list[bytes]:
    out = []
    for path in synth.files:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as fh:
            out.extend(line.rstrip(b"\r\n") for line in fh if trace.encode() in line)
    return out


def _a_trace(synth: SynthResult) -> str:
    """The ID of the first trace the generator wrote."""
    with open(synth.truth, encoding="utf-8") as fh:
        fh.readline()
        trace: str = json.loads(fh.readline())["trace_id"]
    return trace


class TestGrep:
    def test_same_lines_as_grep_in_stitched_order(self, synth: SynthResult, tmp_path: Path) -> None:
        records = stitch_jsonl(tmp_path / "o.jsonl", "-q", *synth.files)
        trace = records[len(records) // 3]["trace_id"]
        proc = cli("grep", "--no-filename", trace, *synth.files)
        assert proc.returncode == 0
        lines = proc.stdout.splitlines()
        assert sorted(lines) == sorted(_trace_lines(synth, trace))
        # The order stitch gives the same trace.
        stitched = [(r["file"], r["line"]) for r in records if r["trace_id"] == trace]
        proc = cli("grep", "-H", "-n", trace, *synth.files)
        got = []
        for raw in proc.stdout.splitlines():
            name, number, _ = raw.split(b":", 2)
            got.append((name.decode(), int(number)))
        assert got == stitched

    def test_lines_linked_to_no_parent_are_noted(
        self, synth: SynthResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Logs without parent IDs: beyond small inputs, one trace's lines
        cannot show which span called which, so grep says it corrects no
        clock by them, and points to stitch, which infers the calls from
        every trace. Logs with parent IDs get no such note; small inputs are
        put in order by a stitch of them, inferred calls included."""
        assert "no parent" not in cli("grep", _a_trace(synth), *synth.files).stderr.decode()
        parentless = generate(str(tmp_path), SynthConfig(traces=30, seed=3, parent_ids=False))
        trace = _a_trace(parentless)
        proc = cli("grep", "-H", "-n", trace, *parentless.files)
        assert proc.returncode == 0 and "no parent" not in proc.stderr.decode()
        out = tmp_path / "one.jsonl"
        rows = stitch_jsonl(out, "-q", "--trace", trace, *parentless.files)
        got = [b":".join(line.split(b":", 2)[:2]) for line in proc.stdout.splitlines()]
        want = [f"{r['file']}:{r['line']}".encode() for r in rows if r["trace_id"] == trace]
        assert len(got) > 10
        # The lines that spell the ID as given, in the stitch's order.
        assert got == [w for w in want if w in set(got)]

        monkeypatch.setattr(grep_module, "SMALL_INPUT", 0)
        notes: list[str] = []
        sources = expand_paths(parentless.files, str(tmp_path), None)
        grep_stream([trace], sources, [], lambda m: None, notes=notes)
        assert any("name no parent" in n and "logtrace stitch --trace ID" in n for n in notes)

    def test_prefixes(self, tmp_path: Path) -> None:
        a = tmp_path / "a.log"
        a.write_text("x\nhello id=abc123\n")
        assert cli("grep", "abc123", str(a)).stdout == b"hello id=abc123\n"
        assert cli("grep", "-n", "abc123", str(a)).stdout == b"2:hello id=abc123\n"
        assert cli("grep", "-H", "abc123", str(a)).stdout == f"{a}:hello id=abc123\n".encode()
        b = tmp_path / "b.log"
        b.write_text("abc123 too\n")
        both = cli("grep", "abc123", str(a), str(b)).stdout
        assert f"{b}:abc123 too\n".encode() in both
        assert cli("grep", "--no-filename", "abc123", str(a), str(b)).stdout.count(b":") == 0

    def test_finds_request_ids_and_span_ids_in_compressed_files(self, tmp_path: Path) -> None:
        path = tmp_path / "app.log.1.gz"
        with gzip.open(path, "wt") as fh:
            fh.write(json.dumps({"request_id": "req-42", "span_id": "00f067aa0ba902b7"}) + "\r\n")
            fh.write("other\n")
        proc = cli("grep", "req-42", str(path))
        assert (
            proc.stdout
            == json.dumps({"request_id": "req-42", "span_id": "00f067aa0ba902b7"}).encode() + b"\n"
        )
        assert cli("grep", "00f067aa0ba902b7", str(path)).returncode == 0

    def test_a_128_bit_id_finds_the_lines_of_its_low_half(self, tmp_path: Path) -> None:
        """ddtrace's gateway logs the 128-bit ID; a service that got only the
        low half logs it in decimal: grepping either form finds both, in the
        order a stitch gives (one trace)."""
        long = "6b15fdf200000000e4762d231b01be63"
        decimal = str(int(long[16:], 16))
        lines = [
            ("gateway", long, "00.001", "asked"),
            ("orders", decimal, "00.002", "order asked"),
            ("orders", decimal, "00.003", "order answered"),
            ("gateway", long, "00.004", "answered"),
            ("orders", "77", "00.005", "another trace"),
        ]
        for service in ("gateway", "orders"):
            records = [
                {"timestamp": f"2026-03-01T10:00:{at}Z", "dd.service": name,
                 "dd.trace_id": trace, "message": said}
                for name, trace, at, said in lines if name == service
            ]  # fmt: skip
            (tmp_path / f"{service}.log").write_text(
                "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
            )
        files = [str(tmp_path / "gateway.log"), str(tmp_path / "orders.log")]
        for wanted in (long, long.upper(), decimal):
            out = cli("grep", "--no-filename", wanted, *files).stdout.decode()
            said = [json.loads(line)["message"] for line in out.splitlines()]
            assert said == ["asked", "order asked", "order answered", "answered"], (wanted, said)

    def test_nothing_matched_exits_1(self, tmp_path: Path) -> None:
        (tmp_path / "a.log").write_text("nothing here\n")
        proc = cli("grep", "deadbeef", str(tmp_path / "a.log"))
        assert proc.returncode == 1 and proc.stdout == b""

    def test_missing_file_exits_2_naming_it(self, tmp_path: Path) -> None:
        proc = cli("grep", "x", str(tmp_path / "gone.log"))
        assert proc.returncode == 2
        assert b"gone.log" in proc.stderr and proc.stderr.count(b"\n") == 1


def _loaded(statement: str, modules: Sequence[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter holds after running ``statement``."""
    code = f"import sys\n{statement}\nprint(*[m for m in {tuple(modules)!r} if m in sys.modules])\n"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=REPO, check=True, timeout=60
    )
    return proc.stdout.decode().split()


def test_importing_the_cli_stays_light() -> None:
    assert _loaded("import logtrace.cli", ["numpy", "msgspec", "logtrace.stitch._pipeline"]) == []


def test_the_search_starts_before_the_parser_loads() -> None:
    # grep lists its inputs and starts searching with the light modules alone;
    # the parser, the data model and the ordering load while the search runs.
    heavy = ["_parse", "_model", "_order_rules", "_clocks", "_grep_order"]
    statement = "from logtrace.stitch import expand_paths, grep_stream"
    modules = [f"logtrace.stitch.{m}" for m in heavy] + ["dataclasses", "msgspec"]
    assert _loaded(statement, modules) == []


def test_a_grep_run_does_not_import_numpy(tmp_path: Path) -> None:
    """Beyond small inputs (which a stitch of them puts in order)."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    gateway = tmp_path / "gateway.log"
    gateway.write_text(
        json.dumps(
            {
                "timestamp": "2026-03-01T10:05:09.218055Z",
                "trace_id": trace,
                "span_id": "00f067aa0ba902b7",
                "span.kind": "client",
                "span.start": "2026-03-01T10:05:09.215041Z",
                "duration_ms": 3.014,
            }
        )
        + "\n"
    )
    users = tmp_path / "users.log"
    users.write_text(
        json.dumps(
            {
                "timestamp": "2026-03-01T10:05:09.216Z",
                "trace_id": trace,
                "span_id": "53995c3f42cd8ad8",
                "parent_span_id": "00f067aa0ba902b7",
            }
        )
        + "\n"
    )
    code = (
        "import sys\n"
        "import logtrace.stitch._grep\n"
        "logtrace.stitch._grep.SMALL_INPUT = 0  # as beyond small inputs\n"
        "from logtrace.cli import main\n"
        f"code = main(['grep', '--no-filename', {trace!r}, {str(gateway)!r}, {str(users)!r}])\n"
        "print(code, 'numpy' in sys.modules, file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, cwd=REPO, check=True, timeout=60
    )
    assert proc.stdout.count(b"\n") == 2  # the run got to ordering both matches
    assert proc.stderr.split() == [b"0", b"False"]


def test_python_dash_m_help() -> None:
    proc = cli("--help")
    assert proc.returncode == 0 and b"stitch" in proc.stdout and b"grep" in proc.stdout
    assert cli("grep", "--help").returncode == 0


@pytest.mark.parametrize("read", [7, 64, 4096, 1 << 20])
def test_search_by_blocks_finds_every_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read: int
) -> None:
    # Reads of ``read`` bytes into one buffer: lines cut by a read, lines longer
    # than the buffer, CR LF, a lone CR, and a last line without its newline.
    from logtrace.stitch import _grep_search
    from logtrace.stitch._model import Source

    monkeypatch.setattr(_grep_search, "_READ", read)
    lines = [f"line {i} {'id=abc123' if i % 37 == 0 else 'x' * (i % 200)}" for i in range(5000)]
    lines[74] = "long abc123 " + "y" * 9000
    endings = ["\r\n" if i < 100 else "\r" if i % 500 == 1 else "\n" for i in range(5000)]
    endings[-1] = ""
    lines[-1] += " abc123"
    path = tmp_path / "a.log"
    path.write_bytes("".join(t + e for t, e in zip(lines, endings, strict=True)).encode())
    found = _grep_search.search_file(0, Source(str(path), str(path)), [b"abc123"], [], numbers=True)
    assert [(m.line, m.raw.decode()) for m in found] == [
        (i + 1, line) for i, line in enumerate(lines) if "abc123" in line
    ]
    offsets = [
        sum(len(t) + len(e) for t, e in zip(lines[:i], endings, strict=False))
        for i in (m.line - 1 for m in found)
    ]
    assert [m.offset for m in found] == offsets


class TestManyMatches:
    def _files(self, tmp_path: Path) -> list[Path]:
        # Two services, the later file's lines earlier in time: stitched order
        # would interleave them, file order does not.
        files = []
        for n, (name, base) in enumerate((("web.log", 5), ("db.log", 0))):
            path = tmp_path / name
            path.write_text(
                "".join(
                    json.dumps(
                        {
                            "timestamp": f"2026-11-24T10:00:{base + i:02d}Z",
                            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                            "message": f"{name} {i}",
                        }
                    )
                    + "\n"
                    for i in range(5)
                )
            )
            files.append(path)
            assert n < 2
        return files

    def test_within_the_buffer_the_order_is_stitched(self, tmp_path: Path) -> None:
        from logtrace.stitch import grep_stream
        from logtrace.stitch._model import Source

        sources = [Source(str(p), str(p)) for p in self._files(tmp_path)]
        got: list[bytes] = []
        count, ordered = grep_stream(["4bf92f35"], sources, [], lambda m: got.append(m.raw))
        assert (count, ordered) == (10, True)
        assert [json.loads(r)["message"] for r in got][:5] == [f"db.log {i}" for i in range(5)]

    def test_beyond_the_buffer_matches_come_in_file_order_as_found(self, tmp_path: Path) -> None:
        from logtrace.stitch import grep_stream
        from logtrace.stitch._model import Source

        sources = [Source(str(p), str(p)) for p in self._files(tmp_path)]
        got: list[tuple[int, int]] = []
        count, ordered = grep_stream(
            ["4bf92f35"], sources, [], lambda m: got.append((m.file, m.line)), buffer=300
        )
        assert (count, ordered) == (10, False)
        assert got == [(f, i) for f in (0, 1) for i in range(1, 6)]

    def test_the_command_notes_the_file_order(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from logtrace.stitch import _grep

        monkeypatch.setattr(_grep, "ORDER_BUFFER", 300)
        files = self._files(tmp_path)
        out = tmp_path / "out"
        code, err = run_to(out, "grep", "-n", "4bf92f35", *map(str, files))
        assert code == 0
        assert "file order" in err
        numbers = [line.split(b":")[1] for line in out.read_bytes().splitlines()]
        assert numbers == [b"%d" % i for i in (1, 2, 3, 4, 5)] * 2

    def test_an_id_in_two_cases_is_one_match_a_line(self, tmp_path: Path) -> None:
        path = tmp_path / "a.log"
        path.write_text("ABC123 abc123\nabc123\nABC123\nnone\n")
        proc = cli("grep", "-n", "ABC123", str(path))
        assert proc.stdout == b"1:ABC123 abc123\n2:abc123\n3:ABC123\n"

    def test_compressed_files_are_searched_in_blocks_with_line_numbers(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "a.log.gz"
        lines = [f"line {i} {'abc123' if i % 1000 == 7 else 'x' * 300}" for i in range(60000)]
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
        proc = cli("grep", "-n", "abc123", str(path))
        want = [f"{i + 1}:{lines[i]}".encode() for i in range(7, 60000, 1000)]
        assert proc.stdout.splitlines() == want


def run_to(out: Path, *argv: str) -> tuple[int, str]:
    """``logtrace ARGV`` in-process, standard output to ``out``."""
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from logtrace.cli import main

    err = io.StringIO()
    with open(out, "wb") as f, io.TextIOWrapper(f) as text:
        with redirect_stdout(text), redirect_stderr(err):
            code = main(list(argv))
        text.flush()
    return code, err.getvalue()


@pytest.mark.parametrize("compressed", [False, True])
def test_a_lone_cr_ends_a_line(tmp_path: Path, compressed: bool) -> None:
    from logtrace.stitch import _grep_search
    from logtrace.stitch._model import Source

    lines = [f"line {i} {'id=abc123' if i % 3 == 0 else 'x'}" for i in range(12)]
    endings = [b"\n", b"\r", b"\r\n", b"\r\r\n", b"\n\r"]
    data = b"".join(line.encode() + endings[i % 5] for i, line in enumerate(lines))
    path = tmp_path / ("a.log.gz" if compressed else "a.log")
    path.write_bytes(gzip.compress(data) if compressed else data)
    found = _grep_search.search_file(0, Source(str(path), str(path)), [b"abc123"], [], numbers=True)
    records = stitch_jsonl(tmp_path / "o.jsonl", "-q", str(path))
    stitched = {r["line"]: r["record"]["message"].encode() for r in records}
    assert [m.raw for m in found] == [line.encode() for line in lines if "abc123" in line]
    assert {m.line: m.raw for m in found} == {n: t for n, t in stitched.items() if b"abc123" in t}


class TestFilesSearchedAhead:
    """With more than one CPU, threads search the next files while the
    matches of this one are read: the same matches, order and warnings."""

    @staticmethod
    def _sources(tmp_path: Path) -> list[Path]:
        paths = []
        for k in range(7):
            lines = [
                json.dumps(
                    {
                        "timestamp": f"2026-11-24T10:{k:02d}:{i:02d}Z",
                        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736" if i % 3 == 0 else "0" * 32,
                        "message": f"file {k} line {i}",
                    }
                )
                for i in range(30)
            ]
            data = ("\n".join(lines) + "\n").encode()
            path = tmp_path / (f"s{k}.log.gz" if k % 2 else f"s{k}.log")
            path.write_bytes(gzip.compress(data) if k % 2 else data)
            paths.append(path)
        return paths

    @staticmethod
    def _run(
        paths: list[Path],
        workers: int,
        monkeypatch: pytest.MonkeyPatch,
        buffer: int | None = None,
        chunk: int = 48 << 20,
    ) -> tuple[list[tuple[int, int, bytes]], tuple[int, bool], list[str], list[str]]:
        from logtrace.stitch import _grep, _grep_search, _plan
        from logtrace.stitch._model import Source

        monkeypatch.setattr(_grep_search, "_workers", lambda files: min(files, workers))
        monkeypatch.setattr(_plan, "CHUNK", chunk)  # uncompressed files cut into ranges this big
        got: list[tuple[int, int, bytes]] = []
        warnings: list[str] = []
        skipped: list[str] = []
        result = _grep.grep_stream(
            ["4bf92f35"],
            [Source(str(p), str(p)) for p in paths],
            warnings,
            lambda m: got.append((m.file, m.line, m.raw)),
            numbers=True,
            buffer=buffer,
            skipped=skipped,
        )
        return got, result, warnings, skipped

    def test_same_matches_in_the_same_order_as_one_thread(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        paths = self._sources(tmp_path)
        one = self._run(paths, 1, monkeypatch)
        for workers in (2, 4):
            assert self._run(paths, workers, monkeypatch) == one
            # Uncompressed files in ranges of a few lines, searched by several threads.
            assert self._run(paths, workers, monkeypatch, chunk=300) == one
        got, (count, ordered), _, _ = one
        assert (count, ordered) == (70, True)
        assert [json.loads(raw)["message"] for _, _, raw in got] == [
            f"file {k} line {i}" for k in range(7) for i in range(0, 30, 3)
        ]

    def test_past_the_buffer_each_file_comes_whole_in_file_order(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Files searched ahead give up past half the buffer and are searched
        # again in turn: nothing twice, nothing lost.
        paths = self._sources(tmp_path)
        for chunk in (48 << 20, 300):
            got, (count, ordered), _, _ = self._run(paths, 2, monkeypatch, 2000, chunk)
            assert (count, ordered) == (70, False)
            assert [(f, line) for f, line, _ in got] == [
                (k, i + 1) for k in range(7) for i in range(0, 30, 3)
            ]

    def test_a_file_gone_is_skipped_and_a_cut_one_warned_in_file_order(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        paths = self._sources(tmp_path)
        paths[2].unlink()
        whole = paths[3].read_bytes()
        paths[3].write_bytes(whole[: len(whole) // 2])  # a gzip file still being written
        one = self._run(paths, 1, monkeypatch)
        two = self._run(paths, 2, monkeypatch)
        assert two == one
        assert self._run(paths, 2, monkeypatch, chunk=300) == one
        got, (count, _), warnings, skipped = two
        assert len(skipped) == 1 and "s2.log" in skipped[0]
        assert len(warnings) == 1 and "s3.log.gz" in warnings[0]
        per_file = {f: sum(1 for g, _, _ in got if g == f) for f in range(7)}
        assert {f: n for f, n in per_file.items() if f != 3} == {
            0: 10,
            1: 10,
            2: 0,
            4: 10,
            5: 10,
            6: 10,
        }
        assert per_file[3] < 10  # what could be read before the cut
        assert count == sum(per_file.values())


@given(
    data=st.binary(max_size=600).map(lambda b: b.replace(b"\x00", b"ab")),
    read=st.integers(min_value=1, max_value=80),
)
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_blocks_find_what_one_buffer_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, read: int
) -> None:
    """Whatever the bytes and the read size, reading in blocks finds the same
    lines, numbers and offsets as searching the whole file at once."""
    from logtrace.stitch import _grep_search
    from logtrace.stitch._model import Source

    path = tmp_path / "h.log"
    path.write_bytes(data)
    whole = list(_grep_search._merged(data, len(data), [b"ab"], 0, 0, True, 1))
    monkeypatch.setattr(_grep_search, "_READ", read)
    blocks = _grep_search.search_file(0, Source(str(path), str(path)), [b"ab"], [], numbers=True)
    assert [(m.line, m.offset, m.raw) for m in blocks] == [(m.line, m.offset, m.raw) for m in whole]


@given(
    lines=st.lists(
        st.tuples(
            st.text(alphabet="abx ", max_size=40),
            st.sampled_from(["\n", "\r\n", "\r"]),
        ),
        max_size=60,
    ),
    chunk=st.integers(min_value=1, max_value=200),
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_ranges_find_what_one_thread_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[tuple[str, str]], chunk: int
) -> None:
    """A file cut into ranges searched by threads gives the lines, numbers and
    offsets one thread finds, whatever its line endings."""
    from logtrace.stitch import _grep, _grep_search, _plan
    from logtrace.stitch._model import Source

    path = tmp_path / "r.log"
    path.write_bytes("".join(t + e for t, e in lines).encode())
    sources = [Source(str(path), str(path)), Source(str(path), str(path))]

    def run(workers: int, buffer: int) -> list[tuple[int, int, int, bytes]]:
        monkeypatch.setattr(_grep_search, "_workers", lambda files: min(files, workers))
        got: list[tuple[int, int, int, bytes]] = []
        _grep.grep_stream(
            ["ab"],
            sources,
            [],
            lambda m: got.append((m.file, m.line, m.offset, m.raw)),
            True,
            buffer,
        )
        return got

    # Held ahead (no limit), and searched again in turn (each range past its share).
    one = {buffer: run(1, buffer) for buffer in (-1, 0)}
    monkeypatch.setattr(_plan, "CHUNK", chunk)
    assert {buffer: run(2, buffer) for buffer in (-1, 0)} == one
