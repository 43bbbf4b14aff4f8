"""Sibling links: which ones the rest of the evidence refutes, on plain data.

The services of :mod:`test_parallel_siblings` as links: the gateway calls
orders (its clock 30 ms ahead) and pricing (on the gateway's clock); a
sibling link orders -> pricing says pricing is 26 ms behind orders, 4 ms off
the truth. ``solve`` stands for the clock solution: each service's offset is
the mean of what the links into it say, from the gateway outwards.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import pytest

from logtrace.stitch._clocks import ClockModel
from logtrace.stitch._containment import Link, Links
from logtrace.stitch._link_evidence import evidence, instead, weaker
from logtrace.stitch._sibling_links import (
    apart,
    candidates,
    detached,
    inner_links,
    loose_siblings,
    misses,
    recheck_siblings,
    refuted,
    suspects,
)

MS = 1e-3


def _link(
    caller: str, callee: str, at_ms: float, fitting: int = 50, callees: int = 50, half: float = 1.0
) -> Link:
    lo, hi = (at_ms - half) * MS, (at_ms + half) * MS
    return Link(caller, callee, lo, hi, 50, callees, 60, fitting=fitting)


GATEWAY_ORDERS = _link("gateway", "orders", 30.0, fitting=0)  # called in parallel
GATEWAY_PRICING = _link("gateway", "pricing", 0.0)
SIBLING = _link("orders", "pricing", -26.0, fitting=10)  # inside by chance, seldom snugly
ORDERS_DB = _link("orders", "db", -60.0, callees=60)  # every db span
ALL = Links((GATEWAY_ORDERS, GATEWAY_PRICING, SIBLING, ORDERS_DB), "note")
CHANCE = _link("pricing", "db", -27.3, callees=20)
"""db spans that lie inside pricing's, at a wrong offset, in a third of the traces."""


def _solve(links: Links) -> dict[str, ClockModel]:
    """Offsets from the gateway outwards, each the mean of its links' middles."""
    at = {"gateway": 0.0}
    for _ in links.links:
        for callee in {k.callee for k in links.links}:
            said = [
                at[k.caller] + (k.lo + k.hi) / 2
                for k in links.links
                if k.callee == callee and k.caller in at
            ]
            if said:
                at[callee] = sum(said) / len(said)
    return {name: ClockModel(offset) for name, offset in at.items()}


def _decide(without: frozenset[tuple[str, str]], of: Links = ALL) -> Links:
    kept = tuple(k for k in of.links if (k.caller, k.callee) not in without)
    return Links(kept, "note", tuple("/".join(sorted(pair)) for pair in without))


class TestSuspects:
    def test_inner_links_are_those_between_two_callees_of_a_third(self) -> None:
        assert inner_links(ALL) == {("orders", "pricing")}

    def test_a_missed_link_makes_the_sibling_beside_it_a_suspect(self) -> None:
        missed = misses(ALL, _solve(ALL))
        assert missed[("gateway", "pricing")] > 0
        assert suspects(ALL, missed) == {("orders", "pricing")}

    def test_no_suspect_when_every_link_is_met(self) -> None:
        clean = Links((GATEWAY_ORDERS, GATEWAY_PRICING, ORDERS_DB), "note")
        missed = misses(clean, _solve(clean))
        assert not any(missed.values())
        assert suspects(clean, missed) == set()

    def test_a_suspect_is_refuted_by_clocks_solved_without_it(self) -> None:
        without = _solve(_decide(frozenset({("orders", "pricing")})))
        assert refuted(ALL, {("orders", "pricing")}, without) == {("orders", "pricing")}
        # where the sibling agrees with the rest, it stands
        agreeing = Links((*ALL.links[:2], _link("orders", "pricing", -30.0)), "note")
        assert refuted(agreeing, {("orders", "pricing")}, without) == set()


