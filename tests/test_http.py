"""The HTTP helpers the middleware, the client integrations and the propagator share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import logtrace.asgi
import logtrace.wsgi
from logtrace._http import (
    ROUTE_KEY,
    host_and_port,
    log_quote,
    port_or_default,
    printable,
    server_span_name,
    stored_route,
    wsgi_key,
)


class TestRoute:
    def test_both_middlewares_read_the_same_key(self) -> None:
        assert logtrace.asgi.ROUTE_KEY == logtrace.wsgi.ROUTE_KEY == ROUTE_KEY == "logtrace.route"

    def test_a_stored_template_is_the_route(self) -> None:
        assert stored_route({ROUTE_KEY: "/items/{id}"}) == "/items/{id}"

    @pytest.mark.parametrize("value", [None, 42, b"/items", "/items\n", "/\x00"])
    def test_anything_but_printable_text_is_no_route(self, value: object) -> None:
        assert stored_route({ROUTE_KEY: value}) is None

    def test_a_server_span_is_named_after_method_and_route(self) -> None:
        assert server_span_name("GET", "/items/{id}") == "GET /items/{id}"
        assert server_span_name("POST", None) == "POST"


class TestHostAndPort:
    @pytest.mark.parametrize(
        ("host", "scheme", "expected"),
        [
            ("example.com", "http", ("example.com", 80)),
            ("example.com", "https", ("example.com", 443)),
            ("example.com", "ws", ("example.com", 80)),
            ("example.com", "wss", ("example.com", 443)),
            ("example.com:8080", "https", ("example.com", 8080)),
            ("[::1]:8000", "http", ("[::1]", 8000)),
            ("127.0.0.1", "gopher", ("127.0.0.1", None)),
        ],
    )
    def test_reads_host_and_port(
        self, host: str, scheme: str, expected: tuple[str, int | None]
    ) -> None:
        assert host_and_port(host, scheme) == expected

    @pytest.mark.parametrize(
        "host", ["", "exa mple.com", "example.com:", "example.com:123456", "bücher.de", "a\r\nb"]
    )
    def test_anything_else_is_none(self, host: str) -> None:
        assert host_and_port(host, "http") is None

    def test_a_port_given_wins_over_the_default(self) -> None:
        assert port_or_default(8443, "https") == 8443
        assert port_or_default(None, "https") == 443
        assert port_or_default(None, "ftp") is None


class TestEscaping:
    def test_printable_text_is_kept_as_it_is(self) -> None:
        text = "/caf\u00e9/items"
        assert printable(text) is text

    def test_control_characters_are_escaped(self) -> None:
        assert printable("/a\nb\x00") == "/a\\nb\\x00"

    @given(st.text(max_size=300))
    def test_a_log_quote_is_short_printable_ascii(self, value: str) -> None:
        quoted = log_quote(value)
        assert quoted.isascii() and quoted.isprintable()
        assert len(quoted) <= 83

    def test_a_long_value_is_truncated_visibly(self) -> None:
        assert log_quote("x" * 100) == "'" + "x" * 64 + "'..."


def test_wsgi_keys_follow_cgi_naming() -> None:
    assert wsgi_key("x-request-id") == "HTTP_X_REQUEST_ID"
    assert wsgi_key("traceparent") == "HTTP_TRACEPARENT"
