"""W3C Trace Context ``tracestate``: conformance, case by case, and properties.

Each test names the section of the specification ("tracestate Header" and its
subsections: list, key, value, combined header, limits) it pins down.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logtrace._w3c import (
    format_tracestate,
    normalize_tracestate,
    parse_tracestate,
    truncate_tracestate,
)
from logtrace.propagation import Propagator

KEYCHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
VALUE_CHARS = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",=")


class TestList:
    def test_members_are_read_left_to_right(self) -> None:
        """ "list": members separated by commas, each a key=value pair."""
        assert parse_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE") == [
            ("rojo", "00f067aa0ba902b7"),
            ("congo", "t61rcWkgMzE"),
        ]

    @pytest.mark.parametrize(
        "value",
        [
            "foo=1 \t , \t bar=2, \t baz=3",
            "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
            " foo=1,bar=2 ,baz=3\t",
        ],
    )
    def test_spaces_and_tabs_around_members_are_ignored(self, value: str) -> None:
        """ "list": spaces and horizontal tabs surrounding list members are ignored (OWS)."""
        assert parse_tracestate(value) == [("foo", "1"), ("bar", "2"), ("baz", "3")]

    @pytest.mark.parametrize("value", ["", " ", ",", " , ,\t,", "foo=1,,bar=2", ",foo=1,"])
    def test_empty_and_whitespace_only_members_are_allowed(self, value: str) -> None:
        """ "list": empty and whitespace-only members are allowed and carry nothing."""
        members = parse_tracestate(value)
        assert all(k and v for k, v in members)

    def test_empty_header_is_accepted_and_not_propagated(self) -> None:
        """Vendors MUST accept empty tracestate headers but SHOULD avoid sending them."""
        assert normalize_tracestate("") is None
        assert normalize_tracestate(" , ") is None

    def test_thirty_two_members_are_allowed(self) -> None:
        """ "list": up to 32 list members."""
        value = ",".join(f"bar{i:02d}={i:02d}" for i in range(1, 33))
        assert len(parse_tracestate(value)) == 32

    def test_thirty_three_members_make_the_header_invalid(self) -> None:
        """ "list": more than 32 members is not a valid list; the whole header is dropped."""
        value = ",".join(f"bar{i:02d}={i:02d}" for i in range(1, 34))
        with pytest.raises(ValueError, match="32"):
            parse_tracestate(value)

    def test_empty_members_do_not_count_towards_the_limit(self) -> None:
        value = ",".join(f"k{i}=v" for i in range(32)) + ", , ,"
        assert len(parse_tracestate(value)) == 32

    @pytest.mark.parametrize("value", ["foo", "foo=1,bar", "=1"])
    def test_member_without_equals_or_key_is_invalid(self, value: str) -> None:
        with pytest.raises(ValueError):
            parse_tracestate(value)


class TestCombinedHeader:
    def test_multiple_headers_are_combined_in_order(self) -> None:
        """ "tracestate Header Field Values": multiple fields are joined per RFC 7230 3.2.2."""
        combined = ",".join(["foo=1,bar=2", "rojo=1,congo=2", "baz=3"])
        assert normalize_tracestate(combined) == "foo=1,bar=2,rojo=1,congo=2,baz=3"

    @pytest.mark.parametrize(
        ("value", "kept"),
        [
            ("foo=1,foo=1", "foo=1"),
            ("foo=1,foo=2", "foo=1"),
            (",".join(["foo=1", "foo=1"]), "foo=1"),
            ("a@b=1,a@b=2", "a@b=1"),
            ("foo=1, bar=2 ,foo=3,baz=4,bar=5", "foo=1,bar=2,baz=4"),
        ],
    )
    def test_duplicated_keys_are_passed_on_once_at_their_left_most_place(
        self, value: str, kept: str
    ) -> None:
        """W3C test suite, "test_tracestate_duplicated_keys": a list with duplicated keys is
        passed on, as-is or with duplicates dropped, not discarded. The left-most entry is
        the most recent vendor's, so it is the one kept."""
        assert normalize_tracestate(value) == kept
        assert format_tracestate(parse_tracestate(value)) == kept

    def test_duplicates_do_not_count_towards_the_member_limit(self) -> None:
        value = ",".join(f"k{i}=v" for i in range(32)) + ",k0=again,k1=again"
        assert normalize_tracestate(value, 10_000) == ",".join(f"k{i}=v" for i in range(32))

    def test_an_invalid_member_beside_a_duplicate_still_drops_the_list(self) -> None:
        with pytest.raises(ValueError, match="invalid value"):
            normalize_tracestate("foo=1,foo=2,bar=a=b")

    def test_empty_field_among_fields_is_harmless(self) -> None:
        """Vendors must accept empty tracestate fields, whether first or last."""
        assert normalize_tracestate(",".join(["foo=1", ""])) == "foo=1"
        assert normalize_tracestate(",".join(["", "foo=1"])) == "foo=1"

    def test_propagated_value_has_no_optional_whitespace(self) -> None:
        """A caller SHOULD NOT generate optional whitespace other than a single space."""
        assert normalize_tracestate(" a=1 ,\tb=2\t") == "a=1,b=2"


