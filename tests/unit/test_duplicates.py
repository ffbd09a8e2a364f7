"""Duplicate calls: which open calls a new one may be (pure rules)."""

from __future__ import annotations

from datetime import timedelta

from dispatch_tui.rules.duplicates import DuplicateRule, candidates, normalise_address
from tests.helpers import T0, call_view

RULE = DuplicateRule(metres=150, minutes=30)
HERE = (40.0, -83.0)
# About 111 m of latitude per 0.001 degree.
NEAR = (40.001, -83.0)
FAR = (40.002, -83.0)


def open_call(number: str, where: tuple[float, float] | None, minutes_ago: float = 5, **kw):  # type: ignore[no-untyped-def]
    lat, lon = where if where else (None, None)
    return call_view(
        number, lat=lat, lon=lon, received_at=T0 - timedelta(minutes=minutes_ago), **kw
    )


def test_an_open_call_within_the_distance_and_the_time_is_a_candidate() -> None:
    found = candidates(HERE, "", [open_call("C-1", NEAR), open_call("C-2", FAR)], T0, RULE)
    assert [c.call.number for c in found] == ["C-1"]
    assert 100 < (found[0].metres or 0) < 120 and not found[0].same_address


def test_too_old_or_ended_is_not() -> None:
    old = open_call("C-1", NEAR, minutes_ago=31)
    ended = open_call("C-2", NEAR, status="CLOSED")
    assert candidates(HERE, "", [old, ended], T0, RULE) == []
    assert [c.call.number for c in candidates(HERE, "", [old], T0, DuplicateRule(minutes=40))] == [
        "C-1"
    ]


def test_the_same_address_typed_another_way_is_a_candidate_anywhere() -> None:
    far_but_same = call_view(
        "C-9", received_at=T0 - timedelta(minutes=2), location_text="12 North Main Street"
    )
    (found,) = candidates(None, "12 n. main st", [far_but_same], T0, RULE)
    assert found.same_address and found.metres is None
    assert candidates(None, "14 n main st", [far_but_same], T0, RULE) == []


def test_addresses_compare_without_case_punctuation_or_long_forms() -> None:
    assert normalise_address("12 N. Main Street, Apt 4") == "12 n main st apt 4"
    assert normalise_address("  400  WEST   Boulevard ") == "400 w blvd"
    assert normalise_address("") == ""


def test_nearest_first_and_the_line_says_why() -> None:
    found = candidates(HERE, "", [open_call("C-2", NEAR), open_call("C-1", HERE)], T0, RULE)
    assert [c.call.number for c in found] == ["C-1", "C-2"]
    assert found[1].line(T0).endswith("· 111 m · 5 min ago")


def test_a_centre_may_switch_either_check_off() -> None:
    here = open_call("C-1", HERE)
    assert candidates(HERE, "", [here], T0, DuplicateRule(minutes=0)) == []
    assert candidates(HERE, "", [here], T0, DuplicateRule(metres=0)) == []  # no address given
    (found,) = candidates(HERE, "1 Main St", [here], T0, DuplicateRule(metres=0))
    assert found.same_address  # the helper's call is at 1 Main Street
