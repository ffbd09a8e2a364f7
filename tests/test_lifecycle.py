"""The unit and call lifecycles, driven through the real service on a real PostgreSQL.

The heart of this file is a matrix over every (from, to) pair of the six unit statuses: the unit
is brought to `from` the way a desk would (dispatch, then status keys), asked to go to `to`, and
the outcome must match `UNIT_STEPS` exactly. A refusal must be a `Conflict` that wrote nothing; a
success must stamp the step's NEMSIS time from the database clock and leave every other time
alone (a skipped step is never backfilled). Around it: the call following its units, automatic
close, cancel and close rules, destinations and hospital status, roles, position updates and the
append-only audit log. The step table itself, and the hint of each refusal, are pinned by the pure
tests in tests/unit/test_lifecycle.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from dispatch_tui.rules.enums import CallStatus, HospitalStatus, UnitStatus
from dispatch_tui.rules.errors import Conflict, Forbidden, InvalidInput
from dispatch_tui.rules.lifecycle import UNIT_STEPS
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call

U = UnitStatus
TIME_COLUMNS = (
    "notified_at",
    "en_route_at",
    "on_scene_at",
    "transporting_at",
    "at_destination_at",
    "cleared_at",
    "cancelled_at",
)
# The call status a unit's status implies while it is the call's only unit.
CALL_FOR_ONLY_UNIT = {
    U.EN_ROUTE: CallStatus.DISPATCHED,
    U.ON_SCENE: CallStatus.ON_SCENE,
    U.TRANSPORTING: CallStatus.TRANSPORTING,
    U.AT_HOSPITAL: CallStatus.AT_HOSPITAL,
    U.AVAILABLE: CallStatus.CLOSED,  # cleared: the last unit left, so the call closed itself
}


# -- helpers -----------------------------------------------------------------------------------


def db_clock(engine: Engine) -> datetime:
    """The database's wall clock (not now(), which is frozen at a transaction's start)."""
    with engine.connect() as conn:
        value: datetime = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        return value


def unit_row(engine: Engine, code: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM units WHERE code = :c"), {"c": code}).mappings()
        return dict(row.one())


def assignments(engine: Engine, code: str) -> list[dict[str, Any]]:
    """Every assignment of a unit, oldest first, as plain dicts."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT a.* FROM assignments a JOIN units u ON u.id = a.unit_id"
                " WHERE u.code = :c ORDER BY a.id"
            ),
            {"c": code},
        ).mappings()
        return [dict(r) for r in rows]


def call_row(engine: Engine, number: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM calls WHERE number = :n"), {"n": number})
        return dict(row.mappings().one())


def snapshot(engine: Engine) -> dict[str, Any]:
    """Everything a refused action must leave untouched, table by table."""
    with engine.connect() as conn:
        return {
            table: conn.execute(
                text(f"SELECT coalesce(string_agg(t::text, '|' ORDER BY t.id), '') FROM {table} t")
            ).scalar_one()
            for table in ("units", "assignments", "calls", "hospitals", "audit_log")
        }


def new_audit(engine: Engine, after_id: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT * FROM audit_log WHERE id > :i ORDER BY id"), {"i": after_id}
        ).mappings()
        return [dict(r) for r in rows]


def last_audit_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar_one())


def refused(
    engine: Engine, error: type[Exception], action: Callable[[], object], match: str | None = None
) -> None:
    """`action` raises `error` and changes nothing at all, not even the audit log."""
    before = snapshot(engine)
    with pytest.raises(error, match=match):
        action()
    assert snapshot(engine) == before


def bring(world: DispatchService, code: str, status: UnitStatus) -> str | None:
    """Bring a unit to `status` through the service, as a desk would; return its call, if any.

    The en-route report is deliberately skipped on the way to ON_SCENE and beyond, so every
    later step also proves that en_route_at is not backfilled.
    """
    if status == U.AVAILABLE:
        return None
    if status == U.OUT_OF_SERVICE:
        world.unit_status("alice", code, "OUT_OF_SERVICE")
        return None
    number = new_call(world)
    world.dispatch("alice", number, [code], hospital="MERCY")
    path = [U.ON_SCENE, U.TRANSPORTING, U.AT_HOSPITAL]
    for step in path[: [U.EN_ROUTE, *path].index(status)]:
        world.unit_status("alice", code, step.value)
    return number


