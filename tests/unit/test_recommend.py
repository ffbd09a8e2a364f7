"""Recommendation as a pure rule: units ranked by estimated arrival, ALS preferred for P1/P2 unless
a BLS unit is much closer, BLS spared-for at P3/P4, each with its reason; and the destinations a
unit may transport to. Positions are set up
kilometres north of the call, so every distance in a test is the one it names.
(tests/test_recommend.py checks that the service feeds it the right units and positions.)"""

from __future__ import annotations

import math

import pytest

from dispatch_tui.rules.recommend import (
    BLS_PENALTY_SECONDS,
    TURNOUT_SECONDS,
    Candidate,
    destinations,
    estimate_seconds,
    for_call,
    haversine_km,
    rank,
)
from dispatch_tui.rules.views import CallView, HospitalView, Recommendation
from tests.helpers import call_view, hospital_view, unit_view

SCENE = (40.0, -83.0)
KM_PER_DEGREE = math.pi * 6371.0 / 180  # along a meridian


def north(km: float) -> tuple[float, float]:
    return (SCENE[0] + km / KM_PER_DEGREE, SCENE[1])


def live(code: str, capability: str, km: float) -> Candidate:
    """A unit that reported its position `km` north of the scene."""
    lat, lon = north(km)
    return Candidate(unit_view(code, capability, lat=lat, lon=lon), (lat, lon), from_station=False)


def codes(recs: list[Recommendation]) -> list[str]:
    return [r.unit.code for r in recs]


# -- distance and time ------------------------------------------------------------------------------


def test_great_circle_distance() -> None:
    assert haversine_km(SCENE, SCENE) == 0
    assert haversine_km(SCENE, north(10)) == pytest.approx(10, abs=1e-6)
    # One degree of longitude shrinks with the cosine of the latitude.
    east = haversine_km((40.0, -83.0), (40.0, -82.0))
    assert east == pytest.approx(KM_PER_DEGREE * math.cos(math.radians(40)), rel=1e-3)
    assert haversine_km((40.0, -82.0), (40.0, -83.0)) == pytest.approx(east)


def test_travel_time_is_turnout_plus_road_distance_at_speed() -> None:
    assert estimate_seconds(0) == TURNOUT_SECONDS == 60
    # 10 km straight is 13.5 km of road at 55 km/h: 883.6 s, plus the turnout.
    assert estimate_seconds(10) == 60 + 884


# -- ranking -----------------------------------------------------------------------------------------


def test_nearest_first_with_ranks_distances_and_times() -> None:
    recs = rank(3, SCENE, [live("M3", "ALS", 3), live("M1", "ALS", 1), live("M2", "ALS", 2)], 10)
    assert codes(recs) == ["M1", "M2", "M3"]
    assert [r.rank for r in recs] == [1, 2, 3]
    assert [r.distance_km for r in recs] == pytest.approx([1, 2, 3])
    assert [r.eta_seconds for r in recs] == [estimate_seconds(km) for km in (1, 2, 3)]
    assert recs[0].reason == "ALS · 1.0 km, ETA 2 min from last position"


@pytest.mark.parametrize("priority", [1, 2])
def test_p1_p2_prefer_als_at_the_same_distance(priority: int) -> None:
    recs = rank(priority, SCENE, [live("B1", "BLS", 2), live("M9", "ALS", 2)], 10)
    assert codes(recs) == ["M9", "B1"]
    assert recs[0].reason.endswith(f" · ALS for P{priority}")
    assert recs[1].reason.endswith(f" · ALS preferred for P{priority}")


@pytest.mark.parametrize("priority", [1, 2])
def test_p1_p2_keep_an_als_unit_that_is_a_little_farther(priority: int) -> None:
    # ALS 2 km out arrives about three minutes after a BLS at the scene: less than the penalty.
    als, bls = live("M1", "ALS", 2), live("B1", "BLS", 0)
    assert estimate_seconds(2) - estimate_seconds(0) < BLS_PENALTY_SECONDS
    assert codes(rank(priority, SCENE, [bls, als], 10)) == ["M1", "B1"]


@pytest.mark.parametrize("priority", [1, 2])
def test_p1_p2_take_a_bls_unit_that_is_much_closer(priority: int) -> None:
    # ALS 5 km out arrives over seven minutes after a BLS at the scene: first care comes first.
    als, bls = live("M1", "ALS", 5), live("B1", "BLS", 0)
    assert estimate_seconds(5) - estimate_seconds(0) > BLS_PENALTY_SECONDS
    recs = rank(priority, SCENE, [als, bls], 10)
    assert codes(recs) == ["B1", "M1"]
    assert "ALS preferred" in recs[0].reason  # the dispatcher is told to add the ALS unit


@pytest.mark.parametrize("priority", [3, 4])
def test_p3_p4_take_bls_at_the_same_distance_and_keep_als_free(priority: int) -> None:
    # R7 sorts after M1: the code alone would put the ALS unit first.
    recs = rank(priority, SCENE, [live("M1", "ALS", 2), live("R7", "BLS", 2)], 10)
    assert codes(recs) == ["R7", "M1"]
    assert recs[0].reason.endswith(f" · BLS suffices for P{priority}")
    assert recs[1].reason == "ALS · 2.0 km, ETA 4 min from last position"  # no capability note


@pytest.mark.parametrize("priority", [3, 4])
def test_p3_p4_take_the_nearest_unit_even_if_it_is_als(priority: int) -> None:
    recs = rank(priority, SCENE, [live("B1", "BLS", 1), live("M1", "ALS", 0.5)], 10)
    assert codes(recs) == ["M1", "B1"]


