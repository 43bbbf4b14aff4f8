"""ASGI scopes for tests that call an application in process."""

from __future__ import annotations

from collections.abc import Iterable

from logtrace.asgi import Scope


def http_scope(
    path: str = "/", headers: Iterable[tuple[bytes, bytes]] = (), *, scope_type: str = "http"
) -> Scope:
    scope: Scope = {
        "type": scope_type,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http" if scope_type == "http" else "ws",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.test:8080"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    if scope_type == "http":
        scope["method"] = "GET"
    return scope