# -- the matrix --------------------------------------------------------------------------------


@pytest.mark.parametrize("to", list(UnitStatus), ids=lambda s: s.value)
@pytest.mark.parametrize("frm", list(UnitStatus), ids=lambda s: s.value)
def test_every_unit_status_pair(
    world: DispatchService, engine: Engine, frm: UnitStatus, to: UnitStatus
) -> None:
    number = bring(world, "M2", frm)
    assert unit_row(engine, "M2")["status"] == frm
    allowed = (frm, to) in UNIT_STEPS

    if not allowed:
        refused(engine, Conflict, lambda: world.unit_status("alice", "M2", to.value))
        return

    before_unit = unit_row(engine, "M2")
    before_assignments = assignments(engine, "M2")
    audit_mark = last_audit_id(engine)
    t0 = db_clock(engine)
    view = world.unit_status("alice", "M2", to.value)
    t1 = db_clock(engine)

    assert view.status == to
    after_unit = unit_row(engine, "M2")
    assert after_unit["status"] == to
    after_assignments = assignments(engine, "M2")
    assert len(after_assignments) == len(before_assignments)  # a status key never adds one
    step = UNIT_STEPS[(frm, to)]
    if step.time_column is None:
        assert after_assignments == before_assignments
    else:
        (before,) = before_assignments  # one call, one assignment in this set-up
        (after,) = after_assignments
        stamped = after[step.time_column]
        assert before[step.time_column] is None
        assert stamped is not None and t0 <= stamped <= t1, "stamped with the database clock"
        for column in TIME_COLUMNS:
            if column != step.time_column:
                assert after[column] == before[column], f"{column} changed (backfilled?)"
        assert after["en_route_at"] is None or frm == U.EN_ROUTE, "en route was never reported"
    if to != frm:
        assert t0 <= after_unit["status_since"] <= t1
    else:
        assert after_unit["status_since"] == before_unit["status_since"]
    # A status key says nothing about where the unit is.
    assert (after_unit["lat"], after_unit["lon"]) == (before_unit["lat"], before_unit["lon"])
    actions = [
        (a["action"], a["details"].get("old"), a["details"].get("new"))
        for a in new_audit(engine, audit_mark)
    ]
    assert ("unit_status", frm.value, to.value) in actions
    if number is not None:
        assert call_row(engine, number)["status"] == CALL_FOR_ONLY_UNIT[to]


