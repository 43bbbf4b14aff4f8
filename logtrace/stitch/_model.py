"""The plain data passed between the stitcher's stages.

The stitcher never holds parsed records: a run over millions of lines keeps
one fixed-size row per line (40 bytes) and reads a line's text
back by offset only when it writes it out. IDs are interned to small ints
per file chunk (:class:`FileScan`), then across the partition
(:class:`Table`). Every stage imports its types from here; nothing here
imports a stage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._schema import KIND_CLIENT as KIND_CLIENT_NAME
from .._schema import KIND_PRODUCER as KIND_PRODUCER_NAME
from .._schema import KIND_SERVER as KIND_SERVER_NAME
from ._source import Source

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    I32 = npt.NDArray[np.int32]
    I64 = npt.NDArray[np.int64]
    F64 = npt.NDArray[np.float64]
    B = npt.NDArray[np.bool_]

    ROW_DTYPE: np.dtype[np.void]
    SCAN_DTYPE: np.dtype[np.void]

__all__ = [
    "BINARY",
    "BROKEN",
    "ERROR",
    "JSON",
    "KIND_CLIENT",
    "KIND_FLAGS",
    "KIND_PRODUCER",
    "KIND_SERVER",
    "LOGFMT",
    "NO_TRACE_ID",
    "REASONS",
    "ROW_DTYPE",
    "ROW_DTYPES",
    "ROW_FIELDS",
    "SCAN_DTYPE",
    "SPAN_RECORD",
    "TOO_DEEP",
    "TRUNCATED",
    "UNBOUNDED",
    "UNPARSEABLE_JSON",
    "Cause",
    "Failure",
    "FileScan",
    "Operation",
    "Options",
    "Order",
    "Outcomes",
    "Rendering",
    "Source",
    "Summary",
    "Table",
    "Tree",
    "clock_note",
    "is_reference",
    "outward_ms",
]

# Row flags (bit set).
JSON = 1
"""The line is a valid JSON object, copied verbatim into the output."""
LOGFMT = 2
"""The line is logfmt; the output carries its key/value pairs."""
ERROR = 4
SPAN_RECORD = 8
KIND_CLIENT = 16
KIND_SERVER = 32
BROKEN = 64
"""The line could not be read as what it looks like (cut JSON, bad bytes), yet
carries a trace ID in its text: it joins its trace and counts as unparseable."""
KIND_PRODUCER = 128
"""A producer span record (a message sent): its consumers run after it, not inside it."""

KIND_FLAGS: dict[str, int] = {
    KIND_CLIENT_NAME: KIND_CLIENT,
    KIND_SERVER_NAME: KIND_SERVER,
    KIND_PRODUCER_NAME: KIND_PRODUCER,
}
"""The flag of each span kind a span record may name (``span.kind``); other kinds have none."""

# Reasons a line joins no trace (0: it does).
NO_TRACE_ID, UNPARSEABLE_JSON, BINARY, TOO_DEEP, TRUNCATED = 1, 2, 3, 4, 5
REASONS = ("", "no trace id", "unparseable json", "binary", "too deeply nested", "truncated line")

ROW_FIELDS = ("off", "len", "line", "ts", "trace", "span", "parent", "svc", "flags", "reason")
"""Per line: byte offset, length (line ending excluded), 1-based line number,
raw timestamp (NaN if none), trace, span and parent span index (-1 if none),
service index, flags, reason (see the flags and reasons above)."""
ROW_DTYPES = ("<i8", "<i4", "<i4", "<f8", "<i4", "<i4", "<i4", "<u2", "u1", "u1")

_DTYPE_FIELDS = {
    "ROW_DTYPE": list(zip(ROW_FIELDS, ROW_DTYPES, strict=True)),
    "SCAN_DTYPE": [*zip(ROW_FIELDS, ROW_DTYPES, strict=True), ("start", "<f8")],
}
"""``ROW_DTYPE``: a table's row. ``SCAN_DTYPE``: a scanned row, the table's row
plus the start time (raw clock) of a span record, NaN for other lines.

