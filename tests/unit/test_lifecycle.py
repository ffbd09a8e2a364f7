"""The unit and call lifecycles as pure rules: the step table, each refusal and its hint, and the
call status that follows its units. (tests/test_lifecycle.py drives the same rules through the
service on PostgreSQL.)"""

from __future__ import annotations

import pytest

from dispatch_tui.rules.enums import CallStatus, UnitStatus
from dispatch_tui.rules.errors import Conflict
from dispatch_tui.rules.lifecycle import (
    UNIT_STEPS,
    UnitStep,
    call_status_for,
    check_consistent,
    label,
    unit_label,
    unit_step,
)

U = UnitStatus

# Every allowed step and what it records, written out from DOMAIN.md rather than read from the
# table, so a changed column or flag fails here.
DOCUMENTED_STEPS = {
    (U.EN_ROUTE, U.EN_ROUTE): UnitStep(U.EN_ROUTE, "en_route_at"),
    (U.EN_ROUTE, U.ON_SCENE): UnitStep(U.ON_SCENE, "on_scene_at"),
    (U.ON_SCENE, U.TRANSPORTING): UnitStep(
        U.TRANSPORTING, "transporting_at", needs_destination=True
    ),
    (U.TRANSPORTING, U.AT_HOSPITAL): UnitStep(U.AT_HOSPITAL, "at_destination_at"),
    (U.AT_HOSPITAL, U.AVAILABLE): UnitStep(U.AVAILABLE, "cleared_at", ends_assignment=True),
    (U.ON_SCENE, U.AVAILABLE): UnitStep(U.AVAILABLE, "cleared_at", ends_assignment=True),
    (U.AVAILABLE, U.OUT_OF_SERVICE): UnitStep(U.OUT_OF_SERVICE, None),
    (U.OUT_OF_SERVICE, U.AVAILABLE): UnitStep(U.AVAILABLE, None),
}
REFUSED = [(frm, to) for frm in U for to in U if (frm, to) not in DOCUMENTED_STEPS]


