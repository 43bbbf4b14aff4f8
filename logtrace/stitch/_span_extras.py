"""Span-record fields the scan does not keep, read back for the calls alone.

Two fields of a server or client span record matter to the clock estimate
only: when the server's response was complete (``response_ms`` after
``span.start``) and which host the span ran on (``host.name``, or
``hostname``). Rather than carry them through the scan for every line, the
clock stage reads them from the records of the spans that take part in a
cross-service call (a small share of the lines), by byte offset, as the
writers read lines back. A file whose first records name neither field is
not read further: its writer does not write them.
"""

from __future__ import annotations

from hashlib import blake2b

import numpy as np
import numpy.typing as npt

from ._decompress import LineReader
from ._model import SPAN_RECORD, Table
from ._span_fields import answer_ms, host_name

__all__ = ["host_key", "span_extras"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_GIVE_UP = 256
"""Span records read from a file without finding either field before the file is left alone."""


def host_key(host: str) -> int:
    """A host name as a positive 63-bit integer (0: none), for numpy columns."""
    if not host:
        return 0
    digest = blake2b(host.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 1) or 1


def span_extras(table: Table, spans: I64) -> tuple[F64, I64]:
    """Per span of ``spans``: when it answered (raw clock of its service: its
    ``span.start`` plus ``response_ms``; NaN if its record does not say) and
    its host's :func:`host_key` (0 if unnamed)."""
    answered = np.full(len(spans), np.nan)
    hosts = np.zeros(len(spans), dtype=np.int64)
    rows = table.rows
    if not len(spans) or not len(rows):
        return answered, hosts
    record = np.flatnonzero((rows["span"] >= 0) & ((rows["flags"] & SPAN_RECORD) != 0))
    if not len(record):
        return answered, hosts
    row_of = np.full(len(table.spans), -1, dtype=np.int64)
    row_of[rows["span"][record]] = record
    wanted = row_of[spans]
    at = np.flatnonzero(wanted >= 0)
    if not len(at):
        return answered, hosts
    files = table.file[wanted[at]]
    order = np.argsort(files, kind="stable")
    at, files = at[order], files[order]
    cuts = np.flatnonzero(np.diff(files)) + 1
    host_keys: dict[bytes, int] = {}
    for chunk in np.split(at, cuts):
        _read_file(table, chunk, wanted, answered, hosts, host_keys)
    return answered, hosts


def _read_file(
    table: Table,
    chunk: I64,
    wanted: I64,
    answered: F64,
    hosts: I64,
    host_keys: dict[bytes, int],
) -> None:
    """The fields of the records of ``chunk`` (positions into ``spans``), all in one file."""
    rows = table.rows
    lines = wanted[chunk]
    reader = LineReader(table.data_paths[int(table.file[lines[0]])])
    try:
        data = reader.data
        offsets = rows["off"][lines].tolist()
        lengths = rows["len"][lines].tolist()
        starts = table.span_start[lines].tolist()
        found = False
        for k, (i, off, length, start) in enumerate(
            zip(chunk.tolist(), offsets, lengths, starts, strict=True)
        ):
            if not found and k >= _GIVE_UP:
                return
            line = bytes(data[off : off + length])
            ms = answer_ms(line)
            if ms is not None:
                found = True
                answered[i] = start + ms / 1e3
            host = host_name(line)
            if host:
                found = True
                key = host_keys.get(host)
                if key is None:
                    key = host_keys[host] = host_key(host.decode("utf-8", "replace"))
                hosts[i] = key
    finally:
        reader.close()