Both are numpy dtypes built on first use, so that what needs only the flags
(``logtrace grep`` and its parser) starts without loading numpy."""


def __getattr__(name: str) -> Any:
    fields = _DTYPE_FIELDS.get(name)
    if fields is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import numpy as np

    dtype = np.dtype(fields)
    globals()[name] = dtype
    return dtype


UNBOUNDED = "no calls bound it"
"""What :func:`clock_note` shows for an interval that nothing bounds on either side."""


def is_reference(offset_ms: float, low_ms: float, high_ms: float) -> bool:
    """Whether an offset and its interval are the reference clock's: the
    others are measured against it, so its own is exactly 0 both ways."""
    return low_ms == high_ms == offset_ms == 0.0


def outward_ms(low_s: float, high_s: float) -> tuple[float, float]:
    """An offset's interval in milliseconds, to the microsecond, rounded
    outwards: an offset at a bound, rounded, stays inside."""
    low, high = low_s * 1e6, high_s * 1e6
    return (
        math.floor(low) / 1e3 if math.isfinite(low) else low,
        math.ceil(high) / 1e3 if math.isfinite(high) else high,
    )


def clock_note(offset_ms: float, low_ms: float, high_ms: float) -> str:
    """An offset and the interval the evidence allows for it, in milliseconds:
    ``+0.000 ms [-0.412, +12.100]``, ``+0.000 ms [-inf, +1.888]`` (bounded on
    one side only), ``+0.000 ms [no calls bound it]``, ``+0.000 ms (reference)``."""
    if is_reference(offset_ms, low_ms, high_ms):
        return "+0.000 ms (reference)"
    if math.isinf(low_ms) and math.isinf(high_ms):
        return f"{offset_ms:+.3f} ms [{UNBOUNDED}]"

    def side(x: float) -> str:
        return f"{x:+.3f}" if math.isfinite(x) else ("-inf" if x < 0 else "+inf")

    return f"{offset_ms:+.3f} ms [{side(low_ms)}, {side(high_ms)}]"


@dataclass(slots=True)
class Options:
    """What a run selects and how it writes it (the command line's options)."""

    traces: Sequence[str] = ()
    errors_only: bool = False
    services: Sequence[str] = ()
    since: float | None = None
    until: float | None = None
    format: str = "jsonl"
    """``jsonl``, ``text``, ``html``, ``chrome`` (or its other name ``perfetto``),
    ``otlp``, ``jaeger`` or ``zipkin``."""
    skew_correction: bool = True
    jobs: int = 1
    memory: int = 512 << 20
    """Memory budget in bytes; the run is cut into partitions beyond it."""
    color: bool = False
    tmp_dir: str | None = None
    partitions: int = 0
    """Trace partitions; 0 lets the memory budget decide (see :mod:`._partition`)."""
    strict: bool = False
    """An input that cannot be read fails the run instead of being skipped."""
    summary: bool = False
    """Also compute the run's outcomes (``Summary.outcomes``: see :mod:`._outcomes`)."""
    callers: tuple[tuple[str, str], ...] = ()
    """Set by the run, not the command line: the (caller, callee) services
    whose calls are inferred from containment, for logs that name no parent
    span (see :mod:`._containment`)."""
    trimmed: tuple[tuple[str, str], ...] = ()
    """Set by the run: those of :attr:`callers` whose callees work after they
    answered (their last line does not count: see :class:`._containment.Link`)."""


@dataclass(slots=True)
class Summary:
    """What a run read and did, for the summary line and the exit code."""

    files: int = 0
    records: int = 0
    traces: int = 0
    written_traces: int = 0
    unattributed: int = 0
    unparseable: int = 0
    offsets_ms: dict[str, float] = field(default_factory=dict)
    drift_ppm: dict[str, float] = field(default_factory=dict)
    offset_bounds_ms: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per service, the interval the calls allow for its offset (infinite
    sides: nothing bounds it there); the reference service's is ``(0, 0)``."""
    uncorrected: list[str] = field(default_factory=list)
    """Services left at offset 0 because nothing in the logs bounds their clock
    on both sides (no calls to or from them, or calls that fit a shared clock
    only one-sidedly)."""
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Inputs that could not be read, each naming the entry (the rest was stitched)."""
    marks: dict[str, int] = field(default_factory=dict)
    """Spans of the written traces per mark (``orphan``, ``inferred``: see :mod:`._marks`)."""
    outcomes: Outcomes | None = None
    """The written traces by outcome, with root causes (``Options.summary`` only)."""

    def clock_text(self, name: str) -> str:
        """``+0.000 ms [-0.412, +12.100]``: the offset applied to ``name`` and
        the interval its calls allow."""
        low, high = self.offset_bounds_ms.get(name, (-math.inf, math.inf))
        return clock_note(self.offsets_ms.get(name, 0.0), low, high)

    @property
    def reference(self) -> str | None:
        """The service whose clock the offsets are measured against, when the
        intervals show it (:func:`is_reference`); ``None`` otherwise."""
        for name, offset in self.offsets_ms.items():
            if is_reference(offset, *self.offset_bounds_ms.get(name, (-math.inf, math.inf))):
                return name
        return None

    def one_sided(self, name: str) -> bool:
        """Whether calls bound ``name``'s clock on one side only."""
        low, high = self.offset_bounds_ms.get(name, (-math.inf, math.inf))
        return math.isinf(low) != math.isinf(high)

    notes: list[str] = field(default_factory=list)
    """What the run inferred, or declined to, for the summary (not warnings)."""

    def count_rows(self, rows: npt.NDArray[np.void]) -> None:
        """Add ``rows`` (scanned or table rows) to the line counts."""
        import numpy as np

        reason = np.asarray(rows["reason"])
        broken = (np.asarray(rows["flags"]) & BROKEN) != 0
        self.records += len(rows)
        self.unattributed += int(np.count_nonzero(reason))
        self.unparseable += int(np.count_nonzero((reason > NO_TRACE_ID) | broken))


@dataclass(slots=True)
class FileScan:
    """What reading and parsing one file (or one byte range of it) produced."""

    file: int
    """Index of the file in the run's list of sources."""
    data_path: str
    """Where the line bytes live: the file itself or its decompressed spool."""
    rows: npt.NDArray[np.void]
    """:data:`SCAN_DTYPE` rows, one per non-blank line, in file order."""
    traces: list[str]
    """Local trace index -> trace ID."""
    spans: list[str]
    """Local span index -> span ID; parents share this table. The same ID in
    two traces is one entry here; grouping tells them apart."""
    services: list[str]
    """Local service index -> name; index 0 is the name taken from the file name."""
    lines: int
    """Lines in this range, blank ones included (to number the next range)."""
    warnings: list[str] = field(default_factory=list)
    spooled_ids: int = 0
    """Trace and span IDs written to a spool file with the rows (``traces``
    and ``spans`` are empty then): what grouping them will hold."""


@dataclass(slots=True)
class Table:
    """Every non-blank line of a partition, one row each, in file then line order."""

    sources: list[Source]
    data_paths: list[str]
    """Per file: where its (decompressed) bytes can be read back by offset."""
    rows: npt.NDArray[np.void]
    """:data:`ROW_DTYPE` rows; trace, span, parent and svc hold partition-wide indexes."""
    file: I32
    """Per row: index into ``sources``."""
    span_start: F64
    """Per row: start time of a span record (raw clock), NaN otherwise."""
    traces: list[str]
    spans: list[str]
    """Span index -> span ID (the same ID in two traces is two spans)."""
    span_trace: I32
    """Span index -> trace index."""
    services: list[str]
    warnings: list[str]
    joined: dict[str, str] = field(default_factory=dict)
    """Trace IDs of 64 bits joined to the 128-bit ID they are the low half
    of (:mod:`._trace_halves`): short ID -> the ID in ``traces``."""
    memo: dict[str, Any] = field(default_factory=dict)
    """What later stages read back from the files once and reuse (the clock
    stage and the order stage both look at the same calls)."""


@dataclass(slots=True)
class Tree:
    """Per span: parent, depth, orphan flag, service, raw start/end, client
    record, and whether the parent was inferred."""

    parent: I32
    """Parent span index, -1 for none."""
    present: B
    """The span has records of its own (not only named as someone's parent)."""
    depth: I32
    orphan: B
    service: I32
    """Service of the span's first record (-1 for spans only seen as parents)."""
    start: F64
    """Raw (uncorrected) start: the span record's start or the first record."""
    end: F64
    """Raw end: the span record's time (its end) or the last record."""
    client: B
    """The span has a client span record: exact call times on the caller's clock."""
    row_depth: I32
    """Per row: its span's depth (0 for rows without a span or trace)."""
    inferred: B | None = None
    """Per span: its parent was inferred (the logs name none; see
    :mod:`._containment`). ``None``: no parent was inferred."""


@dataclass(slots=True)
class Order:
    rows: I64
    """Row indexes in output order (traces first, then unattributed lines)."""
    n_traced: int
    """How many of ``rows`` belong to a trace."""
    trace_start: F64
    """Per trace: its first corrected time (NaN if no record has a time)."""
    trace_end: F64


@dataclass(slots=True)
class Rendering:
    """Everything a renderer reads; forked workers inherit it without copying."""

    table: Table
    tree: Tree
    corrected: F64
    order: Order
    clock_notes: dict[str, str] = field(default_factory=dict)
    """Per service with a clock model: :func:`clock_note` of its offset."""


@dataclass(slots=True)
class Operation:
    """The traces of one entry operation (their root span's name) in :class:`Outcomes`."""

    traces: int = 0
    failed: int = 0
    """Traces whose entry span has an error."""
    recovered: int = 0
    """Traces with an error below an entry span that has none."""
    durations: list[float] = field(default_factory=list)
    """Trace latencies (seconds), exact while there are few (see :mod:`._outcomes`)."""
    buckets: dict[int, int] = field(default_factory=dict)
    """Latencies as a log-scale histogram, once there are too many to keep."""
    timed: int = 0
    """Traces with a latency (in ``durations`` or ``buckets``)."""
    low: float = float("inf")
    high: float = float("-inf")


@dataclass(slots=True)
class Failure:
    """A failing trace and the span where its error started."""

    trace: str
    start: float
    """The trace's start (corrected epoch seconds; NaN if unknown)."""
    operation: str
    entry: str
    """What the entry span reported (a status code or error type), ``""`` if no error."""
    service: str
    """The root-cause span's service."""
    span: str
    """The root-cause span's name (or its ID when it has none)."""
    depth: int
    exception: str
    """The exception type (or error type, or status) where the error started."""
    message: str
    where: str
    """Where it was raised (``file:line in function``), when a traceback says."""


@dataclass(slots=True)
class Cause:
    """One root cause (service, span, exception type) and how many traces it failed."""

    traces: int
    example: Failure
    """Its earliest trace."""


@dataclass(slots=True)
class Outcomes:
    """Written traces by outcome, latencies and root causes: plain data, computed
    per partition and merged (:func:`._outcomes.merge_outcomes`)."""

    operations: dict[str, Operation] = field(default_factory=dict)
    causes: dict[tuple[str, str, str], Cause] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    """The earliest failing traces (a bounded number)."""
    failing: int = 0
    """Failing traces in all (failed or recovered)."""
