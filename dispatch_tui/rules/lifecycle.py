"""The unit and call lifecycles: which status changes exist, and what each one records.

Pure rules, no database. The service asks `unit_step` what a requested change means and refuses
everything the table does not list, with a hint at the step the dispatcher probably wanted.
"""

from __future__ import annotations

from dataclasses import dataclass

from dispatch_tui.rules.enums import CallStatus, UnitStatus
from dispatch_tui.rules.errors import Conflict

U = UnitStatus


@dataclass(frozen=True, slots=True)
class UnitStep:
    """What one allowed unit status change does to the unit's assignment."""

    to: UnitStatus
    time_column: str | None  # assignment column stamped with now(); None: no assignment involved
    ends_assignment: bool = False
    needs_destination: bool = False


# (from, to) -> step. AVAILABLE -> EN_ROUTE happens only by dispatch, never by a status key.
UNIT_STEPS: dict[tuple[UnitStatus, UnitStatus], UnitStep] = {
    (U.EN_ROUTE, U.EN_ROUTE): UnitStep(U.EN_ROUTE, "en_route_at"),
    (U.EN_ROUTE, U.ON_SCENE): UnitStep(U.ON_SCENE, "on_scene_at"),
    (U.ON_SCENE, U.TRANSPORTING): UnitStep(
        U.TRANSPORTING, "transporting_at", needs_destination=True
    ),
    (U.TRANSPORTING, U.AT_HOSPITAL): UnitStep(U.AT_HOSPITAL, "at_destination_at"),
    (U.AT_HOSPITAL, U.AVAILABLE): UnitStep(U.AVAILABLE, "cleared_at", ends_assignment=True),
    # Cleared on scene without transport (treated and released, refusal, no patient).
    (U.ON_SCENE, U.AVAILABLE): UnitStep(U.AVAILABLE, "cleared_at", ends_assignment=True),
    (U.AVAILABLE, U.OUT_OF_SERVICE): UnitStep(U.OUT_OF_SERVICE, None),
    (U.OUT_OF_SERVICE, U.AVAILABLE): UnitStep(U.AVAILABLE, None),
}

BUSY = (U.EN_ROUTE, U.ON_SCENE, U.TRANSPORTING, U.AT_HOSPITAL)
# A unit is diverted on its way, or at the hospital once the patient is handed over; never with
# its patient (on scene, transporting).
DIVERTIBLE = (U.EN_ROUTE, U.AT_HOSPITAL)

# The call follows its most advanced active unit.
CALL_FOR_UNIT = {
    U.EN_ROUTE: CallStatus.DISPATCHED,
    U.ON_SCENE: CallStatus.ON_SCENE,
    U.TRANSPORTING: CallStatus.TRANSPORTING,
    U.AT_HOSPITAL: CallStatus.AT_HOSPITAL,
}
CALL_ORDER = [
    CallStatus.DISPATCHED,
    CallStatus.ON_SCENE,
    CallStatus.TRANSPORTING,
    CallStatus.AT_HOSPITAL,
]


def label(status: str) -> str:
    """`ON_SCENE` -> `on scene`, for messages."""
    return status.lower().replace("_", " ")


# A unit is EN_ROUTE in the database from the moment it is dispatched (NEMSIS: unit notified);
# the crew's en-route report only stamps its assignment (en_route_at). The two are different
# states to a dispatcher, and the turnout clock runs between them, so every screen and answer
# names them apart: DISPATCHED until the report, EN_ROUTE after it. No status is added to the
# database for it.
DISPATCHED = "DISPATCHED"

# The short names the desk writes where room is tight: the command bar's own words (en, os, tx,
# ah, av, oos) and `disp` for a unit dispatched but not yet en route.
SHORT = {
    DISPATCHED: "disp",
    U.EN_ROUTE: "en",
    U.ON_SCENE: "os",
    U.TRANSPORTING: "tx",
    U.AT_HOSPITAL: "ah",
    U.AVAILABLE: "av",
    U.OUT_OF_SERVICE: "oos",
}


def unit_state(status: str, en_route_reported: bool) -> str:
    """The state a dispatcher sees: the unit's status, but DISPATCHED for a unit whose status is
    EN_ROUTE and whose crew has not reported en route yet."""
    return DISPATCHED if status == U.EN_ROUTE and not en_route_reported else str(status)


def unit_label(status: str, en_route_reported: bool) -> str:
    """A unit's state in words: `dispatched`, `en route`, `on scene` ..."""
    return label(unit_state(status, en_route_reported))


def unit_short(status: str, en_route_reported: bool) -> str:
    """A unit's state in the bar's short words: `disp`, `en`, `os` ..."""
    state = unit_state(status, en_route_reported)
    return SHORT.get(state, label(state))


def unit_step(
    unit: str, current: UnitStatus, target: UnitStatus, en_route_reported: bool
) -> UnitStep:
    """The step from `current` to `target`, or a Conflict that says what to do instead."""
    if (current, target) == (U.EN_ROUTE, U.EN_ROUTE) and en_route_reported:
        raise Conflict(f"{unit} is already reported en route")
    step = UNIT_STEPS.get((current, target))
    if step is not None:
        return step
    name = unit_label(current, en_route_reported)
    if current == target:
        raise Conflict(f"{unit} is already {name}")
    if target == U.EN_ROUTE and current == U.AVAILABLE:
        raise Conflict(f"{unit} is not on a call; dispatch it to one (d CALL {unit})")
    if target == U.AVAILABLE and current == U.EN_ROUTE:
        raise Conflict(
            f"{unit} has not arrived; cancel its assignment instead (unit cancel {unit})"
        )
    if target == U.OUT_OF_SERVICE and current in BUSY:
        raise Conflict(f"{unit} is {name} on a call; clear it before taking it out of service")
    if current == U.OUT_OF_SERVICE:
        raise Conflict(f"{unit} is out of service; put it back in service first (av {unit})")
    raise Conflict(f"{unit} cannot go from {name} to {label(target)}")


def check_consistent(unit: str, status: str, call: str | None) -> None:
    """Refuse to act on a unit whose status and assignment disagree.

    The service keeps the two together: a busy unit is on exactly one call, any other on none.
    A direct SQL change (which a dispatcher's login may make) can break the pair, and no step may
    build on a broken one: the answer names it, and how to mend it.
    """
    busy = UnitStatus(status) in BUSY
    if busy and call is None:
        raise Conflict(
            f"{unit} is {label(status)} but on no call; its status was changed outside the "
            "desk: correct it in the database"
        )
    if not busy and call is not None:
        raise Conflict(
            f"{unit} is {label(status)} but still on {call}; its status was changed outside "
            f"the desk: cancel {call} to release it, or correct it in the database"
        )


def call_status_for(active_unit_statuses: list[UnitStatus]) -> CallStatus | None:
    """Status of a call from its active units; None when it has no active unit."""
    stages = [CALL_FOR_UNIT[s] for s in active_unit_statuses if s in CALL_FOR_UNIT]
    if not stages:
        return None
    return max(stages, key=CALL_ORDER.index)
