"""Links seen through a service between: which ones go, on plain data."""

from __future__ import annotations

from logtrace.stitch._through_links import through

GATEWAY, ORDERS, DB, PRICING = "gateway", "orders", "db", "pricing"
PARALLEL = (GATEWAY, ORDERS, 75, 75, 0)
"""The gateway calls orders beside another call: orders fits none of its gaps."""


class TestThrough:
    def test_a_grandparent_link_is_seen_through_its_child(self) -> None:
        # every db span inside the gateway is inside orders
        links = [PARALLEL, (ORDERS, DB, 75, 150, 75), (GATEWAY, DB, 75, 150, 75)]
        assert through(links) == {2: ORDERS}

    def test_a_caller_that_waits_quietly_keeps_the_link(self) -> None:
        # db fits between the gateway's lines because the gateway waits for
        # orders without a word: the link is evidence of the two clocks
        waits = (GATEWAY, ORDERS, 75, 75, 70)
        assert through([waits, (ORDERS, DB, 75, 150, 75), (GATEWAY, DB, 75, 150, 75)]) == {}

    def test_a_service_also_called_directly_keeps_its_link(self) -> None:
        links = [PARALLEL, (ORDERS, DB, 75, 150, 75), (GATEWAY, DB, 75, 180, 75)]
        assert through(links) == {}

    def test_a_sibling_does_not_hide_the_real_call(self) -> None:
        # pricing lies inside orders by chance in every checkout, seldom
        # between orders' records; the gateway's own call to it stays
        links = [PARALLEL, (GATEWAY, PRICING, 75, 75, 75), (ORDERS, PRICING, 75, 75, 20)]
        assert through(links) == {}

    def test_nothing_without_the_link_to_the_service_between(self) -> None:
        assert through([(ORDERS, DB, 75, 150, 75), (GATEWAY, DB, 75, 150, 75)]) == {}