def test_equal_units_at_the_same_place_rank_by_code() -> None:
    recs = rank(3, SCENE, [live("B3", "BLS", 1), live("B1", "BLS", 1), live("B2", "BLS", 1)], 10)
    assert codes(recs) == ["B1", "B2", "B3"]


@pytest.mark.parametrize(
    ("limit", "expected"), [(0, []), (2, ["M1", "M2"]), (9, ["M1", "M2", "M3"])]
)
def test_limit_keeps_the_best(limit: int, expected: list[str]) -> None:
    recs = rank(1, SCENE, [live("M3", "ALS", 3), live("M2", "ALS", 2), live("M1", "ALS", 1)], limit)
    assert codes(recs) == expected
    assert [r.rank for r in recs] == list(range(1, len(expected) + 1))


# -- missing positions ---------------------------------------------------------------------------


def test_a_call_without_coordinates_ranks_by_capability_alone() -> None:
    recs = rank(1, None, [live("B1", "BLS", 0), live("M2", "ALS", 9), live("M1", "ALS", 5)], 10)
    assert codes(recs) == ["M1", "M2", "B1"]  # ALS first, then by code: no distance to go on
    assert all(r.distance_km is None and r.eta_seconds is None for r in recs)
    assert all("call has no coordinates: distance unknown" in r.reason for r in recs)


def test_a_unit_without_a_position_comes_last() -> None:
    lost = Candidate(unit_view("M1", "ALS", station_code=None), None, from_station=True)
    recs = rank(1, SCENE, [lost, live("B1", "BLS", 30)], 10)
    # Even a BLS unit 30 km out for a P1: a known arrival beats an unknown one.
    assert codes(recs) == ["B1", "M1"]
    assert recs[1].reason == "ALS · unit position unknown · ALS for P1"
    assert (recs[1].distance_km, recs[1].eta_seconds) == (None, None)


# -- for_call: the available units of a call, from what the service read --------------------------


def test_for_call_ranks_only_available_units() -> None:
    call = call_view(priority=2, lat=SCENE[0], lon=SCENE[1])
    lat, lon = north(4)
    units = [
        unit_view("M1", status="EN_ROUTE", lat=SCENE[0], lon=SCENE[1]),
        unit_view("M2", status="OUT_OF_SERVICE", lat=SCENE[0], lon=SCENE[1]),
        unit_view("M3", status="ON_SCENE", lat=SCENE[0], lon=SCENE[1]),
        unit_view("M4", lat=lat, lon=lon),
    ]
    assert codes(for_call(call, units, limit=10)) == ["M4"]


def test_for_call_measures_from_the_last_position_or_else_the_home_station() -> None:
    call = call_view(priority=1, lat=SCENE[0], lon=SCENE[1])
    lat, lon = north(1)
    units = [
        # Reported 1 km out; its station (3 km) does not count.
        unit_view("M1", lat=lat, lon=lon, station_code="S3", station_position=north(3)),
        # Never reported: measured from its station, 2 km out.
        unit_view("M2", station_code="S2", station_position=north(2)),
        # Neither: no distance at all.
        unit_view("M3", station_code=None),
    ]
    recs = for_call(call, units, limit=10)
    assert codes(recs) == ["M1", "M2", "M3"]
    assert [r.distance_km for r in recs[:2]] == pytest.approx([1, 2])
    assert "from last position" in recs[0].reason
    assert "from station S2" in recs[1].reason
    assert "unit position unknown" in recs[2].reason


def test_for_call_without_coordinates() -> None:
    call = call_view(priority=3)  # a free-text location: no lat/lon
    recs = for_call(call, [unit_view("B1", "BLS", station_position=north(1))], limit=10)
    assert recs[0].reason == "BLS · call has no coordinates: distance unknown · BLS suffices for P3"


# -- destinations ----------------------------------------------------------------------------------


def hospital(code: str, km: float, status: str = "OPEN") -> HospitalView:
    return hospital_view(code, *north(km), status=status)


HOSPITALS = [
    hospital("FAR", 9),
    hospital("NEAR", 1),
    hospital("SHUT", 0.5, status="CLOSED"),
    hospital("BUSY", 0.2, status="DIVERSION"),
    hospital("MID", 4),
]


def test_destinations_open_nearest_first_then_on_diversion_never_closed() -> None:
    found = destinations(call_view(lat=SCENE[0], lon=SCENE[1]), HOSPITALS)
    assert [d.hospital.code for d in found] == ["NEAR", "MID", "FAR", "BUSY"]
    assert [d.distance_km for d in found] == pytest.approx([1, 4, 9, 0.2])
    assert [d.on_diversion for d in found] == [False, False, False, True]
    assert not any(d.chosen for d in found)


@pytest.mark.parametrize("chosen", ["FAR", "BUSY"])
def test_the_destination_chosen_at_dispatch_comes_first(chosen: str) -> None:
    call = call_view(lat=SCENE[0], lon=SCENE[1], destination_code=chosen)
    found = destinations(call, HOSPITALS)
    assert found[0].hospital.code == chosen and found[0].chosen
    assert [d.chosen for d in found[1:]] == [False] * 3


def test_a_closed_destination_is_left_out_even_if_chosen() -> None:
    call = call_view(lat=SCENE[0], lon=SCENE[1], destination_code="SHUT")
    assert "SHUT" not in {d.hospital.code for d in destinations(call, HOSPITALS)}


@pytest.mark.parametrize("call", [None, call_view()], ids=["no call", "no coordinates"])
def test_without_a_scene_destinations_go_by_code(call: CallView | None) -> None:
    found = destinations(call, HOSPITALS)
    assert [d.hospital.code for d in found] == ["FAR", "MID", "NEAR", "BUSY"]
    assert all(d.distance_km is None for d in found)
