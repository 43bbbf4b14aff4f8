"""W3C Trace Context ``traceparent``: conformance, case by case, and properties.

Each test names the section of the specification (Trace Context Level 1 and
Level 2, "traceparent Header") whose rule it pins down.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logtrace._w3c import (
    FLAG_RANDOM,
    FLAG_SAMPLED,
    Traceparent,
    format_traceparent,
    parse_traceparent,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


def hex_of(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789abcdef", min_size=n, max_size=n)


class TestSpecExamples:
    def test_examples_section_sampled_header_reads_as_sampled(self) -> None:
        """ "Examples of HTTP traceparent Headers": the caller sampled this request."""
        assert parse_traceparent(VALID) == Traceparent(0, TRACE, PARENT, 0x01)
        assert parse_traceparent(VALID).sampled

    def test_examples_section_unsampled_header_reads_as_not_sampled(self) -> None:
        """ "Examples of HTTP traceparent Headers": the caller did not sample."""
        parsed = parse_traceparent(f"00-{TRACE}-{PARENT}-00")
        assert not parsed.sampled
        assert not parsed.random


class TestVersion:
    def test_version_ff_is_forbidden(self) -> None:
        """ "version": version ff is invalid."""
        with pytest.raises(ValueError, match="ff"):
            parse_traceparent(f"ff-{TRACE}-{PARENT}-01")

    @pytest.mark.parametrize("version", [".0", "0.", "0", "000", "0000", "0A", "AA", "g0", "-0"])
    def test_version_must_be_two_lowercase_hex_digits(self, version: str) -> None:
        """ "version" is 2HEXDIGLC; "Versioning": an unparsable prefix restarts the trace."""
        with pytest.raises(ValueError):
            parse_traceparent(f"{version}-{TRACE}-{PARENT}-01")

    @pytest.mark.parametrize(
        "value",
        [
            VALID + ".",
            VALID + "-",
            VALID + "-what-the-future-will-be-like",
            VALID[:-1],
        ],
    )
    def test_version_00_is_exactly_55_characters(self, value: str) -> None:
        """ "version-format" for 00 has exactly four fields; anything else is invalid."""
        with pytest.raises(ValueError, match="55"):
            parse_traceparent(value)

    @pytest.mark.parametrize("suffix", ["", "-what-the-future-will-be-like", "-", "-00-extra"])
    def test_higher_version_is_parsed_leniently(self, suffix: str) -> None:
        """ "Versioning of traceparent": a higher version is read as its first four fields."""
        parsed = parse_traceparent(f"cc-{TRACE}-{PARENT}-01{suffix}")
        assert (parsed.version, parsed.trace_id, parsed.parent_id, parsed.sampled) == (
            0xCC,
            TRACE,
            PARENT,
            True,
        )

    def test_higher_version_flags_must_end_the_value_or_be_followed_by_a_dash(self) -> None:
        """ "Versioning of traceparent": the flags are at the end or followed by a dash."""
        with pytest.raises(ValueError):
            parse_traceparent(f"cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like")

    def test_higher_version_shorter_than_55_characters_restarts(self) -> None:
        """ "Versioning of traceparent": shorter than 55 characters is not parsed."""
        with pytest.raises(ValueError):
            parse_traceparent(f"cc-{TRACE}-{PARENT}-1")

    def test_higher_version_still_checks_trace_id_hex(self) -> None:
        """ "Versioning of traceparent": the 32 trace-id characters must be hex."""
        with pytest.raises(ValueError):
            parse_traceparent(f"cc-{TRACE[:-1]}x-{PARENT}-01-future")

    def test_higher_version_is_written_back_as_version_00(self) -> None:
        """ "Versioning": the new traceparent uses the highest version we know, 00."""
        parsed = parse_traceparent(f"cc-{TRACE}-{PARENT}-01-future")
        assert format_traceparent(parsed.trace_id, PARENT, parsed.sampled, parsed.random) == VALID


class TestTraceId:
    def test_all_zero_trace_id_is_invalid(self) -> None:
        """ "trace-id": all bytes zero is an invalid value."""
        with pytest.raises(ValueError, match="trace-id"):
            parse_traceparent(f"00-{'0' * 32}-{PARENT}-01")

    @pytest.mark.parametrize(
        "trace_id",
        [
            "." + TRACE[1:],
            TRACE[:-1] + ".",
            TRACE.upper(),
            TRACE[:-1] + "A",
            TRACE + "3",
            TRACE[:-1],
        ],
    )
    def test_trace_id_must_be_32_lowercase_hex(self, trace_id: str) -> None:
        """ "trace-id" is 32HEXDIGLC: other characters, uppercase or other lengths are invalid."""
        with pytest.raises(ValueError):
            parse_traceparent(f"00-{trace_id}-{PARENT}-01")


class TestParentId:
    def test_all_zero_parent_id_is_invalid(self) -> None:
        """ "parent-id": all bytes zero is an invalid value."""
        with pytest.raises(ValueError, match="parent-id"):
            parse_traceparent(f"00-{TRACE}-{'0' * 16}-01")

    @pytest.mark.parametrize(
        "parent_id",
        ["." + PARENT[1:], PARENT[:-1] + ".", PARENT.upper(), PARENT + "7", PARENT[:-1]],
    )
    def test_parent_id_must_be_16_lowercase_hex(self, parent_id: str) -> None:
        """ "parent-id": non-lowercase-hex or a wrong length makes the header ignored."""
        with pytest.raises(ValueError):
            parse_traceparent(f"00-{TRACE}-{parent_id}-01")


class TestTraceFlags:
    @pytest.mark.parametrize("flags", [".0", "0.", "001", "1", "0A", "FF"])
    def test_flags_must_be_two_lowercase_hex_digits(self, flags: str) -> None:
        """ "trace-flags" is 2HEXDIGLC."""
        with pytest.raises(ValueError):
            parse_traceparent(f"00-{TRACE}-{PARENT}-{flags}")

    @pytest.mark.parametrize(
        ("flags", "sampled"), [("00", False), ("01", True), ("09", True), ("08", False)]
    )
    def test_sampled_is_the_least_significant_bit_masked(self, flags: str, sampled: bool) -> None:
        """ "trace-flags": a bit field; 09 is sampled plus another bit, so mask, don't compare."""
        assert parse_traceparent(f"00-{TRACE}-{PARENT}-{flags}").sampled is sampled

    @pytest.mark.parametrize(
        ("flags", "random"), [("02", True), ("03", True), ("01", False), ("fd", False)]
    )
    def test_random_trace_id_flag_is_the_second_bit(self, flags: str, random: bool) -> None:
        """Level 2 "Random Trace ID Flag": the second least significant bit."""
        assert parse_traceparent(f"00-{TRACE}-{PARENT}-{flags}").random is random

    def test_unknown_flags_are_accepted_and_written_as_zero(self) -> None:
        """ "Other Flags": reserved bits are accepted but vendors MUST set them to zero."""
        parsed = parse_traceparent(f"00-{TRACE}-{PARENT}-ff")
        assert parsed.flags == 0xFF
        assert format_traceparent(TRACE, PARENT, parsed.sampled, parsed.random).endswith("-03")


