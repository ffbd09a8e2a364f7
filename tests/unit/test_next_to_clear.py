"""Next to clear: which busy unit reaches a call first when none is free (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from dispatch_tui.rules.enums import UnitStatus
from dispatch_tui.rules.recommend import (
    TYPICAL_STEP_SECONDS,
    divert_candidates,
    free_in_seconds,
    next_to_clear,
)
from dispatch_tui.rules.views import UnitView
from tests.helpers import T0, call_view, unit_view


def busy(code: str, status: str, minutes_in: float, cap: str = "ALS", **kw: object) -> UnitView:
    return replace(
        unit_view(code, cap, status, lat=40.0, lon=-83.0),
        status_since=T0 - timedelta(minutes=minutes_in),
        call_number="C-9",
        **kw,
    )


def test_free_in_counts_the_steps_left_at_their_typical_times() -> None:
    at_hospital = busy("M1", "AT_HOSPITAL", 5)
    assert free_in_seconds(at_hospital, T0) == TYPICAL_STEP_SECONDS[UnitStatus.AT_HOSPITAL] - 300
    on_scene = busy("M2", "ON_SCENE", 0)
    expected = sum(
        TYPICAL_STEP_SECONDS[s]
        for s in (UnitStatus.ON_SCENE, UnitStatus.TRANSPORTING, UnitStatus.AT_HOSPITAL)
    )
    assert free_in_seconds(on_scene, T0) == expected
    overrun = busy("M3", "AT_HOSPITAL", 90)  # past its typical offload: taken to end now
    assert free_in_seconds(overrun, T0) == 0


def test_the_unit_that_reaches_the_call_first_comes_first() -> None:
    call = call_view("C-1", priority=1, lat=40.0, lon=-83.0)
    units = [
        busy("M1", "ON_SCENE", 1),
        busy("M2", "AT_HOSPITAL", 14),  # free in 6 min
        busy("B1", "AT_HOSPITAL", 19, cap="BLS"),  # free in 1 min: 4 min sooner counts
        unit_view("M9", status="AVAILABLE"),  # free units are the recommendation's, not these
        busy("M4", "AT_HOSPITAL", 19, queued_call="C-7"),  # lined up elsewhere already
    ]
    ranked = next_to_clear(call, units, T0)
    assert [c.unit.code for c in ranked] == ["B1", "M2", "M1"]
    assert ranked[0].free_in <= ranked[-1].free_in
    assert "free in ~" in ranked[0].reason and "at the call in ~" in ranked[0].reason


def test_als_first_for_a_p1_unless_a_bls_unit_is_much_sooner() -> None:
    call = call_view("C-1", priority=1, lat=40.0, lon=-83.0)
    als = busy("M1", "AT_HOSPITAL", 17)  # free in 3 min
    bls = busy("B1", "AT_HOSPITAL", 19, cap="BLS")  # free in 1 min: not 4 min sooner
    assert [c.unit.code for c in next_to_clear(call, [als, bls], T0)] == ["M1", "B1"]


def test_a_unit_en_route_to_a_p4_is_offered_for_a_p1_when_much_sooner() -> None:
    call = call_view("C-1", priority=1, lat=40.0, lon=-83.0)
    near = replace(busy("M1", "EN_ROUTE", 1), call_number="C-4")
    far = replace(unit_view("M2", "ALS", "EN_ROUTE", lat=40.3, lon=-83.3), call_number="C-5")
    on_p2 = replace(busy("M3", "EN_ROUTE", 1), call_number="C-2")
    priorities = {"C-4": 4, "C-5": 3, "C-2": 2}
    # No unit free: the near one and the far one, nearest first; never one going to a P2.
    found = divert_candidates(call, [near, far, on_p2], priorities, None)
    assert [d.unit.code for d in found] == ["M1", "M2"]
    assert found[0].reason.startswith("divert from C-4 (P4): here in ~1 min")
    # A free unit 2 min away: diverting M1 (1 min) does not gain enough.
    assert divert_candidates(call, [near], priorities, 120) == []
    # One 10 min away: it does.
    assert [d.unit.code for d in divert_candidates(call, [near], priorities, 600)] == ["M1"]
    # Never for a P3 call.
    assert (
        divert_candidates(
            call_view("C-1", priority=3, lat=40.0, lon=-83.0), [near], priorities, None
        )
        == []
    )