class TestCandidates:
    def test_a_chance_link_into_a_service_called_from_elsewhere_is_one(self) -> None:
        links = Links((*ALL.links, CHANCE), "note")
        missed = misses(links, _solve(links))
        assert ("pricing", "db") in candidates(links, missed)
        # the only link into a service is never tried: without it, that
        # service's clock is left uncorrected
        assert ("gateway", "orders") not in candidates(links, missed)

    def test_the_sibling_rests_on_less_than_the_real_call(self) -> None:
        assert evidence(SIBLING, ALL.links) < evidence(GATEWAY_PRICING, ALL.links)
        assert evidence(CHANCE, ALL.links) < evidence(ORDERS_DB, ALL.links)

    def test_two_real_callers_of_one_service_each_rest_on_their_own_spans(self) -> None:
        # the gateway and users each call orders (80 of its 160 spans each);
        # users' spans hold stock's, called by the gateway, in 79 traces by
        # chance (users' clock 30 ms ahead, looked at 14 ms off)
        def link(caller: str, callee: str, callees: int, possible: int, fitting: int) -> Link:
            return Link(caller, callee, 0.0, 1 * MS, 80, callees, possible, fitting=fitting)

        users_orders = link("users", "orders", 80, 160, 80)
        chance = link("users", "stock", 79, 80, 47)
        mesh = Links(
            (link("gateway", "orders", 80, 160, 80), users_orders,
             link("gateway", "stock", 80, 80, 80), chance),
            "note",
        )  # fmt: skip
        assert evidence(users_orders, mesh.links)[0] == 1.0
        assert evidence(chance, mesh.links) < evidence(users_orders, mesh.links)
        assert weaker(chance, mesh.links) and not weaker(users_orders, mesh.links)

    def test_a_sibling_that_seldom_fits_between_the_callers_lines_is_loose(self) -> None:
        assert loose_siblings(ALL) == {("orders", "pricing")}
        snug = _link("orders", "pricing", -26.0, fitting=40)
        assert loose_siblings(Links((GATEWAY_ORDERS, GATEWAY_PRICING, snug), "note")) == set()

    def test_a_sibling_that_fits_snugly_only_off_the_solved_clocks_is_loose(self) -> None:
        """Its callees fit between its lines in 40 traces of 50 where they
        fit best, a few milliseconds off; at the clocks solved, in 29 of the
        40 traces where they fit anywhere."""
        snug = _link("orders", "pricing", -26.0, fitting=40)
        links = Links((GATEWAY_ORDERS, GATEWAY_PRICING, snug), "note")
        clocks = {"orders": ClockModel(30 * MS), "pricing": ClockModel(0.0)}
        asked: list[float] = []

        def fits_at(link: Link, offset: float) -> tuple[int, int]:
            asked.append(offset)
            return (29, 40) if link.caller == "orders" else (50, 50)

        assert loose_siblings(links, clocks, fits_at) == {("orders", "pricing")}
        assert asked == [pytest.approx(-30 * MS)]  # the solved difference
        assert loose_siblings(links, clocks, lambda k, at: (31, 40)) == set()
        assert loose_siblings(links) == set()  # counted where it fits best

    def test_a_sibling_that_explains_no_span_and_misses_more_gaps_is_loose(self) -> None:
        """To the millisecond a sibling fits most of the caller's widened
        gaps (44 traces of 50): it is tried where it holds no pricing span
        the gateway's link leaves, and misses gaps where the gateway's
        callees miss none."""

        def sibling(fitting: int, possible: int = 50) -> Link:
            return Link("orders", "pricing", -36 * MS, -31 * MS, 50, 50, possible, fitting=fitting)

        def links(*more: Link) -> Links:
            return Links((GATEWAY_ORDERS, GATEWAY_PRICING, *more), "note")

        assert loose_siblings(links(sibling(44))) == {("orders", "pricing")}
        # two traces off: as a real caller may be now and then
        assert loose_siblings(links(sibling(48))) == set()
        # pricing spans of its own (the gateway's link leaves ten): not loose
        assert loose_siblings(links(sibling(44, possible=60))) == set()
        # a real call seen next to a link through it: its callees miss a gap
        # now and then (71 traces of 4752, a generated run), not one in twenty
        many = Link("users", "pricing", -29 * MS, -28 * MS, 4752, 5995, 5995, fitting=4681)
        through = Link("gateway", "pricing", -13 * MS, -10 * MS, 4938, 26554, 26554, fitting=4933)
        users = _link("gateway", "users", 16.0)
        assert inner_links(Links((users, through, many), "note")) == {("users", "pricing")}
        assert loose_siblings(Links((users, through, many), "note")) == set()
        # the gateway's callees miss its gaps as often: not loose
        gateway = replace(GATEWAY_PRICING, fitting=44)
        assert loose_siblings(Links((GATEWAY_ORDERS, gateway, sibling(44)), "note")) == set()

    def test_a_consumer_holding_the_callees_of_another_caller_by_chance_is_detached(
        self,
    ) -> None:
        """A queue's worker runs after the api that enqueued its task: shifted
        by the queue's delay its task spans hold the api's inventory calls in
        20 traces of 40. Nothing else links worker and api."""

        def link(caller: str, callee: str, traces: int, callees: int, possible: int) -> Link:
            return Link(caller, callee, 0.0, 1 * MS, traces, callees, possible, fitting=traces)

        api = link("api", "inventory", 40, 40, 40)
        worker = link("worker", "inventory", 20, 20, 40)
        assert detached(Links((api, worker), "note")) == {("worker", "inventory")}
        # the worker's own inventory calls (spans the api holds not): a call
        own = link("worker", "inventory", 20, 20, 60)
        assert detached(Links((api, own), "note")) == set()
        # a caller the api calls (linked): a real caller beside a link through it
        joined = Links((api, worker, link("api", "worker", 40, 40, 40)), "note")
        assert detached(joined) == set()

    def test_a_drop_that_leaves_a_service_unlinked_is_apart(self) -> None:
        grouped = Links(ALL.links, "note", groups={"gateway": "gateway", "db": "gateway"})
        assert apart(Links((), "note", groups={"gateway": "gateway"}), grouped)
        split = Links((), "note", groups={"gateway": "gateway", "db": "db"})
        assert apart(split, grouped)
        assert not apart(grouped, grouped)


