"""Logs without parent IDs on one clock: which links zero offsets refute."""

from __future__ import annotations

import numpy as np

from logtrace.stitch._evidence import Evidence
from logtrace.stitch._one_clock import refuted_links, shared_clock, unfitting_links

SERVICES = ["gateway", "orders", "pricing"]


def _evidence(rows: list[tuple[str, str, float, float, int]]) -> Evidence:
    """Rows (caller, callee, lo, hi, trace): one callee span per trace and pair."""
    at = {name: i for i, name in enumerate(SERVICES)}
    callee = [hash((b, t)) & 0xFFFF for _, b, _, _, t in rows]
    return (
        np.array([at[a] for a, _, _, _, _ in rows], dtype=np.int32),
        np.array([at[b] for _, b, _, _, _ in rows], dtype=np.int32),
        np.array([lo for _, _, lo, _, _ in rows]),
        np.array([hi for _, _, _, hi, _ in rows]),
        np.array([t for *_, t in rows], dtype=np.int64),
        np.array(callee, dtype=np.int64),
        np.zeros(len(rows), dtype=np.int8),
    )


def _fan_out(inside: int, fits_sibling: int, fits_caller: int, traces: int = 80) -> tuple:
    """The gateway calls orders and pricing at once: pricing lies inside the
    gateway's span in every trace, inside orders' in ``inside`` of them; it
    fits between the gateway's lines at zero in ``fits_caller``, between
    orders' in ``fits_sibling``."""
    contained, fitted = [], []
    for t in range(traces):
        contained.append(("gateway", "pricing", -0.004, 0.003, t))
        contained.append(("gateway", "orders", -0.002, 0.005, t))
        # inside orders at zero, or only a few milliseconds off
        at_zero = t < inside
        contained.append(("orders", "pricing", -0.003, 0.0005 if at_zero else -0.001, t))
        zero = t < fits_caller
        fitted.append(
            ("gateway", "pricing", -0.001 if zero else 0.001, 0.001 if zero else 0.002, t)
        )
        zero = t < fits_sibling
        fitted.append(("orders", "pricing", -0.003, 0.0005 if zero else -0.0015, t))
    return _evidence(contained), _evidence(fitted)


LINKS = [("gateway", "orders", 80), ("gateway", "pricing", 80), ("orders", "pricing", 78)]


class TestUnfittingLinks:
    def test_a_sibling_that_seldom_fits_between_the_lines_goes(self) -> None:
        contained, fitted = _fan_out(inside=54, fits_sibling=15, fits_caller=80)
        assert refuted_links(LINKS, contained, SERVICES) == []  # 54 of 78: not by containment
        assert unfitting_links(LINKS, contained, fitted, SERVICES) == [2]

    def test_a_link_whose_callee_lies_inside_in_every_trace_stays(self) -> None:
        contained, fitted = _fan_out(inside=80, fits_sibling=15, fits_caller=80)
        assert unfitting_links(LINKS, contained, fitted, SERVICES) == []

    def test_none_goes_where_no_caller_fits_its_callee(self) -> None:
        """A caller that writes while it waits lets its callee fit in few
        traces: nothing says the other link is the call."""
        contained, fitted = _fan_out(inside=54, fits_sibling=15, fits_caller=20)
        assert unfitting_links(LINKS, contained, fitted, SERVICES) == []

    def test_the_only_link_into_a_service_stays(self) -> None:
        contained, fitted = _fan_out(inside=54, fits_sibling=15, fits_caller=80)
        alone = [("gateway", "orders", 80), ("orders", "pricing", 78)]
        assert unfitting_links(alone, contained, fitted, SERVICES) == []


class TestSharedClock:
    def test_every_callee_inside_another_span_at_zero(self) -> None:
        rows = [("gateway", "orders", -0.002, 0.001, 1), ("orders", "pricing", -0.001, 0.004, 1)]
        assert shared_clock(_evidence(rows))

    def test_a_callee_outside_every_span_at_zero(self) -> None:
        rows = [("gateway", "orders", -0.002, 0.001, 1), ("orders", "pricing", 0.003, 0.004, 1)]
        assert not shared_clock(_evidence(rows))

    def test_a_root_inside_a_longer_callee_only_off_zero_is_no_misfit(self) -> None:
        # orders works 5 ms after it answered: its span outlasts the
        # gateway's, which could lie inside it 4 ms off, but at zero holds it
        rows = [("gateway", "orders", -0.002, 0.001, 1), ("orders", "gateway", -0.0045, -0.0038, 1)]
        assert shared_clock(_evidence(rows))

    def test_only_where_the_root_holds_that_service_in_its_own_trace(self) -> None:
        rows = [("gateway", "orders", -0.002, 0.001, 1), ("orders", "gateway", -0.0045, -0.0038, 2)]
        assert not shared_clock(_evidence(rows))
