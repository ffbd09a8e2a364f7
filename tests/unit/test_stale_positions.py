"""Positions carry their age (pure): the rule (`norms`), the centre's setting for it, and what the
recommendation says of a unit measured from a stale position, from its station, or from a fresh
one. (The desk's marker is in tests/test_desk_places.py, the CLI's in tests/test_cli.py.)"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from dispatch_tui.config import DeskOptions, Settings
from dispatch_tui.rules import norms
from dispatch_tui.rules.recommend import (
    divert_candidates,
    estimate_seconds,
    for_call,
    haversine_km,
    next_to_clear,
    origin,
)
from dispatch_tui.rules.views import UnitView
from tests.helpers import T0, call_view, unit_view

SCENE = (40.0, -83.0)
OUT = (40.03, -83.0)  # about 3.3 km north


def reported(code: str, minutes_ago: float, **kw: object) -> UnitView:
    """An available unit 3.3 km from the scene that reported its position `minutes_ago`."""
    unit = unit_view(code, lat=OUT[0], lon=OUT[1], station_code="S2", station_position=SCENE)
    return replace(unit, position_at=T0 - timedelta(minutes=minutes_ago), **kw)


# -- the rule ---------------------------------------------------------------------------------------


def test_a_position_is_stale_past_ten_minutes_by_default() -> None:
    at = T0 - timedelta(minutes=10)
    assert norms.position_age(at, T0) == 600
    assert not norms.position_stale(at, T0)  # 10 min is still trusted; past it, not
    assert norms.position_stale(at - timedelta(seconds=1), T0)
    assert norms.position_stale(at, T0, stale_seconds=300)


def test_no_position_or_no_clock_is_never_stale() -> None:
    assert norms.position_age(None, T0) is None and not norms.position_stale(None, T0)
    assert norms.position_age(T0, None) is None and not norms.position_stale(T0, None)
    assert not norms.age_stale(None)


def test_an_age_the_database_gave_is_judged_by_the_same_rule() -> None:
    assert norms.age_stale(601) and not norms.age_stale(600)
    assert norms.age_stale(301, stale_seconds=300) and not norms.age_stale(301, 900)
    # The same answer as from the two times.
    at = T0 - timedelta(seconds=601)
    assert norms.age_stale(norms.position_age(at, T0)) == norms.position_stale(at, T0)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "position 0 min old"), (1399, "position 23 min old"), (7500, "position 2 h 05 min old")],
)
def test_a_positions_age_in_words(seconds: float, words: str) -> None:
    assert norms.position_age_words(seconds) == words


# -- the centre's setting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("", 600), ("25", 1500), (" 3 ", 180), ("0", 600), ("-5", 600), ("ten", 600), ("1441", 600)],
)
def test_the_threshold_is_whole_minutes_from_the_environment(
    value: str, seconds: int, tmp_path: Path
) -> None:
    env = {"DISPATCH_STALE_POSITION_MINUTES": value, "DISPATCH_DATA_DIR": str(tmp_path)}
    assert DeskOptions.load(env).stale_position_seconds == seconds
    assert Settings.load(env=env).stale_position_seconds == seconds


# -- the recommendation --------------------------------------------------------------------------


def test_a_stale_position_says_its_age_and_that_the_eta_is_a_guess() -> None:
    call = call_view(priority=1, lat=SCENE[0], lon=SCENE[1])
    (rec,) = for_call(call, [reported("M1", 23)], limit=5, now=T0)
    assert rec.stale_position
    assert "position 23 min old" in rec.reason
    km = haversine_km(OUT, SCENE)
    eta = round(estimate_seconds(km) / 60)
    assert f"{km:.1f} km, ETA ~{eta} min from a stale position" in rec.reason
    assert rec.eta_seconds == estimate_seconds(km)  # still ranked by it: the best guess there is


def test_a_fresh_position_is_measured_as_it_is() -> None:
    call = call_view(priority=1, lat=SCENE[0], lon=SCENE[1])
    (rec,) = for_call(call, [reported("M1", 2)], limit=5, now=T0)
    assert not rec.stale_position
    assert "from last position" in rec.reason and "~" not in rec.reason
    assert "min old" not in rec.reason


def test_the_centres_threshold_decides_what_is_stale() -> None:
    call = call_view(priority=1, lat=SCENE[0], lon=SCENE[1])
    unit = reported("M1", 23)
    (lenient,) = for_call(call, [unit], limit=5, now=T0, stale_seconds=30 * 60)
    assert not lenient.stale_position and "min old" not in lenient.reason
    (strict,) = for_call(call, [reported("M1", 4)], limit=5, now=T0, stale_seconds=3 * 60)
    assert strict.stale_position and "position 4 min old" in strict.reason


def test_without_a_clock_nothing_is_called_stale() -> None:
    call = call_view(priority=1, lat=SCENE[0], lon=SCENE[1])
    (rec,) = for_call(call, [reported("M1", 600)], limit=5)
    assert not rec.stale_position and "from last position" in rec.reason


def test_a_unit_that_never_reported_is_measured_from_its_station_and_says_so() -> None:
    call = call_view(priority=1, lat=SCENE[0], lon=SCENE[1])
    never = unit_view("M2", station_code="S2", station_position=OUT)
    (rec,) = for_call(call, [never], limit=5, now=T0)
    assert "from station S2" in rec.reason and not rec.stale_position
    assert origin(never, T0).from_station


def test_a_unit_whose_clearing_is_estimated_from_a_stale_position_says_so() -> None:
    call = call_view("C-1", priority=1, lat=SCENE[0], lon=SCENE[1])
    busy = replace(reported("M1", 40), status="AT_HOSPITAL", call_number="C-9", status_since=T0)
    (clearing,) = next_to_clear(call, [busy], T0)
    assert "at the call in ~" in clearing.reason
    assert "from a stale position (position 40 min old)" in clearing.reason
    fresh = replace(busy, position_at=T0)
    (clearing,) = next_to_clear(call, [fresh], T0)
    assert "stale" not in clearing.reason and "from station" not in clearing.reason


def test_a_divert_from_a_stale_position_says_so() -> None:
    call = call_view("C-1", priority=1, lat=SCENE[0], lon=SCENE[1])
    rolling = replace(reported("M1", 15), status="EN_ROUTE", call_number="C-9")
    (found,) = divert_candidates(call, [rolling], {"C-9": 4}, None, now=T0)
    assert "here in ~" in found.reason and "(position 15 min old)" in found.reason
