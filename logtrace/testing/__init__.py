"""Realistic multi-service logs with a known true order, for tests and benchmarks.

A gateway fans requests out over a call graph of services down to database-like
leaves, with network delays, parallel calls, retries and errors. Each service
writes its own JSON-lines file in logtrace's record format, stamped by its own
clock (a fixed offset plus optional drift), so the files disagree the way real
hosts do. Some lines come in other formats (ECS, OpenTelemetry's logging
fields, logfmt, plain text), some carry no trace at all, a few are corrupt, and
older parts of some files are rotated and gzipped.

Because the generator knows every record's true time, it also writes
``truth.jsonl`` (beside the ``logs`` directory): per trace, the ``(file, line)``
of each record in true order, which is what an ordering evaluation scores
against. Same seed, same bytes.

Standard library only, and apart from the stitcher: ``logtrace.stitch`` never
imports it, and ``import logtrace`` does not load it.
"""

from __future__ import annotations

from ._synth import SynthConfig, SynthResult, generate

__all__ = ["SynthConfig", "SynthResult", "generate"]
