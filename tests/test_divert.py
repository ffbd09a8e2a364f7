"""Divert: a unit en route (or at the hospital) taken from its call to another, in one transaction.

What it leaves behind (the old assignment ended with its times kept, a new one with its own
notified time, the old call pending again or closed, audit rows on both calls), what it
refuses (a unit with its patient), and the races: crossing diverts never deadlock, and a divert
meeting a dispatch or a crew's report of the same unit has one winner and leaves every invariant.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dispatch_tui.cli import main
from dispatch_tui.rules import commands as c
from dispatch_tui.rules.errors import Conflict, DispatchError
from dispatch_tui.service import executor
from dispatch_tui.service.dispatch_service import DispatchService
from tests.desk_helpers import desk, feedback, pending_numbers, screen_of, unit_status, until
from tests.helpers import new_call, race
from tests.invariants import violations

Count = Callable[..., int]
# Crossing diverts raced with a barrier: the issue asks for 1,000; a nightly run may ask more.
CROSSINGS = int(os.environ.get("DISPATCH_DIVERT_CROSSINGS", "1000"))


def assignment(engine: Engine, unit: str, number: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT a.* FROM assignments a JOIN units u ON u.id = a.unit_id"
                " JOIN calls c ON c.id = a.call_id WHERE u.code = :u AND c.number = :n"
            ),
            {"u": unit, "n": number},
        ).one()
    return dict(row._mapping)


def test_a_unit_en_route_is_diverted_and_its_call_is_pending_again(
    world: DispatchService, engine: Engine
) -> None:
    minor = new_call(world, priority=4, nature="Fall")
    urgent = new_call(world, priority=1, nature="Cardiac arrest")
    world.dispatch("alice", minor, ["M1"])
    world.unit_status("alice", "M1", "EN_ROUTE")  # the crew reported en route
    before = assignment(engine, "M1", minor)
    moved = world.divert("bob", "M1", urgent, "cardiac arrest nearer")
    assert (moved.call_number, moved.units) == (urgent, ("M1",))
    view = world.call(urgent)
    assert view.number == urgent and view.status == "DISPATCHED"
    assert view.active_units == ("M1",) and view.dispatched_by == "bob"
    old, new = assignment(engine, "M1", minor), assignment(engine, "M1", urgent)
    # The old assignment ended as cancelled, its times kept, never rewritten.
    assert old["cancelled_at"] is not None and old["cleared_at"] is None
    assert (old["notified_at"], old["en_route_at"]) == (
        before["notified_at"],
        before["en_route_at"],
    )
    # The new one starts with its own notified time, and no en-route report yet.
    assert new["notified_at"] == old["cancelled_at"] and new["en_route_at"] is None
    back = world.call(minor)
    assert back.status == "RECEIVED" and back.active_units == ()
    assert world.units()[0] is not None and {u.code: u.status for u in world.units()}["M1"] == (
        "EN_ROUTE"
    )
    # Each call's timeline says it once, from its audit row, with who did it.
    minor_lines = [(e.who, e.text) for e in world.record(minor).timeline if "divert" in e.text]
    assert minor_lines == [("bob", f"M1 diverted to {urgent}: cardiac arrest nearer")]
    urgent_lines = [(e.who, e.text) for e in world.record(urgent).timeline if "divert" in e.text]
    assert urgent_lines == [("bob", f"M1 dispatched (diverted from {minor})")]
    assert violations(engine) == ""


def test_a_unit_at_the_hospital_is_diverted_and_its_call_closes(
    world: DispatchService, engine: Engine
) -> None:
    first, second = new_call(world), new_call(world, priority=2)
    world.dispatch("alice", first, ["M1"])
    for step in ("ON_SCENE", "TRANSPORTING", "AT_HOSPITAL"):
        world.unit_status("alice", "M1", step, hospital="MERCY")
    world.divert("alice", "M1", second)
    done = assignment(engine, "M1", first)
    assert done["cleared_at"] is not None and done["cancelled_at"] is None
    assert world.call(first).status == "CLOSED"  # its last unit cleared
    assert world.call(second).active_units == ("M1",)
    assert violations(engine) == ""


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (["ON_SCENE"], "a unit with its patient is not diverted"),
        (["ON_SCENE", "TRANSPORTING"], "a unit with its patient is not diverted"),
    ],
)
def test_a_unit_with_its_patient_is_not_diverted(
    world: DispatchService, count: Count, setup: list[str], error: str
) -> None:
    first, second = new_call(world), new_call(world)
    world.dispatch("alice", first, ["M1"])
    for step in setup:
        world.unit_status("alice", "M1", step, hospital="MERCY")
    audit = count("audit_log")
    with pytest.raises(Conflict, match=error):
        world.divert("alice", "M1", second)
    assert count("audit_log") == audit and world.call(second).active_units == ()


def test_what_cannot_be_diverted_says_why_and_writes_nothing(
    world: DispatchService, count: Count
) -> None:
    first, second = new_call(world), new_call(world)
    audit = count("audit_log")
    with pytest.raises(Conflict, match=f"on no call: dispatch it instead \\(d {second} M2\\)"):
        world.divert("alice", "M2", second)
    world.dispatch("alice", first, ["M1"])
    audit = count("audit_log")
    with pytest.raises(Conflict, match=f"M1 is on {first} already"):
        world.divert("alice", "M1", first)
    world.cancel_call("alice", second, "duplicate")
    with pytest.raises(Conflict, match=f"{second} is cancelled"):
        world.divert("alice", "M1", second)
    with pytest.raises(DispatchError, match="only a dispatcher"):
        world.divert("carol", "M1", second)
    assert count("audit_log") == audit + 1  # the cancel's row, nothing of the diverts


def test_crossing_diverts_never_deadlock(
    world: DispatchService, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """M1 on A and M2 on B, diverted at once to each other's call, CROSSINGS times: each pair
    queues on the calls' locks (taken in id order), none waits on the other forever, and no
    transaction is retried after a deadlock."""
    caplog.set_level(logging.INFO, logger="dispatch_tui.service.transactions")
    a, b = new_call(world), new_call(world)
    world.dispatch("alice", a, ["M1"])
    world.dispatch("alice", b, ["M2"])
    errors: list[BaseException] = []
    for round_ in range(CROSSINGS):
        here, there = (a, b) if round_ % 2 == 0 else (b, a)
        start = threading.Barrier(2)

        def move(unit: str, to: str, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                world.divert("alice", unit, to)
            except BaseException as err:  # reported below
                errors.append(err)

        threads = [
            threading.Thread(target=move, args=("M1", there)),
            threading.Thread(target=move, args=("M2", here)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads), f"round {round_}: a divert hung"
        assert not errors, f"round {round_}: {errors[0]!r}"
    assert not [r for r in caplog.records if "retried" in r.getMessage()]
    assert violations(engine) == ""


def test_a_divert_racing_a_dispatch_of_the_unit_has_one_winner(
    world: DispatchService, engine: Engine
) -> None:
    for _ in range(20):
        a, b, other = new_call(world), new_call(world), new_call(world)
        world.dispatch("alice", a, ["M1"])
        world.cancel_unit("alice", "M1", "reset")  # free again, a pending again
        world.dispatch("alice", a, ["M1"], add=True)
        results = race(
            lambda b=b: world.divert("alice", "M1", b),
            lambda other=other: world.dispatch("bob", other, ["M1"]),
        )
        assert results.count("done") == 1, results  # the dispatch finds M1 busy: refused
        assert len([u for u in world.call(b).active_units + world.call(other).active_units]) == 1
        for number in (a, b, other):
            if world.call(number).status != "RECEIVED":
                world.cancel_call("alice", number, "next round")
    assert violations(engine) == ""


def test_a_divert_racing_the_crews_report_leaves_everything_consistent(
    world: DispatchService, engine: Engine
) -> None:
    for _ in range(20):
        a, b = new_call(world), new_call(world)
        world.dispatch("alice", a, ["M1"])
        results = race(
            lambda b=b: world.divert("alice", "M1", b),
            lambda: world.unit_status("carol", "M1", "ON_SCENE"),
        )
        # Either order is honest: arrived then not diverted, or diverted then arrived on b.
        assert "done" in results, results
        for number in (a, b):
            if world.call(number).status not in ("RECEIVED", "CANCELLED", "CLOSED"):
                world.cancel_call("alice", number, "next round")
        assert violations(engine) == ""


def test_divert_from_the_cli_and_a_retry_under_its_id(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = new_call(world), new_call(world)
    world.dispatch("alice", a, ["M1"])
    assert main(["--request-id", "dv-1", "divert", "m1", b.lower(), "--reason", "nearer"]) == 0
    assert f"M1 diverted to {b} (M1 on it)" in capsys.readouterr().out
    assert main(["--request-id", "dv-1", "divert", "m1", b.lower(), "--reason", "nearer"]) == 0
    assert "not repeated" in capsys.readouterr().out
    assert main(["divert", "M1", b]) == 4
    assert f"M1 is on {b} already" in capsys.readouterr().err
    again = executor.execute(world, "alice", c.Divert("M1", a), request_id="dv-2")
    assert again.data.number == a


async def test_r_on_a_unit_diverts_it_to_the_call_chosen(
    world: DispatchService, database_url: str
) -> None:
    minor = new_call(world, priority=4, nature="Fall")
    urgent = new_call(world, priority=1, nature="Stroke")
    world.dispatch("alice", minor, ["M1"])
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: unit_status(app, "M1") == "EN_ROUTE")
        units = screen_of(app).units
        units.focus()
        assert units.select_id(next(u.id for u in units.rows_by_key.values() if u.code == "M1"))
        await pilot.press("r")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PickScreen")
        options = app.screen.query_one("OptionList")
        assert options.get_option_at_index(0).id == urgent  # most urgent first
        await pilot.press("enter")
        await until(pilot, lambda: f"M1 diverted to {urgent}" in feedback(app))
        await until(pilot, lambda: pending_numbers(app) == [minor])
        pane = screen_of(app).pending
        flag = pane.get_row_at(0)[3]
        assert flag.plain == "AGAIN"  # loud: it had a unit, and has none now


async def test_d_on_a_p1_offers_a_unit_en_route_to_a_p4_and_diverts_after_asking(
    world: DispatchService, database_url: str
) -> None:
    minor = new_call(world, priority=4, nature="Minor cut")
    urgent = new_call(world, priority=1, nature="Cardiac arrest")
    for unit in world.units():  # nothing else free
        if unit.code != "M1":
            world.unit_status("alice", unit.code, "OUT_OF_SERVICE")
    world.dispatch("alice", minor, ["M1"])
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [urgent])
        screen_of(app).pending.focus()
        await pilot.press("d")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PickScreen")
        options = app.screen.query_one("OptionList")
        assert options.get_option_at_index(0).id == "divert:M1"
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen")
        await pilot.press("y")
        await until(pilot, lambda: f"M1 diverted to {urgent}" in feedback(app))
    assert world.call(urgent).active_units == ("M1",)
    assert world.call(minor).status == "RECEIVED"


def test_recommend_on_the_cli_names_a_unit_worth_diverting(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    minor = new_call(world, priority=4, nature="Minor cut")
    urgent = new_call(world, priority=1, nature="Cardiac arrest")
    for unit in world.units():
        if unit.code != "M1":
            world.unit_status("alice", unit.code, "OUT_OF_SERVICE")
    world.dispatch("alice", minor, ["M1"])
    assert main(["recommend", urgent]) == 0
    out = capsys.readouterr().out
    # (M1 is the one unit that clears next too: offered once, to divert.)
    assert f"no unit is available; or M1: divert from {minor} (P4)" in out
    assert f"(divert M1 {urgent})" in out