def test_en_route_is_reported_once(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    (a,) = assignments(engine, "M1")
    assert a["notified_at"] is not None and a["en_route_at"] is None  # dispatch is not en route
    assert unit_row(engine, "M1")["status"] == U.EN_ROUTE
    world.unit_status("alice", "M1", "EN_ROUTE")
    (a,) = assignments(engine, "M1")
    assert a["en_route_at"] is not None and a["en_route_at"] >= a["notified_at"]
    refused(engine, Conflict, lambda: world.unit_status("alice", "M1", "EN_ROUTE"), "already")


def test_full_run_records_every_time_in_order(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"], hospital="STJ")
    for status in ("EN_ROUTE", "ON_SCENE", "TRANSPORTING", "AT_HOSPITAL", "AVAILABLE"):
        world.unit_status("alice", "M1", status)
    (a,) = assignments(engine, "M1")
    times = [a[c] for c in TIME_COLUMNS[:6]]
    assert all(t is not None for t in times)
    assert times == sorted(times)
    assert a["cancelled_at"] is None
    call = call_row(engine, number)
    assert call["status"] == CallStatus.CLOSED and call["closed_at"] >= a["cleared_at"]


def test_skipped_en_route_stays_empty_through_the_whole_run(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"], hospital="STJ")
    for status in ("ON_SCENE", "TRANSPORTING", "AT_HOSPITAL", "AVAILABLE"):
        world.unit_status("alice", "M1", status)
    (a,) = assignments(engine, "M1")
    assert a["en_route_at"] is None
    assert None not in (a["on_scene_at"], a["transporting_at"], a["at_destination_at"])
    view = world.call(number)
    assert view.assignments[0].en_route_at is None


# -- the call follows its units ------------------------------------------------------------------


def test_call_follows_its_most_advanced_unit(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    refused(engine, Conflict, lambda: world.dispatch("bob", number, ["M2"]), "--add")
    world.dispatch("bob", number, ["M2"], add=True)

    def status() -> str:
        return world.call(number).status

    assert status() == CallStatus.DISPATCHED
    world.unit_status("alice", "M2", "ON_SCENE")
    assert status() == CallStatus.ON_SCENE
    world.unit_status("alice", "M2", "TRANSPORTING", hospital="MERCY")
    assert status() == CallStatus.TRANSPORTING
    # M1 arriving later does not pull the call back: the most advanced unit wins.
    world.unit_status("alice", "M1", "EN_ROUTE")
    world.unit_status("alice", "M1", "ON_SCENE")
    assert status() == CallStatus.TRANSPORTING
    world.unit_status("alice", "M2", "AT_HOSPITAL")
    assert status() == CallStatus.AT_HOSPITAL
    # M2 clears: M1, still on scene, is now the most advanced active unit.
    world.unit_status("alice", "M2", "AVAILABLE")
    assert status() == CallStatus.ON_SCENE
    assert call_row(engine, number)["closed_at"] is None
    world.unit_status("alice", "M1", "AVAILABLE")
    assert status() == CallStatus.CLOSED


def test_call_closes_itself_when_the_last_unit_clears(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["B1", "B2"])
    world.unit_status("alice", "B1", "ON_SCENE")
    world.unit_status("alice", "B2", "ON_SCENE")
    world.unit_status("alice", "B1", "AVAILABLE")
    assert call_row(engine, number)["status"] == CallStatus.ON_SCENE  # B2 is still there
    world.unit_status("alice", "B2", "AVAILABLE")
    call = call_row(engine, number)
    assert call["status"] == CallStatus.CLOSED and call["closed_at"] is not None
    assert {unit_row(engine, c)["status"] for c in ("B1", "B2")} == {U.AVAILABLE}
    assert all(a["cleared_at"] is not None for c in ("B1", "B2") for a in assignments(engine, c))
    # A closed call takes no more units.
    refused(engine, Conflict, lambda: world.dispatch("alice", number, ["B3"], add=True))


def test_cancelling_every_unit_makes_the_call_pending_again(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    world.dispatch("alice", number, ["M2"], add=True)
    world.cancel_unit("alice", "M1", "closer unit found")
    assert call_row(engine, number)["status"] == CallStatus.DISPATCHED  # M2 still goes
    world.cancel_unit("alice", "M2")
    call = call_row(engine, number)
    assert call["status"] == CallStatus.RECEIVED
    for code in ("M1", "M2"):
        assert unit_row(engine, code)["status"] == U.AVAILABLE
        (a,) = assignments(engine, code)
        assert a["cancelled_at"] is not None and a["cleared_at"] is None
    # Pending again means dispatchable again, without --add.
    world.dispatch("bob", number, ["M3"])
    view = world.call(number)
    assert view.status == CallStatus.DISPATCHED and view.active_units == ("M3",)


def test_a_unit_on_scene_cannot_be_cancelled(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    world.unit_status("alice", "M1", "ON_SCENE")
    refused(engine, Conflict, lambda: world.cancel_unit("alice", "M1"))
    refused(engine, Conflict, lambda: world.cancel_unit("alice", "M2"), "not on a call")


def test_close_is_refused_until_a_unit_has_arrived(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    refused(engine, Conflict, lambda: world.close_call("alice", number))  # RECEIVED
    world.dispatch("alice", number, ["M1", "M2"])
    refused(engine, Conflict, lambda: world.close_call("alice", number))  # DISPATCHED
    world.unit_status("alice", "M1", "ON_SCENE")
    view = world.close_call("alice", number, "treated and released")
    assert view.status == CallStatus.CLOSED and view.disposition == "treated and released"
    assert call_row(engine, number)["closed_at"] is not None
    # M1 had arrived: cleared. M2 never got there: its assignment is cancelled, not cleared.
    (m1,) = assignments(engine, "M1")
    (m2,) = assignments(engine, "M2")
    assert m1["cleared_at"] is not None and m1["cancelled_at"] is None
    assert m2["cancelled_at"] is not None and m2["cleared_at"] is None
    assert {unit_row(engine, c)["status"] for c in ("M1", "M2")} == {U.AVAILABLE}
    refused(engine, Conflict, lambda: world.close_call("alice", number))  # already closed


def test_cancel_call_releases_every_unit(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    world.dispatch("alice", number, ["M2"], add=True)
    world.unit_status("alice", "M1", "ON_SCENE")
    view = world.cancel_call("alice", number, "caller called back")
    assert view.status == CallStatus.CANCELLED
    call = call_row(engine, number)
    assert call["cancelled_at"] is not None and call["closed_at"] is None
    assert {unit_row(engine, c)["status"] for c in ("M1", "M2")} == {U.AVAILABLE}
    # M2 never arrived: cancelled. M1 had reached the patient: back in service (cleared), as
    # NEMSIS records it; a cancel time after an arrival would misstate what happened.
    (m1,) = assignments(engine, "M1")
    (m2,) = assignments(engine, "M2")
    assert m2["cancelled_at"] is not None and m2["cleared_at"] is None
    assert m1["cleared_at"] is not None and m1["cancelled_at"] is None
    assert m1["cleared_at"] >= m1["on_scene_at"]
    refused(engine, Conflict, lambda: world.cancel_call("alice", number))
    refused(engine, Conflict, lambda: world.dispatch("alice", number, ["M1"], add=True))
    # The released units take the next call at once.
    other = new_call(world, nature="Fall")
    world.dispatch("alice", other, ["M1", "M2"])
    assert world.call(other).status == CallStatus.DISPATCHED


def test_cancel_call_from_received(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    assert world.cancel_call("alice", number).status == CallStatus.CANCELLED
    assert call_row(engine, number)["first_dispatched_at"] is None


# -- destinations and hospital status ---------------------------------------------------------


def on_scene_without_destination(world: DispatchService, code: str = "M1") -> str:
    number = new_call(world)
    world.dispatch("alice", number, [code])
    world.unit_status("alice", code, "ON_SCENE")
    return number


def test_transport_needs_a_destination(world: DispatchService, engine: Engine) -> None:
    number = on_scene_without_destination(world)
    refused(
        engine,
        InvalidInput,
        lambda: world.unit_status("alice", "M1", "TRANSPORTING"),
        "destination",
    )
    world.unit_status("alice", "M1", "TRANSPORTING", hospital="stj")
    (a,) = assignments(engine, "M1")
    assert a["transporting_at"] is not None
    assert world.call(number).destination_code == "STJ"
    assert world.call(number).assignments[0].hospital_code == "STJ"


def test_transport_uses_the_destination_given_at_dispatch(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"], hospital="UNIV")
    world.unit_status("alice", "M1", "ON_SCENE")
    world.unit_status("alice", "M1", "TRANSPORTING")
    assert world.call(number).assignments[0].hospital_code == "UNIV"


def test_transport_to_a_closed_hospital_is_refused(world: DispatchService, engine: Engine) -> None:
    world.hospital_status("grace", "MERCY", "closed")
    on_scene_without_destination(world)
    refused(
        engine,
        Conflict,
        lambda: world.unit_status("alice", "M1", "TRANSPORTING", hospital="MERCY"),
        "closed",
    )
    # Not even the diversion override opens a closed hospital.
    refused(
        engine,
        Conflict,
        lambda: world.unit_status(
            "alice", "M1", "TRANSPORTING", hospital="MERCY", override_diversion=True
        ),
    )


def test_the_dispatch_destination_closing_blocks_transport(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"], hospital="EAST")
    world.unit_status("alice", "M1", "ON_SCENE")
    world.hospital_status("grace", "EAST", "CLOSED")
    refused(engine, Conflict, lambda: world.unit_status("alice", "M1", "TRANSPORTING"), "closed")


def test_diversion_needs_the_override(world: DispatchService, engine: Engine) -> None:
    world.hospital_status("grace", "STJ", "DIVERSION")
    number = on_scene_without_destination(world)
    refused(
        engine,
        Conflict,
        lambda: world.unit_status("alice", "M1", "TRANSPORTING", hospital="STJ"),
        "diversion",
    )
    view = world.unit_status("alice", "M1", "TRANSPORTING", hospital="STJ", override_diversion=True)
    assert view.status == U.TRANSPORTING
    assert world.call(number).assignments[0].hospital_code == "STJ"
    # Dispatching with a diverted destination needs the override too.
    other = new_call(world, nature="Stroke symptoms")
    refused(engine, Conflict, lambda: world.dispatch("alice", other, ["M2"], hospital="STJ"))
    world.dispatch("alice", other, ["M2"], hospital="STJ", override_diversion=True)


def test_a_destination_that_went_on_diversion_after_dispatch_needs_the_override(
    world: DispatchService, engine: Engine
) -> None:
    # MERCY was open when it was chosen at dispatch; it goes on diversion while the crew is on
    # scene. Nobody has acknowledged the diversion yet, so transporting there must ask for it,
    # exactly as naming MERCY explicitly does.
    number = new_call(world)
    world.dispatch("alice", number, ["M1"], hospital="MERCY")
    world.unit_status("alice", "M1", "ON_SCENE")
    world.hospital_status("grace", "MERCY", "DIVERSION")
    refused(
        engine,
        Conflict,
        lambda: world.unit_status("alice", "M1", "TRANSPORTING", hospital="MERCY"),
        "diversion",
    )
    refused(engine, Conflict, lambda: world.unit_status("alice", "M1", "TRANSPORTING"), "diversion")


# -- who may do what -----------------------------------------------------------------------------


def test_paramedic_changes_only_their_own_unit(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1", "M2"])
    assert world.unit_status("carol", "M1", "EN_ROUTE").status == U.EN_ROUTE
    assert world.unit_status("carol", "m1", "on_scene").status == U.ON_SCENE
    refused(engine, Forbidden, lambda: world.unit_status("carol", "M2", "ON_SCENE"))
    refused(engine, Forbidden, lambda: world.locate_unit("carol", "M2", 40.0, -83.0))
    refused(engine, Forbidden, lambda: world.dispatch("carol", number, ["M3"], add=True))
    refused(engine, Forbidden, lambda: world.cancel_unit("carol", "M2"))
    refused(engine, Forbidden, lambda: world.unit_status("dave", "M1", "AVAILABLE"))
    world.locate_unit("carol", "M1", 40.02, -82.99)


def test_supervisor_sets_hospital_status_but_cannot_dispatch(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    refused(engine, Forbidden, lambda: world.dispatch("grace", number, ["M1"]))
    refused(engine, Forbidden, lambda: world.unit_status("grace", "M1", "OUT_OF_SERVICE"))
    refused(
        engine,
        Forbidden,
        lambda: world.create_call("grace", CallIntake(nature="x", location="y", priority=2)),
    )
    mark = last_audit_id(engine)
    view = world.hospital_status("grace", "MERCY", "diversion", beds=3)
    assert (view.status, view.beds_available) == (HospitalStatus.DIVERSION, 3)
    (entry,) = new_audit(engine, mark)
    assert entry["action"] == "hospital_status" and entry["operator"] == "grace"
    assert entry["details"]["old"] == "OPEN" and entry["details"]["new"] == "DIVERSION"


def test_a_paramedic_goes_on_one_call_at_a_time(world: DispatchService, engine: Engine) -> None:
    first, second = new_call(world), new_call(world, nature="Fall")
    world.dispatch("alice", first, ["M1"], paramedic="carol")
    refused(
        engine,
        Conflict,
        lambda: world.dispatch("alice", second, ["M2"], paramedic="carol"),
        "carol",
    )
    refused(
        engine, InvalidInput, lambda: world.dispatch("alice", second, ["M2"], paramedic="grace")
    )
    world.cancel_unit("alice", "M1")
    world.dispatch("alice", second, ["M2"], paramedic="carol")
    assert world.call(second).active_units == ("M2",)


def test_unknown_operator_is_forbidden(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    refused(engine, Forbidden, lambda: world.dispatch("mallory", number, ["M1"]))


# -- position updates ------------------------------------------------------------------------------


def test_position_update_never_touches_status_or_assignment(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    world.unit_status("alice", "M1", "EN_ROUTE")
    before_unit = unit_row(engine, "M1")
    before_assignments = assignments(engine, "M1")
    before_call = call_row(engine, number)
    mark = last_audit_id(engine)
    t0 = db_clock(engine)
    view = world.locate_unit("alice", "M1", "40.0123", "-82.9876")
    after_unit = unit_row(engine, "M1")
    assert (after_unit["lat"], after_unit["lon"]) == (40.0123, -82.9876)
    assert after_unit["position_at"] >= t0
    for column in ("status", "status_since", "station_id", "capability"):
        assert after_unit[column] == before_unit[column]
    assert assignments(engine, "M1") == before_assignments
    assert call_row(engine, number) == before_call
    assert view.status == U.EN_ROUTE and view.call_number == number
    assert [a["action"] for a in new_audit(engine, mark)] == ["unit_position"]
    # The next status step still works from the untouched state.
    world.unit_status("alice", "M1", "ON_SCENE")


# -- the audit log ---------------------------------------------------------------------------------


def test_every_change_is_audited(
    world: DispatchService, engine: Engine, count: Callable[..., int]
) -> None:
    def step(action: Callable[[], object], *expected: str) -> None:
        mark = last_audit_id(engine)
        action()
        written = [a["action"] for a in new_audit(engine, mark)]
        for name in expected:
            assert name in written, f"{name} not audited (got {written})"
        assert all(a["operator"] and a["desk"] == "test" for a in new_audit(engine, mark))

    calls_before = count("audit_log", "action = 'call_created'")
    holder: list[str] = []
    step(lambda: holder.append(new_call(world)), "call_created")
    assert count("audit_log", "action = 'call_created'") == calls_before + 1
    number = holder[0]
    step(lambda: world.dispatch("alice", number, ["M1", "M2"]), "dispatch")
    assert count("audit_log", "action = 'dispatch'") == 2  # one row per unit
    step(lambda: world.unit_status("alice", "M1", "EN_ROUTE"), "unit_status")
    step(lambda: world.unit_status("alice", "M1", "ON_SCENE"), "unit_status", "call_status")
    step(lambda: world.cancel_unit("alice", "M2", "not needed"), "unit_cancelled")
    step(lambda: world.locate_unit("alice", "M1", 40.0, -83.0), "unit_position")
    step(lambda: world.hospital_status("grace", "CHILD", beds=2), "hospital_status")
    step(lambda: world.close_call("alice", number, "standby only"), "call_closed")
    other = new_call(world)
    step(lambda: world.cancel_call("alice", other), "call_cancelled")
    step(lambda: world.unit_status("alice", "B6", "OUT_OF_SERVICE"), "unit_status")


def test_audit_log_is_append_only_even_for_a_superuser(
    world: DispatchService, engine: Engine, count: Callable[..., int]
) -> None:
    new_call(world)
    rows = count("audit_log")
    assert rows >= 1
    with engine.connect() as conn:
        is_super = conn.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar_one()
    if not is_super:
        pytest.skip("the test database user is not a superuser")
    for statement in (
        "UPDATE audit_log SET operator = 'mallory'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(statement))
            conn.commit()
    assert count("audit_log") == rows
    assert count("audit_log", "operator = 'mallory'") == 0
