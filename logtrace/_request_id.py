"""Request IDs (``X-Request-ID`` and friends): opaque tokens we echo and log.

A request ID ends up in log lines and response headers, so only a
conservative alphabet is accepted: letters, digits and ``-_.:/+=@``, at most
128 characters by default. That admits nginx's ``$request_id`` (32 hex
digits), dashed UUIDs, ULIDs, base64 tokens and ``host:pid:counter`` styles,
and rejects spaces, CR/LF and other control characters, non-ASCII and
anything oversized.
"""

from __future__ import annotations

import re

__all__ = ["REQUEST_ID_MAX_LENGTH", "is_valid_request_id", "parse_request_id", "request_id_pattern"]

REQUEST_ID_MAX_LENGTH = 128

_ALPHABET = r"[A-Za-z0-9\-_.:/+=@]"


def request_id_pattern(max_length: int = REQUEST_ID_MAX_LENGTH) -> re.Pattern[str]:
    """The compiled pattern for valid request IDs of at most ``max_length`` characters."""
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    return re.compile(f"{_ALPHABET}{{1,{max_length}}}")


_DEFAULT = request_id_pattern()
_ANY_LENGTH = re.compile(f"{_ALPHABET}+")


def is_valid_request_id(value: str, max_length: int = REQUEST_ID_MAX_LENGTH) -> bool:
    """Whether ``value`` is acceptable as a request ID as it stands (no trimming)."""
    pattern = _DEFAULT if max_length == REQUEST_ID_MAX_LENGTH else request_id_pattern(max_length)
    return pattern.fullmatch(value) is not None


def parse_request_id(value: str, pattern: re.Pattern[str] = _DEFAULT) -> str:
    """``value`` without surrounding spaces and tabs, or :class:`ValueError` saying why not."""
    token = value.strip(" \t")
    if pattern.fullmatch(token) is not None:
        return token
    if not token:
        raise ValueError("empty")
    if not token.isascii():
        raise ValueError("non-ASCII characters")
    if any(c < " " or c == "\x7f" for c in token):
        raise ValueError("control characters")
    if _ANY_LENGTH.fullmatch(token) is not None:
        raise ValueError("oversized")
    raise ValueError("characters outside letters, digits and -_.:/+=@")
