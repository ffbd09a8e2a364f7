"""Recommendation through the service: the units and positions it reads from the database.

The ranking itself (ALS for P1/P2 unless a BLS unit is much closer, BLS spared-for at P3/P4, ties,
missing positions, the limit) is a pure rule, tested in tests/unit/test_recommend.py. Here: units
are measured from the positions the database has for them, a busy unit is never offered, and a
call at a free-text location has no coordinates to measure from.
"""

from __future__ import annotations

from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call


def test_units_are_measured_from_where_the_database_has_them(world: DispatchService) -> None:
    # Riverton Mall: M1, M2 (ALS) and B1 (BLS) all sit at Station 1, 2.5 km away.
    number = new_call(world, nature="Cardiac arrest", place="Riverton Mall", priority=1)
    recs = world.recommend(number, limit=12)
    assert [r.unit.code for r in recs[:2]] == ["M1", "M2"]
    assert "2.5 km" in recs[0].reason
    # M4 reports a position at the scene: measured from there now, and first.
    world.locate_unit("alice", "M4", 40.0212, -82.9882)
    first = world.recommend(number)[0]
    assert first.unit.code == "M4" and "0.0 km" in first.reason
    assert "from last position" in first.reason


def test_busy_units_are_not_recommended_and_the_order_follows_distance(
    world: DispatchService,
) -> None:
    number = new_call(world, nature="Fall", place="Eastside Stadium", priority=3)
    first = world.recommend(number, limit=12)
    world.dispatch("alice", number, [first[0].unit.code])
    other = new_call(world, nature="Fall", place="Eastside Stadium", priority=3)
    again = world.recommend(other, limit=12)
    assert first[0].unit.code not in {r.unit.code for r in again}
    etas = [r.eta_seconds for r in again if r.unit.capability == "BLS"]
    assert etas == sorted(etas)


def test_a_call_without_coordinates_still_lists_units(world: DispatchService) -> None:
    number = new_call(world, nature="Sick", location="somewhere rural", place="", priority=2)
    recs = world.recommend(number)
    assert recs and recs[0].unit.capability == "ALS"
    assert all("no coordinates" in r.reason for r in recs)