class TestInstead:
    """Which link goes where the first offsets refute one of two into a service."""

    LINKS = (GATEWAY_ORDERS, GATEWAY_PRICING, SIBLING, ORDERS_DB)

    def test_the_sibling_goes_when_the_offsets_refute_the_real_call(self) -> None:
        # pricing's few fits between orders' lines packed densely: the first
        # offsets followed them, and the gateway's call fell outside
        assert instead(self.LINKS, [1]) == {2}

    def test_a_refuted_sibling_goes_itself(self) -> None:
        assert instead(self.LINKS, [2]) == {2}

    def test_a_link_on_less_evidence_than_its_rivals_goes_itself(self) -> None:
        # the gateway's call to orders fits no gap (a caller that does not
        # wait): nothing rests on less, so it goes, as before
        chance = _link("pricing", "orders", 30.0, fitting=0, callees=10)
        links = (*self.LINKS, chance)
        assert instead(links, [0]) == {0}

    def test_a_rival_refuted_as_well_is_not_taken_instead(self) -> None:
        assert instead(self.LINKS, [1, 2]) == {1, 2}


class TestRecheckSiblings:
    def test_a_refuted_sibling_link_is_dropped_and_the_clocks_solved_again(self) -> None:
        links, clocks = recheck_siblings(ALL, _decide, _solve)
        assert ("orders", "pricing") not in links.callers
        assert "orders/pricing" in links.rejected
        assert abs(clocks["pricing"].offset_s) < 1e-9
        assert abs(clocks["orders"].offset_s - 30 * MS) < 1e-9
        assert not any(misses(links, clocks).values())

    def test_the_sibling_and_a_chance_link_beside_it_go_one_at_a_time(self) -> None:
        every = Links((*ALL.links, CHANCE), "note")
        links, clocks = recheck_siblings(every, partial(_decide, of=every), _solve)
        assert set(links.callers) == {k[:2] for k in (ALL.callers)} - {("orders", "pricing")}
        assert abs(clocks["pricing"].offset_s) < 1e-9
        assert abs(clocks["db"].offset_s + 30 * MS) < 1e-9

    def test_a_sibling_the_clocks_do_without_is_dropped_though_not_refuted(self) -> None:
        # Lines to the millisecond: the sibling's interval is wide enough to
        # hold the truth, yet with it pricing hangs under orders and is
        # pulled off the gateway's call; without it every link is met.
        wide = _link("orders", "pricing", -27.0, fitting=40, half=4.0)
        every = Links((GATEWAY_ORDERS, GATEWAY_PRICING, wide, ORDERS_DB), "note")
        assert misses(every, _solve(every))[("gateway", "pricing")] > 0
        links, clocks = recheck_siblings(every, partial(_decide, of=every), _solve)
        assert ("orders", "pricing") not in links.callers
        assert abs(clocks["pricing"].offset_s) < 1e-9

    def test_a_loose_sibling_is_tried_where_every_link_is_met(self) -> None:
        # its own inferred calls pulled pricing 0.6 ms, within every link's
        # interval; solved without it, pricing is where its interval ends
        near = _link("orders", "pricing", -28.8, fitting=10)
        every = Links((GATEWAY_ORDERS, GATEWAY_PRICING, near, ORDERS_DB), "note")
        assert not any(misses(every, _solve(every)).values())
        links, clocks = recheck_siblings(every, partial(_decide, of=every), _solve)
        assert ("orders", "pricing") not in links.callers
        assert abs(clocks["pricing"].offset_s) < 1e-9
        # where every link is met, one the clocks merely do without stays
        agreeing = replace(near, lo=-30.5 * MS, hi=-28.5 * MS)
        met = Links((GATEWAY_ORDERS, GATEWAY_PRICING, agreeing, ORDERS_DB), "note")
        assert recheck_siblings(met, partial(_decide, of=met), _solve)[0] is met
        # one that fits the caller's gaps as a call does stays
        snug = Links((GATEWAY_ORDERS, GATEWAY_PRICING, replace(near, fitting=40)), "note")
        assert recheck_siblings(snug, partial(_decide, of=snug), _solve)[0] is snug

    def test_nothing_changes_on_one_clock(self) -> None:
        one = Links(ALL.links, "note", one_clock=True)
        links, clocks = recheck_siblings(one, _decide, _solve)
        assert links is one
        assert {k: m.offset_s for k, m in clocks.items()} == {
            k: m.offset_s for k, m in _solve(one).items()
        }

    def test_a_drop_that_does_not_help_is_undone(self) -> None:
        def worse(without: frozenset[tuple[str, str]]) -> Links:
            # without the sibling, a link from db to pricing comes up that
            # contradicts the gateway's: the links left are met worse
            kept = _decide(without).links
            if ("orders", "pricing") in without:
                kept += (_link("db", "pricing", 70.0),)
            return Links(kept, "note")

        links, clocks = recheck_siblings(ALL, worse, _solve)
        assert links is ALL
        assert clocks["pricing"].offset_s == _solve(ALL)["pricing"].offset_s