class TestKey:
    """ "Key" in Level 2: a lowercase letter or digit, then up to 255 of a-z 0-9 _ - * / @.

    Level 1 split keys into a simple key and one tenant@system key with limits
    on each part; ``level=1`` applies those rules, and the Level 1 cases
    below check that every Level 1 key is still accepted by Level 2.
    """

    def test_all_allowed_key_characters(self) -> None:
        """ "Key": lcalpha, DIGIT, _ - * / and @ after the first character."""
        key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@"
        assert parse_tracestate(f"{key}=1") == [(key, "1")]

    def test_multi_tenant_key(self) -> None:
        """A tenant@system key, as multi-tenant systems write them, in both levels."""
        key = "abcdefghijklmnopqrstuvwxyz0123456789_-*/@a-z0-9_-*/"
        for level in (1, 2):
            assert parse_tracestate(f"{key}=1,fw529a3039@dt=x", level) == [
                (key, "1"),
                ("fw529a3039@dt", "x"),
            ]

    def test_key_may_start_with_a_digit(self) -> None:
        """ "Key" (Level 2): a key begins with a lowercase letter or a digit."""
        assert parse_tracestate("1simple=1") == [("1simple", "1")]

    @pytest.mark.parametrize("key", ["foo@", "foo@@bar", "foo@bar@baz", "a@1b", "t" * 242 + "@v"])
    def test_at_sign_is_an_ordinary_key_character_in_level_2(self, key: str) -> None:
        """Level 2 "Key": '@' is a keychar like any other; only the first character is special."""
        assert parse_tracestate(f"{key}=1,bar=2") == [(key, "1"), ("bar", "2")]

    @pytest.mark.parametrize(
        "key",
        [
            "1simple",
            "foo@",
            "@foo",
            "foo@@bar",
            "foo@bar@baz",
            "a@1b",
            "t" * 242 + "@v",
            "t@" + "v" * 15,
        ],
    )
    def test_level_1_tenant_and_system_rules(self, key: str) -> None:
        """Level 1 "Key": simple-key starts with a letter; tenant-id 1-241, system-id 1-14."""
        with pytest.raises(ValueError, match="key"):
            parse_tracestate(f"{key}=1,bar=2", level=1)

    def test_level_1_longest_tenant_and_system(self) -> None:
        assert parse_tracestate("t" * 241 + "@" + "v" * 14 + "=1", level=1)

    @pytest.mark.parametrize(
        "key",
        [
            "foo ",
            "FOO",
            "Foo",
            "foo.bar",
            "@foo",
            "_a",
            "*a",
            "/a",
            "-a",
            "föö",
            "a b",
            "a\tb",
            "a@B",
        ],
    )
    def test_keys_outside_the_grammar_invalidate_the_header(self, key: str) -> None:
        """ "Key": uppercase, other characters, or a first character that is not a-z 0-9."""
        for level in (1, 2):
            with pytest.raises(ValueError):
                parse_tracestate(f"{key}=1,bar=2", level)

    def test_key_up_to_256_characters(self) -> None:
        """ "Key": at most 256 characters."""
        assert parse_tracestate("z" * 256 + "=1")
        assert parse_tracestate("z" * 256 + "=1", level=1)
        for level in (1, 2):
            with pytest.raises(ValueError):
                parse_tracestate("z" * 257 + "=1", level)
        with pytest.raises(ValueError):
            parse_tracestate("t" * 200 + "@" + "v" * 56 + "=1")


