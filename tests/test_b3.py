"""B3 propagation: the single ``b3`` header and the ``X-B3-*`` headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logtrace._b3 import B3, format_b3, format_b3_multi, parse_b3, parse_b3_multi

TRACE = "80f198ee56343ba864fe8b2a57d3eff7"
SPAN = "e457b5a2e4d86bd1"
PARENT = "05e3ac9a4f6e3b90"


def hex_of(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789abcdef", min_size=n, max_size=n).filter(
        lambda v: v != "0" * n
    )


class TestSingle:
    def test_full_header_with_parent(self) -> None:
        assert parse_b3(f"{TRACE}-{SPAN}-1-{PARENT}") == B3(TRACE, SPAN, True, False, PARENT)

    def test_ids_only_leaves_the_decision_deferred(self) -> None:
        assert parse_b3(f"{TRACE}-{SPAN}") == B3(TRACE, SPAN, None, False, None)

    @pytest.mark.parametrize(
        ("state", "sampled", "debug"), [("1", True, False), ("0", False, False), ("d", True, True)]
    )
    def test_sampling_states(self, state: str, sampled: bool, debug: bool) -> None:
        parsed = parse_b3(f"{TRACE}-{SPAN}-{state}")
        assert (parsed.sampled, parsed.debug) == (sampled, debug)

    @pytest.mark.parametrize(("value", "sampled"), [("0", False), ("1", True), ("d", True)])
    def test_sampling_state_alone(self, value: str, sampled: bool) -> None:
        assert parse_b3(value) == B3(None, None, sampled, value == "d")

    def test_64_bit_trace_id_is_left_padded_to_32_hex(self) -> None:
        parsed = parse_b3(f"{TRACE[16:]}-{SPAN}-1")
        assert parsed.trace_id == "0" * 16 + TRACE[16:]

    @pytest.mark.parametrize(
        "value",
        [
            f"{TRACE.upper()}-{SPAN}-1",
            f"{TRACE}-{SPAN}-2",
            f"{TRACE}-{SPAN}-true",
            f"{TRACE}-{SPAN}-1-",
            f"{TRACE}-{SPAN}-{PARENT}",
            f"{TRACE[:20]}-{SPAN}-1",
            f"{TRACE}-{SPAN[:15]}-1",
            f"{'0' * 32}-{SPAN}-1",
            f"{'0' * 16}-{SPAN}-1",
            f"{TRACE}-{'0' * 16}-1",
            f"{TRACE}-{SPAN}-1-{'0' * 16}",
            f"{TRACE}-{SPAN}-1\r\n",
            "",
            "2",
            f"{TRACE}-{SPAN}-1-{PARENT}-extra",
            f"{TRACE}-{SPAN}-1-" + "a" * 200,
        ],
    )
    def test_malformed_headers_are_rejected(self, value: str) -> None:
        with pytest.raises(ValueError):
            parse_b3(value)

    def test_format_writes_sampling_state_and_parent(self) -> None:
        assert format_b3(TRACE, SPAN, True) == f"{TRACE}-{SPAN}-1"
        assert format_b3(TRACE, SPAN, False, PARENT) == f"{TRACE}-{SPAN}-0-{PARENT}"


class TestMulti:
    def test_all_headers(self) -> None:
        assert parse_b3_multi(TRACE, SPAN, PARENT, "1") == B3(TRACE, SPAN, True, False, PARENT)

    def test_64_bit_trace_id_is_left_padded(self) -> None:
        assert parse_b3_multi(TRACE[16:], SPAN).trace_id == "0" * 16 + TRACE[16:]

    @pytest.mark.parametrize(
        ("value", "sampled"), [("1", True), ("0", False), ("true", True), ("false", False)]
    )
    def test_sampled_accepts_1_0_and_legacy_true_false(self, value: str, sampled: bool) -> None:
        assert parse_b3_multi(TRACE, SPAN, sampled=value).sampled is sampled

    def test_debug_flag_implies_sampled(self) -> None:
        parsed = parse_b3_multi(TRACE, SPAN, sampled="0", flags="1")
        assert parsed.sampled is True and parsed.debug

    def test_sampling_decision_alone(self) -> None:
        assert parse_b3_multi(None, None, sampled="0") == B3(None, None, False, False)

    @pytest.mark.parametrize(
        "args",
        [
            (TRACE, None, None, None, None),
            (None, SPAN, None, None, None),
            (None, None, PARENT, None, None),
            (None, None, None, None, None),
            (TRACE, SPAN, None, "yes", None),
            (TRACE, SPAN, None, None, "2"),
            (TRACE.upper(), SPAN, None, None, None),
            (TRACE, SPAN, "xyz", None, None),
            ("0" * 32, SPAN, None, None, None),
            (TRACE, "0" * 16, None, None, None),
            (TRACE, SPAN + "\n", None, None, None),
        ],
    )
    def test_malformed_headers_are_rejected(self, args: tuple[str | None, ...]) -> None:
        with pytest.raises(ValueError):
            parse_b3_multi(*args)

    def test_format_multi(self) -> None:
        assert format_b3_multi(TRACE, SPAN, True, PARENT) == {
            "x-b3-traceid": TRACE,
            "x-b3-spanid": SPAN,
            "x-b3-sampled": "1",
            "x-b3-parentspanid": PARENT,
        }
        assert "x-b3-parentspanid" not in format_b3_multi(TRACE, SPAN, False)


class TestProperties:
    @given(st.text(max_size=120))
    def test_single_never_raises_anything_but_value_error(self, value: str) -> None:
        try:
            parsed = parse_b3(value)
        except ValueError:
            return
        assert parsed.trace_id is None or len(parsed.trace_id) == 32

    @given(st.binary(max_size=120))
    def test_single_never_raises_on_bytes(self, value: bytes) -> None:
        try:
            parsed = parse_b3(value.decode("latin-1"))
        except ValueError:
            return
        assert parsed.span_id is None or parsed.span_id.isascii()

    @given(
        st.one_of(st.none(), st.text(max_size=40)),
        st.one_of(st.none(), st.text(max_size=20)),
        st.one_of(st.none(), st.text(max_size=20)),
        st.one_of(st.none(), st.text(max_size=6)),
        st.one_of(st.none(), st.text(max_size=3)),
    )
    def test_multi_never_raises_anything_but_value_error(
        self, t: str | None, s: str | None, p: str | None, smp: str | None, f: str | None
    ) -> None:
        try:
            parse_b3_multi(t, s, p, smp, f)
        except ValueError:
            return

    @given(hex_of(32), hex_of(16), st.booleans(), st.one_of(st.none(), hex_of(16)))
    def test_round_trip(self, trace: str, span: str, sampled: bool, parent: str | None) -> None:
        value = format_b3(trace, span, sampled, parent)
        parsed = parse_b3(value)
        assert (
            format_b3(
                parsed.trace_id or "", parsed.span_id or "", bool(parsed.sampled), parsed.parent_id
            )
            == value
        )
        multi = format_b3_multi(trace, span, sampled, parent)
        again = parse_b3_multi(
            multi["x-b3-traceid"],
            multi["x-b3-spanid"],
            multi.get("x-b3-parentspanid"),
            multi["x-b3-sampled"],
        )
        assert again == parsed

    @given(hex_of(16), hex_of(16))
    def test_64_bit_ids_round_trip_padded(self, trace: str, span: str) -> None:
        parsed = parse_b3(f"{trace}-{span}-1")
        assert format_b3(parsed.trace_id or "", span, True) == f"{'0' * 16}{trace}-{span}-1"