class TestWhitespace:
    @pytest.mark.parametrize(
        "value", [" " + VALID, "\t" + VALID, VALID + " ", "\t " + VALID + " \t"]
    )
    def test_surrounding_optional_whitespace_is_ignored(self, value: str) -> None:
        """HTTP field values may carry optional whitespace around them (RFC 7230 OWS)."""
        assert parse_traceparent(value).trace_id == TRACE

    @pytest.mark.parametrize(
        "value",
        [
            VALID.replace("-", " - ", 1),
            VALID + "\r\n",
            VALID[:10] + "\x00" + VALID[11:],
            VALID[:10] + "é" + VALID[11:],
            "\n" + VALID,
        ],
    )
    def test_inner_whitespace_control_and_non_ascii_are_invalid(self, value: str) -> None:
        with pytest.raises(ValueError):
            parse_traceparent(value)

    def test_oversized_future_version_is_refused(self) -> None:
        """ "Versioning": only prohibitively large headers may be refused; 512+ is that."""
        with pytest.raises(ValueError, match="oversized"):
            parse_traceparent(f"cc-{TRACE}-{PARENT}-01-" + "a" * 600)


class TestFormat:
    def test_format_writes_version_00_lowercase(self) -> None:
        assert format_traceparent(TRACE, PARENT, True, False) == VALID
        assert format_traceparent(TRACE, PARENT, False, True) == f"00-{TRACE}-{PARENT}-02"
        assert format_traceparent(TRACE, PARENT, True, True) == f"00-{TRACE}-{PARENT}-03"
        assert FLAG_SAMPLED | FLAG_RANDOM == 3


valid_ids = st.tuples(hex_of(32), hex_of(16)).filter(
    lambda t: t[0] != "0" * 32 and t[1] != "0" * 16
)


class TestProperties:
    @given(st.text(max_size=200))
    def test_never_raises_anything_but_value_error_on_text(self, value: str) -> None:
        try:
            parsed = parse_traceparent(value)
        except ValueError:
            return
        assert len(parsed.trace_id) == 32 and parsed.trace_id != "0" * 32
        assert len(parsed.parent_id) == 16 and parsed.parent_id != "0" * 16

    @given(st.binary(max_size=120))
    def test_never_raises_on_arbitrary_bytes_decoded_as_latin1(self, value: bytes) -> None:
        text = value.decode("latin-1")
        try:
            parse_traceparent(text)
        except ValueError:
            return
        assert text.strip(" \t").isascii() and text.strip(" \t").isprintable()

    @given(valid_ids, st.integers(0, 3))
    def test_round_trip_of_valid_version_00_values(self, ids: tuple[str, str], flags: int) -> None:
        trace_id, parent_id = ids
        value = f"00-{trace_id}-{parent_id}-{flags:02x}"
        parsed = parse_traceparent(value)
        assert (
            format_traceparent(parsed.trace_id, parsed.parent_id, parsed.sampled, parsed.random)
            == value
        )

    @given(valid_ids, st.integers(0, 255))
    def test_any_flags_byte_parses_and_keeps_only_known_bits(
        self, ids: tuple[str, str], flags: int
    ) -> None:
        parsed = parse_traceparent(f"00-{ids[0]}-{ids[1]}-{flags:02x}")
        assert parsed.sampled is bool(flags & 1)
        assert parsed.random is bool(flags & 2)

    @given(valid_ids, st.characters(whitelist_categories=("Lu",), max_codepoint=127))
    def test_any_uppercase_letter_in_the_ids_is_rejected(
        self, ids: tuple[str, str], upper: str
    ) -> None:
        with pytest.raises(ValueError):
            parse_traceparent(f"00-{upper}{ids[0][1:]}-{ids[1]}-01")

    @given(
        hex_of(2).filter(lambda v: v not in ("00", "ff")),
        valid_ids,
        st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
    )
    def test_any_future_version_with_extra_fields_reads_the_first_four(
        self, version: str, ids: tuple[str, str], tail: str
    ) -> None:
        parsed = parse_traceparent(f"{version}-{ids[0]}-{ids[1]}-01-{tail}")
        assert (parsed.trace_id, parsed.parent_id) == ids