class TestValue:
    def test_all_allowed_value_characters(self) -> None:
        """ "Value": printable ASCII except comma and equals, not ending in a space."""
        value = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in ",= ") + "x"
        value = " " + value  # a leading space is part of the value
        assert parse_tracestate(f"foo={value}") == [("foo", value)]

    def test_value_leading_spaces_are_kept_trailing_spaces_are_not(self) -> None:
        """ "Value": leading spaces belong to the value; trailing ones are optional whitespace."""
        assert parse_tracestate("foo=  bar  ") == [("foo", "  bar")]

    @pytest.mark.parametrize("value", ["bar=baz", "", " ", "a\tb", "a\x00", "é", "a\x7f", "a\nb"])
    def test_values_outside_the_grammar_invalidate_the_header(self, value: str) -> None:
        """ "Value": no '=', no empty value, no tabs, controls or non-ASCII."""
        with pytest.raises(ValueError):
            parse_tracestate(f"foo={value},bar=3")

    def test_value_up_to_256_characters(self) -> None:
        """ "Value": at most 256 characters."""
        assert parse_tracestate("foo=" + "v" * 256)
        with pytest.raises(ValueError):
            parse_tracestate("foo=" + "v" * 257)


class TestLimits:
    def test_at_least_512_characters_are_propagated(self) -> None:
        """ "tracestate Limits": vendors SHOULD propagate at least 512 characters."""
        members = [(f"k{i:02d}", "v" * 60) for i in range(8)]  # 8 * 64 + 7 commas = 519
        fitting = [*members[:7], ("k07", "v" * 53)]  # 512 exactly
        assert len(format_tracestate(fitting) or "") == 512
        assert truncate_tracestate(fitting) == fitting
        assert truncate_tracestate(members) == members[:7]

    def test_entries_longer_than_128_characters_are_removed_first(self) -> None:
        """ "tracestate Limits": entries over 128 characters SHOULD be removed first."""
        big = ("big", "b" * 200)
        members = [("a", "1"), big, *[(f"k{i:02d}", "v" * 60) for i in range(5)]]
        kept = truncate_tracestate(members, 512)
        assert big not in kept
        assert kept == [m for m in members if m != big]

    def test_then_entries_are_removed_from_the_end(self) -> None:
        """ "tracestate Limits": then entries SHOULD be removed starting from the end."""
        members = [(f"k{i:02d}", "v" * 100) for i in range(10)]
        kept = truncate_tracestate(members, 512)
        assert kept == members[:4]
        assert len(format_tracestate(kept) or "") <= 512

    def test_whole_entries_are_truncated_never_parts(self) -> None:
        """ "tracestate Limits": the vendor MUST truncate whole entries."""
        members = [(f"k{i:02d}", "v" * 100) for i in range(10)]
        out = normalize_tracestate(",".join(f"{k}={v}" for k, v in members), 300)
        assert out is not None
        assert all(m in members for m in (tuple(e.split("=", 1)) for e in out.split(",")))

    def test_limit_is_configurable_and_zero_drops_everything(self) -> None:
        assert normalize_tracestate("a=1,b=2", 3) == "a=1"
        assert normalize_tracestate("a=1,b=2", 0) is None

    def test_hostile_sized_header_is_dropped_unread(self) -> None:
        with pytest.raises(ValueError, match="oversized"):
            parse_tracestate("a=1," + " " * 10_000)


keys = st.one_of(
    st.builds(
        lambda first, rest: first + rest,
        st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"),
        st.text(alphabet=KEYCHARS + "@", max_size=20),
    ),
    st.builds(
        lambda first, rest: first + rest,
        st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
        st.text(alphabet=KEYCHARS, max_size=20),
    ),
    st.builds(
        lambda t0, t, s0, s: f"{t0}{t}@{s0}{s}",
        st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"),
        st.text(alphabet=KEYCHARS, max_size=10),
        st.sampled_from("abcdefghijklmnopqrstuvwxyz"),
        st.text(alphabet=KEYCHARS, max_size=13),
    ),
)
values = st.text(alphabet=VALUE_CHARS, min_size=1, max_size=40).filter(
    lambda v: not v.endswith(" ")
)
member_lists = st.lists(st.tuples(keys, values), max_size=32, unique_by=lambda m: m[0])