def _ids(pair: tuple[UnitStatus, UnitStatus]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def test_the_step_table_is_the_documented_lifecycle() -> None:
    # The service and the matrix in tests/test_lifecycle.py trust UNIT_STEPS; this pins the table
    # itself, so a step added by mistake (say EN_ROUTE -> AVAILABLE, skipping the cancel) cannot
    # pass unnoticed.
    assert UNIT_STEPS == DOCUMENTED_STEPS


@pytest.mark.parametrize("pair", list(DOCUMENTED_STEPS), ids=_ids)
def test_every_allowed_step_is_given(pair: tuple[UnitStatus, UnitStatus]) -> None:
    frm, to = pair
    step = unit_step("M1", frm, to, en_route_reported=False)
    assert step == DOCUMENTED_STEPS[pair] and step.to == to


def test_en_route_is_reported_once() -> None:
    first = unit_step("M1", U.EN_ROUTE, U.EN_ROUTE, en_route_reported=False)
    assert first.time_column == "en_route_at"
    with pytest.raises(Conflict, match=r"^M1 is already reported en route$"):
        unit_step("M1", U.EN_ROUTE, U.EN_ROUTE, en_route_reported=True)


@pytest.mark.parametrize("pair", REFUSED, ids=_ids)
def test_every_other_change_is_a_conflict_naming_the_unit(
    pair: tuple[UnitStatus, UnitStatus],
) -> None:
    frm, to = pair
    with pytest.raises(Conflict) as refused:
        unit_step("B7", frm, to, en_route_reported=False)
    assert refused.value.message.startswith("B7 ")
    assert "\n" not in refused.value.message


@pytest.mark.parametrize(
    ("frm", "to", "hint"),
    [
        # Asking for the status it already has.
        (U.AVAILABLE, U.AVAILABLE, "B7 is already available"),
        (U.ON_SCENE, U.ON_SCENE, "B7 is already on scene"),
        (U.OUT_OF_SERVICE, U.OUT_OF_SERVICE, "B7 is already out of service"),
        # En route happens by dispatch, never by a status key.
        (U.AVAILABLE, U.EN_ROUTE, "B7 is not on a call; dispatch it to one (d CALL B7)"),
        # A unit that has not arrived is cancelled, not cleared.
        (
            U.EN_ROUTE,
            U.AVAILABLE,
            "B7 has not arrived; cancel its assignment instead (unit cancel B7)",
        ),
        # A unit on a call is cleared before it goes out of service, whatever its step.
        *(
            (
                busy,
                U.OUT_OF_SERVICE,
                # (the refusal names the unit's state as every screen does: dispatched, not
                # yet en route, in this set-up)
                f"B7 is {unit_label(busy, en_route_reported=False)} on a call; clear it before "
                "taking it out of service",
            )
            for busy in (U.EN_ROUTE, U.ON_SCENE, U.TRANSPORTING, U.AT_HOSPITAL)
        ),
        # Out of service: back in service first, whatever was asked.
        (
            U.OUT_OF_SERVICE,
            U.EN_ROUTE,
            "B7 is out of service; put it back in service first (av B7)",
        ),
        (
            U.OUT_OF_SERVICE,
            U.ON_SCENE,
            "B7 is out of service; put it back in service first (av B7)",
        ),
        # Anything else: the plain refusal, naming both ends.
        (U.AVAILABLE, U.ON_SCENE, "B7 cannot go from available to on scene"),
        (U.EN_ROUTE, U.TRANSPORTING, "B7 cannot go from dispatched to transporting"),
        (U.TRANSPORTING, U.ON_SCENE, "B7 cannot go from transporting to on scene"),
        (U.AT_HOSPITAL, U.TRANSPORTING, "B7 cannot go from at hospital to transporting"),
    ],
)
def test_refusals_say_what_to_do_instead(frm: UnitStatus, to: UnitStatus, hint: str) -> None:
    with pytest.raises(Conflict) as refused:
        unit_step("B7", frm, to, en_route_reported=False)
    assert refused.value.message == hint


def test_label_is_lower_case_words() -> None:
    assert label("OUT_OF_SERVICE") == "out of service"
    assert label(U.AT_HOSPITAL) == "at hospital"


# -- the call follows its units -------------------------------------------------------------------


@pytest.mark.parametrize(
    "units", [[], [U.AVAILABLE], [U.OUT_OF_SERVICE], [U.AVAILABLE, U.OUT_OF_SERVICE]]
)
def test_a_call_without_an_active_unit_has_no_status_from_them(units: list[UnitStatus]) -> None:
    assert call_status_for(units) is None


@pytest.mark.parametrize(
    ("unit", "call"),
    [
        (U.EN_ROUTE, CallStatus.DISPATCHED),
        (U.ON_SCENE, CallStatus.ON_SCENE),
        (U.TRANSPORTING, CallStatus.TRANSPORTING),
        (U.AT_HOSPITAL, CallStatus.AT_HOSPITAL),
    ],
)
def test_a_call_with_one_unit_follows_it(unit: UnitStatus, call: CallStatus) -> None:
    assert call_status_for([unit]) == call


@pytest.mark.parametrize(
    ("units", "call"),
    [
        ([U.EN_ROUTE, U.ON_SCENE], CallStatus.ON_SCENE),
        ([U.ON_SCENE, U.EN_ROUTE], CallStatus.ON_SCENE),
        ([U.TRANSPORTING, U.EN_ROUTE, U.ON_SCENE], CallStatus.TRANSPORTING),
        ([U.EN_ROUTE, U.AT_HOSPITAL, U.TRANSPORTING], CallStatus.AT_HOSPITAL),
        ([U.EN_ROUTE, U.EN_ROUTE], CallStatus.DISPATCHED),
        # A unit that is not on the call (available again) does not hold it back or push it on.
        ([U.AVAILABLE, U.ON_SCENE], CallStatus.ON_SCENE),
    ],
)
def test_a_call_follows_its_most_advanced_unit(units: list[UnitStatus], call: CallStatus) -> None:
    assert call_status_for(units) == call


# -- a unit whose status and assignment disagree (a direct SQL change) -------------------------------


@pytest.mark.parametrize("status", [U.EN_ROUTE, U.ON_SCENE, U.TRANSPORTING, U.AT_HOSPITAL])
def test_a_busy_unit_on_no_call_is_named_as_such(status: UnitStatus) -> None:
    with pytest.raises(Conflict) as err:
        check_consistent("M6", status, None)
    assert err.value.message == (
        f"M6 is {label(status)} but on no call; its status was changed outside the desk: "
        "correct it in the database"
    )


@pytest.mark.parametrize("status", [U.AVAILABLE, U.OUT_OF_SERVICE])
def test_a_free_unit_still_on_a_call_is_named_as_such(status: UnitStatus) -> None:
    with pytest.raises(Conflict) as err:
        check_consistent("M6", status, "C-1002")
    assert err.value.message == (
        f"M6 is {label(status)} but still on C-1002; its status was changed outside the desk: "
        "cancel C-1002 to release it, or correct it in the database"
    )


@pytest.mark.parametrize(
    ("status", "call"),
    [(U.AVAILABLE, None), (U.OUT_OF_SERVICE, None), (U.EN_ROUTE, "C-1"), (U.AT_HOSPITAL, "C-1")],
)
def test_a_consistent_unit_passes(status: UnitStatus, call: str | None) -> None:
    assert check_consistent("M6", status, call) is None
