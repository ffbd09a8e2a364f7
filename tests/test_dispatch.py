"""The dispatch flow of DOMAIN.md, step by step, and the original app's validation checklist.

Each refused dispatch is checked twice: the right typed error, and nothing written (no
assignment, no audit row, unit and call untouched).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from dispatch_tui.rules.errors import Conflict, Forbidden, InvalidInput, NotFound
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call


def snapshot(count) -> tuple[int, int, int, int]:  # type: ignore[no-untyped-def]
    return (
        count("assignments"),
        count("audit_log"),
        count("units", "status <> 'AVAILABLE'"),
        count("calls", "status <> 'RECEIVED'"),
    )


def test_dispatch_does_every_step_in_one_transaction(world: DispatchService, engine) -> None:  # type: ignore[no-untyped-def]
    number = new_call(world)
    done = world.dispatch("alice", number.lower(), ["m1"], paramedic="carol", hospital="mercy")
    assert (done.call_number, done.units) == (number, ("M1",))
    call = world.call(number)

    assert call.status == "DISPATCHED"
    assert call.dispatched_by == "alice"
    assert call.destination_code == "MERCY"
    (a,) = call.assignments
    assert (a.unit_code, a.unit_status, a.paramedic, a.dispatcher) == (
        "M1",
        "EN_ROUTE",
        "carol",
        "alice",
    )
    # DB clock, one transaction: the call's dispatch time is the assignment's notified time.
    assert call.first_dispatched_at == a.notified_at == done.at
    assert a.en_route_at is None  # the crew has not reported rolling yet; never backfilled
    with engine.connect() as conn:
        actions = conn.execute(text("SELECT action FROM audit_log ORDER BY id")).scalars().all()
    assert actions == ["call_created", "dispatch"]


@pytest.mark.parametrize("who", ["carol", "grace", "admin"])
def test_only_a_dispatcher_dispatches(world: DispatchService, count, who: str) -> None:  # type: ignore[no-untyped-def]
    number = new_call(world)
    before = snapshot(count)
    with pytest.raises(Forbidden, match="only a dispatcher"):
        world.dispatch(who, number, ["M1"])
    assert snapshot(count) == before


def test_an_unknown_operator_is_forbidden(world: DispatchService, count) -> None:  # type: ignore[no-untyped-def]
    number = new_call(world)
    before = snapshot(count)
    with pytest.raises(Forbidden, match="not an active operator"):
        world.dispatch("mallory", number, ["M1"])
    assert snapshot(count) == before


@pytest.mark.parametrize(
    ("call", "units", "kwargs", "message"),
    [
        ("not a call", ["M1"], {}, "not a call number"),
        ("{call}", [], {}, "at least one unit"),
        ("{call}", ["M1", "m1"], {}, "named twice"),
        ("{call}", ["[bold]M1"], {}, "not a unit number"),
        ("{call}", ["M1", "M2"], {"paramedic": "carol"}, "single unit"),
        ("{call}", ["M1"], {"paramedic": "dr who"}, "not a user name"),
        ("{call}", ["M1"], {"hospital": "Mercy General"}, "not a hospital code"),
        ("{call}", ["M1"], {"paramedic": "alice"}, "not a paramedic"),
    ],
)
def test_invalid_dispatch_input_is_refused_and_writes_nothing(  # type: ignore[no-untyped-def]
    world: DispatchService, count, call: str, units: list[str], kwargs: dict[str, str], message: str
) -> None:
    number = new_call(world)
    before = snapshot(count)
    with pytest.raises(InvalidInput, match=message):
        world.dispatch("alice", call.format(call=number), units, **kwargs)
    assert snapshot(count) == before


@pytest.mark.parametrize(
    ("call", "units", "kwargs", "message"),
    [
        ("C-9999", ["M1"], {}, "no call C-9999"),
        ("{call}", ["M1", "M99"], {}, "no unit M99"),
        ("{call}", ["M1"], {"hospital": "NOWHERE"}, "no hospital NOWHERE"),
        ("{call}", ["M1"], {"paramedic": "nobody"}, "no paramedic 'nobody'"),
    ],
)
def test_missing_resources_are_not_found_and_write_nothing(  # type: ignore[no-untyped-def]
    world: DispatchService, count, call: str, units: list[str], kwargs: dict[str, str], message: str
) -> None:
    number = new_call(world)
    before = snapshot(count)
    with pytest.raises(NotFound, match=message):
        world.dispatch("alice", call.format(call=number), units, **kwargs)
    assert snapshot(count) == before


def test_a_busy_unit_is_a_conflict_naming_who_took_it(world: DispatchService, count) -> None:  # type: ignore[no-untyped-def]
    first, second = new_call(world), new_call(world)
    world.dispatch("bob", first, ["M1"])
    before = snapshot(count)
    with pytest.raises(Conflict, match=f"M1 was dispatched to {first} by bob a moment ago"):
        world.dispatch("alice", second, ["M1"])
    assert snapshot(count) == before


def test_all_or_nothing_when_one_of_several_units_is_busy(world: DispatchService, count) -> None:  # type: ignore[no-untyped-def]
    first, second = new_call(world), new_call(world)
    world.dispatch("alice", first, ["M2"])
    before = snapshot(count)
    with pytest.raises(Conflict, match="M2 was dispatched"):
        world.dispatch("alice", second, ["M1", "M2", "M3"])
    assert snapshot(count) == before
    assert {u.code: u.status for u in world.units()}["M1"] == "AVAILABLE"


def test_an_out_of_service_unit_cannot_be_dispatched(world: DispatchService) -> None:
    number = new_call(world)
    world.unit_status("alice", "B1", "out_of_service")
    with pytest.raises(Conflict, match="B1 is out of service"):
        world.dispatch("alice", number, ["B1"])


def test_a_call_dispatched_elsewhere_needs_add_for_more_units(world: DispatchService) -> None:
    number = new_call(world)
    world.dispatch("bob", number, ["M1"])
    with pytest.raises(Conflict, match=f"{number} already has M1 \\(dispatched by bob\\)"):
        world.dispatch("alice", number, ["M2"])
    world.dispatch("alice", number, ["M2"], add=True)
    call = world.call(number)
    assert call.active_units == ("M1", "M2")
    assert call.dispatched_by == "bob"  # the first dispatcher stays on the call


@pytest.mark.parametrize("end", ["cancel_call", "close_call"])
def test_a_finished_call_is_no_longer_dispatchable(world: DispatchService, end: str) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    if end == "close_call":
        world.unit_status("alice", "M1", "on_scene")
    getattr(world, end)("alice", number, "standby only")
    with pytest.raises(Conflict, match=f"{number} is already"):
        world.dispatch("alice", number, ["M2"])


def test_a_paramedic_on_another_call_is_refused(world: DispatchService, count) -> None:  # type: ignore[no-untyped-def]
    first, second = new_call(world), new_call(world)
    world.dispatch("alice", first, ["M1"], paramedic="carol")
    before = snapshot(count)
    with pytest.raises(Conflict, match=f"paramedic carol is already on {first}"):
        world.dispatch("alice", second, ["M2"], paramedic="carol")
    assert snapshot(count) == before


def test_hospital_closed_is_refused_and_diversion_needs_the_override(
    world: DispatchService, count
) -> None:  # type: ignore[no-untyped-def]
    number = new_call(world)
    world.hospital_status("grace", "EAST", "closed")
    world.hospital_status("grace", "STJ", "diversion")
    before = snapshot(count)
    with pytest.raises(Conflict, match="EAST is closed"):
        world.dispatch("alice", number, ["M1"], hospital="EAST")
    with pytest.raises(Conflict, match="STJ is on diversion"):
        world.dispatch("alice", number, ["M1"], hospital="STJ")
    assert snapshot(count) == before
    world.dispatch("alice", number, ["M1"], hospital="STJ", override_diversion=True)
    call = world.call(number)
    assert call.destination_code == "STJ"


def test_the_database_itself_refuses_a_second_active_assignment(
    world: DispatchService, engine
) -> None:  # type: ignore[no-untyped-def]
    """Even a write that bypasses the service (psql, a buggy script) cannot double-book a unit."""
    first, second = new_call(world), new_call(world)
    world.dispatch("alice", first, ["M1"])
    with engine.connect() as conn, pytest.raises(Exception, match="uq_assignments_active_unit"):
        conn.execute(
            text(
                "INSERT INTO assignments (call_id, unit_id) SELECT c.id, u.id FROM calls c, units u"
                " WHERE c.number = :n AND u.code = 'M1'"
            ),
            {"n": second},
        )


def test_status_checks_live_in_the_database_too(world: DispatchService, engine) -> None:  # type: ignore[no-untyped-def]
    with engine.connect() as conn, pytest.raises(Exception, match="ck_units_status"):
        conn.execute(text("UPDATE units SET status = 'PARKED' WHERE code = 'M1'"))
