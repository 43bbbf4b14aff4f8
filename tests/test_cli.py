"""The ``logtrace`` command as a user runs it: real files, real symlinks,
``python -m logtrace`` in a real process."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def cli(*argv: str, stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("NO_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "logtrace", *argv],
        stdout=subprocess.PIPE if stdout is None else stdout,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        check=False,
        timeout=120,
    )


def on_terminal(*argv: str) -> tuple[int, bytes]:
    """``logtrace ARGV`` with standard output on a pseudo-terminal: the exit
    code and what the terminal got."""
    leader, follower = pty.openpty()
    try:
        proc = cli(*argv, stdout=follower)
        os.close(follower)
        follower = -1
        got = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the other side is closed and drained
                break
            if not chunk:
                break
            got += chunk
        return proc.returncode, got
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)


def record(message: str, second: int = 0, **extra: object) -> str:
    return json.dumps(
        {
            "timestamp": f"2026-11-24T10:00:{second:02d}Z",
            "trace_id": TRACE,
            "message": message,
            **extra,
        }
    )


def jsonl(proc: subprocess.CompletedProcess[bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "orders.log").write_text(record("order placed", 1) + "\n")
    (d / "users.log").write_text(record("user found", 2) + "\n")
    return d


def _bad_entries(d: Path) -> list[str]:
    """Entries no one can read, root included: a dangling symlink, a symlink
    loop and a FIFO (which would block a reader forever)."""
    (d / "dangling.log").symlink_to(d / "nowhere.log")
    (d / "loop.log").symlink_to(d / "loop.log")
    os.mkfifo(d / "fifo.log")
    return ["dangling.log", "loop.log", "fifo.log"]


class TestUnreadableEntries:
    def test_a_bad_entry_under_a_directory_is_named_and_the_rest_stitched(self, logs: Path) -> None:
        bad = _bad_entries(logs)
        proc = cli("stitch", "--format", "jsonl", str(logs))
        assert proc.returncode == 3
        assert sorted(r["record"]["message"] for r in jsonl(proc)) == [  # type: ignore[index]
            "order placed",
            "user found",
        ]
        for name in bad:
            assert f"{logs / name}".encode() in proc.stderr
        assert b"dangling symlink" in proc.stderr
        assert b"2 files, 3 skipped" in proc.stderr

    def test_bad_entries_named_directly_are_skipped_too(self, logs: Path) -> None:
        _bad_entries(logs)
        proc = cli(
            "stitch",
            "-q",
            "--format",
            "jsonl",
            str(logs / "orders.log"),
            str(logs / "dangling.log"),
            str(logs / "loop.log"),
            str(logs / "missing.log"),
        )
        assert proc.returncode == 3
        assert len(jsonl(proc)) == 1
        # --quiet drops the summary, not the names of what was skipped.
        assert proc.stderr.count(b"(skipped)") == 3

    def test_strict_fails_the_run_before_writing(self, logs: Path, tmp_path: Path) -> None:
        _bad_entries(logs)
        out = tmp_path / "out.jsonl"
        proc = cli("stitch", "--strict", "--format", "jsonl", "-o", str(out), str(logs))
        assert proc.returncode == 2
        assert out.read_bytes() == b""
        assert proc.stderr.count(b"\n") == 1 and b"logs/" in proc.stderr

    def test_nothing_readable_is_an_error(self, tmp_path: Path) -> None:
        d = tmp_path / "d"
        d.mkdir()
        _bad_entries(d)
        proc = cli("stitch", str(d))
        assert proc.returncode == 2
        assert b"nothing could be read" in proc.stderr

    def test_grep_searches_the_rest_and_exits_2_as_grep_does(self, logs: Path) -> None:
        _bad_entries(logs)
        proc = cli("grep", "--no-filename", "user found", str(logs))
        assert proc.returncode == 2
        assert proc.stdout == record("user found", 2).encode() + b"\n"
        assert proc.stderr.count(b"(skipped)") == 3

    def test_a_fifo_named_on_the_command_line_is_read(self, logs: Path) -> None:
        fifo = logs.parent / "piped.log"
        os.mkfifo(fifo)
        env = dict(os.environ, PYTHONPATH=str(REPO))
        proc = subprocess.Popen(
            [sys.executable, "-m", "logtrace", "stitch", "-q", "--format", "jsonl", str(fifo)],
            stdout=subprocess.PIPE,
            env=env,
        )
        with open(fifo, "w") as writer:
            writer.write(record("through a pipe") + "\n")
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        assert [json.loads(line)["record"]["message"] for line in out.splitlines()] == [
            "through a pipe"
        ]


class TestOneFileOneInput:
    def test_a_file_reached_three_ways_is_read_once(self, logs: Path) -> None:
        (logs.parent / "alias.log").symlink_to(logs / "orders.log")
        proc = cli(
            "stitch",
            "--format",
            "jsonl",
            str(logs),
            str(logs / "orders.log"),
            str(logs / "orders.log"),
            str(logs.parent / "alias.log"),
        )
        assert proc.returncode == 0, proc.stderr
        messages = [r["record"]["message"] for r in jsonl(proc)]  # type: ignore[index]
        assert sorted(messages) == ["order placed", "user found"]
        assert b"logtrace: 2 files" in proc.stderr

    def test_a_symlink_in_the_directory_leaves_the_file_its_own_name(self, logs: Path) -> None:
        (logs / "current.log").symlink_to(logs / "orders.log")
        proc = cli("stitch", "--format", "jsonl", str(logs))
        files = {r["file"] for r in jsonl(proc)}
        assert files == {str(logs / "orders.log"), str(logs / "users.log")}


class TestRotations:
    def test_rotations_are_read_oldest_first_then_the_live_file(self, tmp_path: Path) -> None:
        import gzip

        d = tmp_path / "logs"
        d.mkdir()
        # Every record at the same time: the order out is the order read.
        names = ["app.log.10", "app.log.9", "app.log.3.gz", "app.log.2", "app.log.1", "app.log"]
        for name in names:
            line = (record(name) + "\n").encode()
            if name.endswith(".gz"):
                (d / name).write_bytes(gzip.compress(line))
            else:
                (d / name).write_bytes(line)
        proc = cli("stitch", "--format", "jsonl", str(d))
        assert [r["record"]["message"] for r in jsonl(proc)] == names  # type: ignore[index]
        # Named one by one in the shell's (string) order: the same.
        proc = cli("stitch", "--format", "jsonl", *sorted(str(d / n) for n in names))
        assert [r["record"]["message"] for r in jsonl(proc)] == names  # type: ignore[index]

    def test_date_suffixed_rotations_are_read_by_date(self, tmp_path: Path) -> None:
        d = tmp_path / "logs"
        d.mkdir()
        names = ["app.log-20261130", "app.log.2026-12-02", "app.log-20261203", "app.log"]
        for name in names:
            (d / name).write_text(record(name) + "\n")
        proc = cli("stitch", "--format", "jsonl", str(d))
        assert [r["record"]["message"] for r in jsonl(proc)] == names  # type: ignore[index]


class TestTerminal:
    OSC = "\x1b]0;pwned\x07"

    def test_the_summary_escapes_service_names_and_warnings(self, tmp_path: Path) -> None:
        a = tmp_path / "a.log"
        a.write_text(record("in", 1, service=f"web{self.OSC}", span_id="00f067aa0ba902b7") + "\n")
        b = tmp_path / "b.log"
        b.write_text(
            record(
                "out",
                2,
                service="db",
                span_id="53995c3f42cd8ad8",
                parent_span_id="00f067aa0ba902b7",
            )
            + "\n"
        )
        evil = tmp_path / f"gone{self.OSC}.log"
        proc = cli("stitch", "-o", str(tmp_path / "out.txt"), str(a), str(b), str(evil))
        assert proc.returncode == 3
        assert b"\x1b" not in proc.stderr and b"\x07" not in proc.stderr
        assert b"\\x1b]0;pwned\\x07" in proc.stderr

    def test_grep_escapes_on_a_terminal_and_stays_raw_in_a_pipe(self, tmp_path: Path) -> None:
        a = tmp_path / "a.log"
        a.write_bytes(b"id=abc123 \x1b]0;pwned\x07 tab\there \x9b\xc2\x9b\n")
        code, shown = on_terminal("grep", "abc123", str(a))
        assert code == 0
        assert shown == b"id=abc123 \\x1b]0;pwned\\x07 tab\there \\x9b\\x9b\r\n"
        piped = cli("grep", "abc123", str(a))
        assert piped.stdout == a.read_bytes()

    def test_stitch_text_on_a_terminal_is_escaped(self, tmp_path: Path) -> None:
        a = tmp_path / "a.log"
        a.write_text(record(f"hello {self.OSC}") + "\n")
        code, shown = on_terminal("stitch", "-q", str(a))
        assert code == 0
        assert b"\x1b]" not in shown and b"\x07" not in shown
        assert b"pwned" in shown


class TestOptions:
    def test_version(self) -> None:
        proc = cli("--version")
        assert proc.returncode == 0
        assert proc.stdout.startswith(b"logtrace ") and proc.stdout.strip()[-1:].isdigit()

    def test_stitch_help_gives_defaults_and_what_repeats(self) -> None:
        text = b" ".join(cli("stitch", "--help").stdout.split())
        for option in (b"--trace", b"--service"):
            assert text.split(option, 2)[-1].split(b"--", 1)[0].count(b"repeatable") == 1
        for words in (b"default: 512M", b"default: text", b"default: all cores", b"Exit status"):
            assert words in text
        options = [w for w in text.split() if w.startswith(b"--") and w != b"--help"]
        assert len(set(options)) >= 13

    def test_grep_dash_h_is_help_and_no_filename_is_long(self, tmp_path: Path) -> None:
        proc = cli("grep", "-h")
        assert proc.returncode == 0 and b"--no-filename" in proc.stdout
        a, b = tmp_path / "a.log", tmp_path / "b.log"
        a.write_text("x abc\n")
        b.write_text("y abc\n")
        assert cli("grep", "--no-filename", "abc", str(a), str(b)).stdout == b"x abc\ny abc\n"

    @pytest.fixture
    def day(self, tmp_path: Path) -> Path:
        f = tmp_path / "day.log"
        lines = []
        for n, when in enumerate(
            [
                "2026-11-23T23:59:59Z",
                "2026-11-24T00:00:00Z",
                "2026-11-24T23:59:59.5Z",
                "2026-11-25T00:00:00Z",
            ]
        ):
            trace = f"{n + 1:032x}"
            lines.append(json.dumps({"timestamp": when, "trace_id": trace, "message": when}))
        f.write_text("\n".join(lines) + "\n")
        return f

    def test_a_date_alone_is_the_whole_day(self, day: Path) -> None:
        proc = cli(
            "stitch",
            "--format",
            "jsonl",
            "--since",
            "2026-11-24",
            "--until",
            "2026-11-24",
            str(day),
        )
        assert proc.returncode == 0, proc.stderr
        assert [r["record"]["message"] for r in jsonl(proc)] == [  # type: ignore[index]
            "2026-11-24T00:00:00Z",
            "2026-11-24T23:59:59.5Z",
        ]

    def test_since_after_until_is_a_usage_error(self, day: Path) -> None:
        proc = cli("stitch", "--since", "2026-11-25", "--until", "2026-11-24T12:00:00Z", str(day))
        assert proc.returncode == 2 and proc.stdout == b""
        assert b"--since" in proc.stderr and b"later than --until" in proc.stderr

    def test_not_a_time_says_what_is(self, day: Path) -> None:
        proc = cli("stitch", "--since", "yesterday", str(day))
        assert proc.returncode == 2 and b"2026-11-24" in proc.stderr
