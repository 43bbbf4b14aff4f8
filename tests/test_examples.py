"""The examples run, and their log lines carry the trace."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import REPO, Server, _run_subprocess, run_gunicorn, run_uvicorn

EXAMPLES = REPO / "examples"
TWO_SERVICES = EXAMPLES / "two_services"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
TRACEPARENT = {"traceparent": f"00-{TRACE_ID}-{CALLER}-01"}


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def call(server: Server, path: str, status: int = 200) -> None:
    response = httpx.get(server.url + path, headers=TRACEPARENT, timeout=10)
    assert response.status_code == status, response.text
    assert TRACE_ID in response.headers["traceresponse"]


def check_request(text: str, service: str, route: str, message: str, access: str) -> None:
    """One request's lines: the handler's, the access line and the span record, all traced."""
    lines = [line for line in json_lines(text) if line.get("trace_id") == TRACE_ID]
    assert all(line["service"] == service for line in lines)
    (span_record,) = [
        line
        for line in lines
        if line.get("span.kind") == "server" and line.get("http.route") == route
    ]
    server_span = span_record["span_id"]
    assert span_record["parent_span_id"] == CALLER
    mine = [line for line in lines if line["span_id"] == server_span]
    assert message in {line["message"] for line in mine}
    assert access in {line["logger"] for line in mine}
    children = [line for line in lines if line.get("parent_span_id") == server_span]
    assert [line.get("span.kind") for line in children if "span.kind" in line] == ["internal"]


def wait_for_log(server: Server, needle: str, timeout: float = 10.0) -> None:
    """For servers that stop without finishing requests: wait until ``needle`` is written."""
    deadline = time.monotonic() + timeout
    while needle not in server.logs():
        assert time.monotonic() < deadline, server.logs()
        time.sleep(0.05)


def check_failure(text: str) -> None:
    assert text.count("Traceback (most recent call last)") == 1, text
    (error,) = [line for line in json_lines(text) if "exc_info" in line]
    assert error["trace_id"] == TRACE_ID


class TestFastAPI:
    def test_uvicorn_command_line(self, tmp_path: Path) -> None:
        with run_uvicorn(
            "fastapi_app:app", app_dir=EXAMPLES, log_path=tmp_path / "out.log"
        ) as server:
            call(server, "/users/42")
        check_request(
            server.logs(), "users-api", "/users/{user_id}", "looking up user", "uvicorn.access"
        )

    def test_python_script_with_log_config_none(self, tmp_path: Path) -> None:
        command = ["env", "PORT={port}", sys.executable, str(EXAMPLES / "fastapi_app.py")]
        with _run_subprocess(command, 1, tmp_path / "out.log", None) as server:
            call(server, "/users/42")
            call(server, "/fail", 500)
        text = server.logs()
        assert "query took 2.0 ms" in text
        check_failure(text)


class TestStarlette:
    def test_request_and_failure(self, tmp_path: Path) -> None:
        with run_uvicorn(
            "starlette_app:app", app_dir=EXAMPLES, log_path=tmp_path / "out.log"
        ) as server:
            call(server, "/products/3")
        check_request(
            server.logs(),
            "catalog",
            "/products/{product_id}",
            "product requested",
            "uvicorn.access",
        )

    def test_failure_is_logged_once(self, tmp_path: Path) -> None:
        with run_uvicorn(
            "starlette_app:app", app_dir=EXAMPLES, log_path=tmp_path / "out.log"
        ) as server:
            call(server, "/fail", 500)
        check_failure(server.logs())


class TestFlask:
    def test_gunicorn(self, tmp_path: Path) -> None:
        with run_gunicorn("flask_app:app", app_dir=EXAMPLES, log_path=tmp_path / "out.log") as s:
            call(s, "/orders/5")
            call(s, "/fail", 500)
        text = s.logs()
        route = "/orders/<int:order_id>"
        check_request(text, "orders", route, "order requested", "gunicorn.access")
        check_failure(text)

    def test_development_server(self, tmp_path: Path) -> None:
        command = ["env", "PORT={port}", sys.executable, str(EXAMPLES / "flask_app.py")]
        with _run_subprocess(command, 1, tmp_path / "out.log", None) as server:
            call(server, "/orders/5")
            # Werkzeug closes the response after the client has it, and dies on SIGTERM.
            wait_for_log(server, '"span.kind": "server"')
        check_request(
            server.logs(), "orders", "/orders/<int:order_id>", "order requested", "werkzeug"
        )


class TestDjango:
    def test_gunicorn_wsgi(self, tmp_path: Path) -> None:
        with run_gunicorn(
            "shop.wsgi", app_dir=EXAMPLES / "django_project", log_path=tmp_path / "out.log"
        ) as server:
            call(server, "/items/4")
            call(server, "/fail", 500)
        text = server.logs()
        check_request(
            text, "django-shop", "/items/<int:item_id>", "item requested", "gunicorn.access"
        )
        check_failure(text)

    def test_uvicorn_asgi(self, tmp_path: Path) -> None:
        with run_uvicorn(
            "shop.asgi:application",
            app_dir=EXAMPLES / "django_project",
            log_path=tmp_path / "out.log",
        ) as server:
            call(server, "/items/4")
        check_request(
            server.logs(), "django-shop", "/items/<int:item_id>", "item requested", "uvicorn.access"
        )


def check_two_services(storefront: list[dict[str, Any]], inventory: list[dict[str, Any]]) -> None:
    """Caller and callee pair exactly; the failing call is logged once, traced."""
    clients = [r for r in storefront if r.get("span.kind") == "client"]
    servers = [r for r in inventory if r.get("span.kind") == "server"]
    assert len(clients) == len(servers) == 3
    by_parent = {r["parent_span_id"]: r for r in servers}
    for client in clients:
        callee = by_parent[client["span_id"]]
        assert callee["trace_id"] == client["trace_id"]
    assert {r["trace_id"] for r in storefront if r.get("parent_span_id") == CALLER} == {TRACE_ID}
    (error,) = [r for r in inventory if "exc_info" in r]
    assert "LookupError" in error["exc_info"]
    failed = [r for r in servers if r.get("http.response.status_code") == 500]
    assert [r["span_id"] for r in failed] == [error["span_id"]]
    assert not any("exc_info" in r for r in storefront)
    front = [r for r in storefront if r.get("span.kind") == "server"]
    assert sorted(r["http.response.status_code"] for r in front) == [200, 200, 502]
    for record in storefront + inventory:
        assert record["service"] in ("storefront", "inventory")


class TestTwoServices:
    def test_demo_script(self, tmp_path: Path) -> None:
        out = subprocess.run(
            [sys.executable, str(TWO_SERVICES / "run_demo.py"), "--logs", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=90,
            check=True,
        )
        assert "failing call    -> 502" in out.stdout
        assert f"trace {TRACE_ID}" in out.stdout
        assert "LookupError: no stock row for item 0" in out.stdout
        check_two_services(
            json_lines((tmp_path / "storefront.jsonl").read_text()),
            json_lines((tmp_path / "inventory.jsonl").read_text()),
        )

    @pytest.mark.parametrize("name", ["storefront.jsonl", "inventory.jsonl"])
    def test_committed_logs_are_every_line_json(self, name: str) -> None:
        lines = (TWO_SERVICES / "logs" / name).read_text().splitlines()
        assert lines
        assert len(json_lines("\n".join(lines))) == len(lines)

    def test_committed_logs_pair_caller_and_callee(self) -> None:
        check_two_services(
            json_lines((TWO_SERVICES / "logs" / "storefront.jsonl").read_text()),
            json_lines((TWO_SERVICES / "logs" / "inventory.jsonl").read_text()),
        )