class TestProperties:
    @given(st.text(max_size=300))
    def test_never_raises_anything_but_value_error(self, value: str) -> None:
        try:
            out = normalize_tracestate(value)
        except ValueError:
            return
        assert out is None or (out.isascii() and out.isprintable() and len(out) <= 512)

    @given(st.binary(max_size=300))
    def test_never_raises_on_bytes(self, value: bytes) -> None:
        try:
            members = parse_tracestate(value.decode("latin-1"))
        except ValueError:
            return
        assert all((k + v).isascii() and (k + v).isprintable() for k, v in members)

    @given(member_lists)
    def test_round_trip_of_valid_lists(self, members: list[tuple[str, str]]) -> None:
        text = format_tracestate(members)
        if text is None:
            assert members == []
            return
        assert parse_tracestate(text) == members
        assert format_tracestate(parse_tracestate(text)) == text

    @given(member_lists, st.integers(0, 600))
    def test_truncation_keeps_order_and_respects_the_limit(
        self, members: list[tuple[str, str]], limit: int
    ) -> None:
        kept = truncate_tracestate(members, limit)
        assert len(format_tracestate(kept) or "") <= limit
        positions = [members.index(m) for m in kept]
        assert positions == sorted(positions)

    @given(member_lists.filter(bool), st.sampled_from(["\r", "\n", "\x00", "\t", "é", "="]))
    def test_forbidden_character_in_a_value_is_rejected(
        self, members: list[tuple[str, str]], bad: str
    ) -> None:
        key, value = members[0]
        broken = [(key, value[:1] + bad + value[1:] + "x"), *members[1:]]
        with pytest.raises(ValueError):
            parse_tracestate(",".join(f"{k}={v}" for k, v in broken))


def _slow(value: str, max_length: int = 512) -> str | None:
    return format_tracestate(truncate_tracestate(parse_tracestate(value), max_length))


class TestFastPathAgreesWithTheRules:
    """A clean list is passed through after one match; it must decide exactly like the parser."""

    @given(member_lists, st.sampled_from([",", " , ", ",\t", ",,"]), st.integers(0, 600))
    def test_generated_lists(self, members: list[tuple[str, str]], sep: str, limit: int) -> None:
        value = sep.join(f"{k}={v}" for k, v in members)
        assert normalize_tracestate(value, limit) == _slow(value, limit)

    @given(st.text(alphabet="ab=,@ 1\t", max_size=40))
    def test_near_valid_text(self, value: str) -> None:
        try:
            expected = _slow(value)
        except ValueError:
            with pytest.raises(ValueError):
                normalize_tracestate(value)
            return
        assert normalize_tracestate(value) == expected

    def test_duplicate_keys_in_a_clean_list_are_still_caught(self) -> None:
        assert normalize_tracestate("a=1,b=2,a=3") == "a=1,b=2"

    def test_too_many_members_in_a_clean_list_are_still_caught(self) -> None:
        with pytest.raises(ValueError, match="32"):
            normalize_tracestate(",".join(f"k{i}=1" for i in range(33)), 10_000)


class TestW3CTestSuiteDuplicatedKeys:
    """The official W3C test suite's case, end to end through the propagator:
    the request continues the caller's trace and the outgoing call carries the
    ``tracestate`` on."""

    TRACEPARENT = "00-12345678901234567890123456789012-1234567890123456-00"

    @pytest.mark.parametrize(
        ("sent", "allowed"),
        [
            ("foo=1,foo=1", {"foo=1,foo=1", "foo=1"}),
            ("foo=1,foo=2", {"foo=1,foo=2", "foo=1", "foo=2"}),
        ],
    )
    def test_duplicated_keys_reach_the_next_hop(self, sent: str, allowed: set[str]) -> None:
        propagator = Propagator()
        for ctx in (
            propagator.incoming({"traceparent": self.TRACEPARENT, "tracestate": sent}),
            propagator.incoming_asgi(
                [(b"traceparent", self.TRACEPARENT.encode()), (b"tracestate", sent.encode())]
            ),
            propagator.incoming_wsgi(
                {"HTTP_TRACEPARENT": self.TRACEPARENT, "HTTP_TRACESTATE": sent}
            ),
        ):
            assert ctx.trace_id == "12345678901234567890123456789012"
            assert ctx.parent_span_id == "1234567890123456"
            out = propagator.outgoing(ctx)
            assert out["tracestate"] in allowed
