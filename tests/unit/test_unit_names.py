"""A unit's state has one name everywhere: dispatched until its crew reports en route (issue 12).

The database keeps one status, EN_ROUTE, from the dispatch on; the crew's report only stamps the
assignment's en_route_at. The names the desk, the board, the audit and the CLI show come from
`rules/lifecycle.py`, and the board's timer and the refusals read them from there.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from dispatch_tui.rules import norms
from dispatch_tui.rules.enums import UnitStatus
from dispatch_tui.rules.errors import Conflict
from dispatch_tui.rules.lifecycle import unit_label, unit_short, unit_state, unit_step
from tests.helpers import T0, assignment_view, call_view

U = UnitStatus


@pytest.mark.parametrize(
    ("status", "reported", "state", "words", "short"),
    [
        (U.EN_ROUTE, False, "DISPATCHED", "dispatched", "disp"),
        (U.EN_ROUTE, True, "EN_ROUTE", "en route", "en"),
        (U.ON_SCENE, True, "ON_SCENE", "on scene", "os"),
        (U.ON_SCENE, False, "ON_SCENE", "on scene", "os"),  # arrived without the report
        (U.TRANSPORTING, True, "TRANSPORTING", "transporting", "tx"),
        (U.AT_HOSPITAL, True, "AT_HOSPITAL", "at hospital", "ah"),
        (U.AVAILABLE, False, "AVAILABLE", "available", "av"),
        (U.OUT_OF_SERVICE, False, "OUT_OF_SERVICE", "out of service", "oos"),
    ],
)
def test_a_unit_state_has_one_name(
    status: UnitStatus, reported: bool, state: str, words: str, short: str
) -> None:
    assert unit_state(status, reported) == state
    assert unit_label(status, reported) == words
    assert unit_short(status, reported) == short


def test_refusals_name_a_dispatched_unit_as_dispatched() -> None:
    with pytest.raises(Conflict, match=r"^M1 is dispatched on a call; clear it"):
        unit_step("M1", U.EN_ROUTE, U.OUT_OF_SERVICE, en_route_reported=False)
    with pytest.raises(Conflict, match=r"^M1 is en route on a call; clear it"):
        unit_step("M1", U.EN_ROUTE, U.OUT_OF_SERVICE, en_route_reported=True)


def test_the_board_timer_of_a_dispatched_unit_is_named_as_the_desk_names_it() -> None:
    dispatched = assignment_view("M1", "EN_ROUTE", notified_at=T0)
    reported = assignment_view("M2", "EN_ROUTE", notified_at=T0, en_route_at=T0)
    call = call_view("C-7", status="DISPATCHED", assignments=(dispatched, reported))
    found = norms.timers([call], T0 + timedelta(seconds=61))
    assert [(t.rule.label, t.unit_code, t.overdue) for t in found] == [("dispatched", "M1", True)]
