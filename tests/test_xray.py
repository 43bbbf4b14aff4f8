"""AWS X-Ray ``X-Amzn-Trace-Id`` (read only)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logtrace._xray import XRay, parse_xray

ROOT = "1-5759e988-bd862e3fe1be46a994272793"
TRACE = "5759e988bd862e3fe1be46a994272793"
PARENT = "53995c3f42cd8ad8"


class TestRead:
    def test_root_parent_and_sampled(self) -> None:
        assert parse_xray(f"Root={ROOT};Parent={PARENT};Sampled=1") == XRay(TRACE, PARENT, True)

    def test_root_maps_to_32_hex_by_dropping_the_version_and_dash(self) -> None:
        assert parse_xray(f"Root={ROOT}").trace_id == TRACE

    def test_root_alone_has_no_parent_and_no_decision(self) -> None:
        """What a load balancer adds on a request that came without the header."""
        assert parse_xray(f"Root={ROOT}") == XRay(TRACE, None, None)

    @pytest.mark.parametrize(("value", "sampled"), [("1", True), ("0", False), ("?", None)])
    def test_sampled_values(self, value: str, sampled: bool | None) -> None:
        assert parse_xray(f"Root={ROOT};Sampled={value}").sampled is sampled

    def test_field_order_spaces_and_unknown_fields_do_not_matter(self) -> None:
        value = (
            "Self=1-67891234-12456789abcdef012345678;Sampled=0; "
            f"Parent={PARENT} ;Root={ROOT};Lineage=a87bd80c:1|68fd508a:5"
        )
        assert parse_xray(value) == XRay(TRACE, PARENT, False)

    @pytest.mark.parametrize(
        "value",
        [
            "",
            "Sampled=1",
            f"Parent={PARENT}",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759E988-bd862e3fe1be46a994272793",
            "Root=1-5759e988bd862e3fe1be46a994272793",
            "Root=1-00000000-000000000000000000000000",
            f"Root={ROOT};Parent=53995c3f42cd8ad",
            f"Root={ROOT};Parent=0000000000000000",
            f"Root={ROOT};Sampled=yes",
            f"Root={ROOT};Root={ROOT}",
            f"Root={ROOT};Parent",
            f"Root={ROOT}\r\nX: y",
            f"Root={ROOT};Parent=é",
            f"Root={ROOT};" + "A=b;" * 300,
        ],
    )
    def test_malformed_headers_are_rejected(self, value: str) -> None:
        with pytest.raises(ValueError):
            parse_xray(value)


class TestProperties:
    @given(st.text(max_size=200))
    def test_never_raises_anything_but_value_error(self, value: str) -> None:
        try:
            parsed = parse_xray(value)
        except ValueError:
            return
        assert len(parsed.trace_id) == 32 and parsed.trace_id != "0" * 32

    @given(st.binary(max_size=200))
    def test_never_raises_on_bytes(self, value: bytes) -> None:
        try:
            parsed = parse_xray(value.decode("latin-1"))
        except ValueError:
            return
        assert parsed.parent_id is None or len(parsed.parent_id) == 16

    @given(
        st.text(alphabet="0123456789abcdef", min_size=8, max_size=8),
        st.text(alphabet="0123456789abcdef", min_size=24, max_size=24),
        st.text(alphabet="0123456789abcdef", min_size=16, max_size=16).filter(
            lambda p: p != "0" * 16
        ),
    )
    def test_valid_headers_read_back(self, epoch: str, unique: str, parent: str) -> None:
        if epoch + unique == "0" * 32:
            return
        assert parse_xray(f"Root=1-{epoch}-{unique};Parent={parent};Sampled=1") == XRay(
            epoch + unique, parent, True
        )
