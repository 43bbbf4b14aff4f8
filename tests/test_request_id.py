"""Request IDs: what is accepted as an ``X-Request-ID`` and what is refused, and why."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logtrace._request_id import is_valid_request_id, parse_request_id, request_id_pattern

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:/+=@"


class TestAccepted:
    @pytest.mark.parametrize(
        "value",
        [
            "0f3c5a7e9b1d2c4e6f8a0b1c2d3e4f5a",  # nginx $request_id
            str(uuid.UUID("12345678-1234-5678-1234-567812345678")),
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",  # ULID
            "dGVzdA==",  # base64
            "web-1:1234:42",
            "req_abc.def/ghi+jkl@host",
            "a",
            "x" * 128,
        ],
    )
    def test_common_shapes_are_valid(self, value: str) -> None:
        assert parse_request_id(value) == value
        assert is_valid_request_id(value)

    def test_surrounding_optional_whitespace_is_dropped(self) -> None:
        assert parse_request_id(" \tabc\t ") == "abc"


class TestRefused:
    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("abc\r\nSet-Cookie: x=1", "control"),
            ("abc\ndef", "control"),
            ("abc\x00", "control"),
            ("abc\x1b[31m", "control"),
            ("abc\x7f", "control"),
            ("café", "non-ASCII"),
            ("abc\u2028def", "non-ASCII"),
            ("a b", "outside"),
            ("a,b", "outside"),
            ("a;b", "outside"),
            ('a"b', "outside"),
            ("<script>", "outside"),
            ("x" * 129, "oversized"),
            ("", "empty"),
            ("   ", "empty"),
        ],
    )
    def test_bad_values_are_refused_with_a_reason(self, value: str, reason: str) -> None:
        with pytest.raises(ValueError, match=reason):
            parse_request_id(value)
        assert not is_valid_request_id(value)

    def test_reason_never_quotes_the_value(self) -> None:
        with pytest.raises(ValueError) as info:
            parse_request_id("evil\r\ninjected")
        assert "evil" not in str(info.value) and "\n" not in str(info.value)

    def test_max_length_is_configurable(self) -> None:
        short = request_id_pattern(8)
        assert parse_request_id("12345678", short) == "12345678"
        with pytest.raises(ValueError, match="oversized"):
            parse_request_id("123456789", short)
        assert is_valid_request_id("x" * 200, 256)
        with pytest.raises(ValueError):
            request_id_pattern(0)


class TestProperties:
    @given(st.text(max_size=200))
    def test_accepted_values_are_safe_for_logs_and_headers(self, value: str) -> None:
        try:
            out = parse_request_id(value)
        except ValueError:
            return
        assert out and len(out) <= 128 and set(out) <= set(ALPHABET)

    @given(st.binary(max_size=200))
    def test_bytes_never_raise_anything_but_value_error(self, value: bytes) -> None:
        try:
            out = parse_request_id(value.decode("latin-1"))
        except ValueError:
            return
        assert out.isascii() and out.isprintable() and " " not in out

    @given(st.text(alphabet=ALPHABET, min_size=1, max_size=128))
    def test_every_token_in_the_alphabet_round_trips(self, value: str) -> None:
        assert parse_request_id(value) == value

    @given(
        st.text(alphabet=ALPHABET, max_size=20),
        st.characters(blacklist_characters=ALPHABET + " \t"),
        st.text(alphabet=ALPHABET, max_size=20),
    )
    def test_any_character_outside_the_alphabet_is_refused(self, a: str, bad: str, b: str) -> None:
        with pytest.raises(ValueError):
            parse_request_id(a + bad + b)
