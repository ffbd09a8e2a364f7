"""Recommendation: nearest suitable unit first, ALS preferred for P1/P2, each with its reason."""

from __future__ import annotations

from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.service.dispatch_service import DispatchService


def test_p1_prefers_als_over_an_equally_near_bls(world: DispatchService) -> None:
    # Riverton Mall: M1, M2 (ALS) and B1 (BLS) all sit at Station 1, 2.5 km away.
    number = world.create_call(
        "alice", CallIntake(nature="Cardiac arrest", place="Riverton Mall", priority=1)
    ).number
    recs = world.recommend(number, limit=12)
    assert [r.unit.code for r in recs[:2]] == ["M1", "M2"]
    assert "ALS for P1" in recs[0].reason and "2.5 km" in recs[0].reason
    b1 = next(r for r in recs if r.unit.code == "B1")
    assert b1.rank > 2 and "ALS preferred for P1" in b1.reason


def test_p1_takes_a_much_closer_bls_when_every_als_is_far(world: DispatchService) -> None:
    for code in ("M1", "M2", "M3", "M4", "M5", "M6"):
        world.locate_unit("alice", code, 40.30, -83.30)  # ~40 km out
    world.locate_unit("alice", "B2", 40.0212, -82.9882)  # at the scene
    number = world.create_call(
        "alice", CallIntake(nature="Cardiac arrest", place="Riverton Mall", priority=1)
    ).number
    recs = world.recommend(number, limit=12)
    assert recs[0].unit.code == "B2" and "ALS preferred for P1" in recs[0].reason
    # Every nearby BLS beats an ALS unit 40 km out; the ALS units still follow, nearest first.
    als = [r for r in recs if r.unit.capability == "ALS"]
    assert als and min(r.rank for r in als) > 6


def test_p4_takes_the_nearest_unit_and_spares_als_at_equal_distance(world: DispatchService) -> None:
    world.locate_unit("alice", "M4", 40.0212, -82.9882)  # ALS right at the scene: nearest wins
    number = world.create_call(
        "alice", CallIntake(nature="Minor cut", place="Riverton Mall", priority=4)
    ).number
    assert world.recommend(number)[0].unit.code == "M4"
    world.locate_unit("alice", "B4", 40.0212, -82.9882)  # a BLS at the same spot is preferred
    assert world.recommend(number)[0].unit.code == "B4"


def test_busy_units_are_not_recommended_and_the_order_follows_distance(
    world: DispatchService,
) -> None:
    number = world.create_call(
        "alice", CallIntake(nature="Fall", place="Eastside Stadium", priority=3)
    ).number
    first = world.recommend(number, limit=12)
    world.dispatch("alice", number, [first[0].unit.code])
    other = world.create_call(
        "alice", CallIntake(nature="Fall", place="Eastside Stadium", priority=3)
    ).number
    again = world.recommend(other, limit=12)
    assert first[0].unit.code not in {r.unit.code for r in again}
    etas = [r.eta_seconds for r in again if r.unit.capability == "BLS"]
    assert etas == sorted(etas)


def test_a_call_without_coordinates_still_lists_units(world: DispatchService) -> None:
    number = world.create_call(
        "alice", CallIntake(nature="Sick", location="somewhere rural", priority=2)
    ).number
    recs = world.recommend(number)
    assert recs and recs[0].unit.capability == "ALS"
    assert all("no coordinates" in r.reason for r in recs)
