"""Stacked calls: a busy unit's next call, lined up, and dispatched as the unit clears.

The queue entry is a real row (one open per unit, by a partial unique index); clearing the unit
dispatches it there in the same transaction, or ends the entry with the reason; the races of the
issue (queue vs clear, two desks queueing one unit, cancel of the queued call vs the clear) each
have one winner and leave every invariant.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from dispatch_tui.cli import main
from dispatch_tui.db.engine import make_engine, make_sessionmaker
from dispatch_tui.rules.errors import Conflict
from dispatch_tui.service.dispatch_service import DispatchService
from tests.desk_helpers import desk, feedback, pending_numbers, screen_of, unit_status, until
from tests.helpers import new_call, race
from tests.invariants import violations

Count = Callable[..., int]


def _busy(world: DispatchService, unit: str = "M1", *steps: str) -> str:
    number = new_call(world)
    world.dispatch("alice", number, [unit])
    for step in steps:
        world.unit_status("alice", unit, step, hospital="MERCY")
    return number


def test_a_lined_up_call_is_dispatched_as_the_unit_clears(
    world: DispatchService, engine: Engine
) -> None:
    first = _busy(world, "M1", "ON_SCENE")
    nxt = new_call(world, priority=3, nature="Fall")
    unit = world.queue("bob", "M1", nxt)
    assert unit.queued_call == nxt and unit.call_number == first
    pending = world.call(nxt)
    assert pending.status == "RECEIVED" and pending.queued_units == ("M1",)  # still pending
    cleared = world.unit_status("carol", "M1", "AVAILABLE")  # the crew clears on scene
    assert cleared.status == "EN_ROUTE" and cleared.call_number == nxt
    assert cleared.queued_call is None
    now = world.call(nxt)
    assert now.status == "DISPATCHED" and now.active_units == ("M1",)
    assert now.dispatched_by == "bob"  # who lined it up dispatched it
    assert world.call(first).status == "CLOSED"
    texts = [e.text for e in world.record(nxt).timeline]
    assert "M1 lined up to come next" in texts
    assert "M1 dispatched (its next call, as it cleared)" in texts
    assert violations(engine) == ""


@pytest.mark.parametrize("how", ["cancelled", "another unit"])
def test_a_lined_up_call_gone_meanwhile_leaves_the_unit_available(
    world: DispatchService, engine: Engine, how: str
) -> None:
    _busy(world, "M1", "ON_SCENE")
    nxt = new_call(world)
    world.queue("alice", "M1", nxt)
    if how == "cancelled":
        world.cancel_call("alice", nxt, "caller cancelled")
    else:
        world.dispatch("alice", nxt, ["M2"])
    cleared = world.unit_status("alice", "M1", "AVAILABLE")
    assert cleared.status == "AVAILABLE" and cleared.queued_call is None
    with engine.connect() as conn:
        reason = conn.execute(text("SELECT end_reason FROM queued")).scalar_one()
    # Cancelled: the cancel itself ends the entry; given another unit: the clear says so.
    assert reason == (f"{nxt} was cancelled" if how == "cancelled" else f"{nxt} had another unit")
    assert violations(engine) == ""


def test_every_way_a_unit_is_freed_takes_it_to_its_next_call(
    world: DispatchService, engine: Engine
) -> None:
    # Cancelled from its call (unit cancel), its call cancelled, its call closed.
    for free in ("cancel_unit", "cancel_call", "close_call"):
        steps = ("ON_SCENE",) if free == "close_call" else ()
        on = _busy(world, "M1", *steps)
        nxt = new_call(world)
        world.queue("alice", "M1", nxt)
        if free == "cancel_unit":
            world.cancel_unit("alice", "M1", "not needed")
        elif free == "cancel_call":
            world.cancel_call("alice", on, "duplicate")
        else:
            world.close_call("alice", on, "treated and released")
        assert world.call(nxt).active_units == ("M1",), free
        world.cancel_call("alice", nxt, "next round")
    assert violations(engine) == ""


def test_a_unit_diverted_to_the_call_it_was_lined_up_for_does_not_come_back(
    world: DispatchService, engine: Engine
) -> None:
    first = _busy(world, "M1")
    nxt = new_call(world)
    world.queue("alice", "M1", nxt)
    world.divert("alice", "M1", nxt)  # sent now rather than when it clears
    assert violations(engine) == ""
    with engine.connect() as conn:
        assert conn.execute(text("SELECT end_reason FROM queued")).scalar_one() == "diverted here"
    world.cancel_unit("alice", "M1", "not needed after all")
    assert {u.code: u.status for u in world.units()}["M1"] == "AVAILABLE"
    assert world.call(first).status == "RECEIVED"
    assert violations(engine) == ""


def test_a_retried_queue_says_what_it_lined_up(world: DispatchService) -> None:
    from dispatch_tui.rules import commands as c
    from dispatch_tui.service import executor

    _busy(world, "M2", "ON_SCENE")
    nxt = new_call(world)
    executor.execute(world, "alice", c.Queue("M2", nxt), request_id="q-1")
    world.unit_status("alice", "M2", "AVAILABLE")  # promoted: no longer lined up
    again = executor.execute(world, "alice", c.Queue("M2", nxt), request_id="q-1")
    assert again.done_before and f"M2 lined up for {nxt}" in again.message
    assert "None" not in again.message


def test_what_cannot_be_lined_up_says_why(world: DispatchService, count: Count) -> None:
    first = _busy(world, "M1")
    nxt, other = new_call(world), new_call(world)
    for unit, number, error in (
        ("M2", nxt, f"M2 is available: dispatch it now \\(d {nxt} M2\\)"),
        ("M1", first, f"M1 is on {first} already"),
    ):
        with pytest.raises(Conflict, match=error):
            world.queue("alice", unit, number)
    world.dispatch("alice", other, ["M3"])
    with pytest.raises(Conflict, match="only a pending call"):
        world.queue("alice", "M1", other)
    world.queue("alice", "M1", nxt)
    with pytest.raises(Conflict, match=f"M1 already has {nxt} lined up; unqueue M1 first"):
        world.queue("alice", "M1", new_call(world))
    assert world.unqueue("alice", "M1").queued_call is None
    with pytest.raises(Conflict, match="M1 has no call lined up"):
        world.unqueue("alice", "M1")
    assert count("queued", "ended_at IS NULL") == 0


def test_two_desks_queueing_one_unit_one_wins(world: DispatchService, engine: Engine) -> None:
    _busy(world, "M1")
    for _ in range(15):
        a, b = new_call(world), new_call(world)
        results = race(
            lambda a=a: world.queue("alice", "M1", a),
            lambda b=b: world.queue("bob", "M1", b),
        )
        assert results.count("done") == 1, results
        world.unqueue("alice", "M1")
    assert violations(engine) == ""


def test_queue_racing_the_clear_and_cancel_racing_the_clear(
    world: DispatchService, engine: Engine
) -> None:
    for _ in range(10):
        _busy(world, "M1", "ON_SCENE")
        nxt = new_call(world)
        # Queue vs clear: lined up in time (dispatched there) or refused (M1 already free).
        results = race(
            lambda nxt=nxt: world.queue("alice", "M1", nxt),
            lambda: world.unit_status("carol", "M1", "AVAILABLE"),
        )
        assert "done" in results, results
        assert violations(engine) == ""
        for number in [c.number for c in world.calls()]:
            world.cancel_call("alice", number, "next round")
        _busy(world, "M1", "ON_SCENE")
        nxt = new_call(world)
        world.queue("alice", "M1", nxt)
        # Cancel of the lined-up call vs the clear: either M1 goes there and is released by the
        # cancel, or the cancel comes first and M1 is simply available.
        results = race(
            lambda nxt=nxt: world.cancel_call("bob", nxt, "caller cancelled"),
            lambda: world.unit_status("carol", "M1", "AVAILABLE"),
        )
        assert results == ["done", "done"], results
        assert {u.code: u.status for u in world.units()}["M1"] == "AVAILABLE"
        assert violations(engine) == ""
        for number in [c.number for c in world.calls()]:
            world.cancel_call("alice", number, "next round")


def test_a_crew_with_its_own_login_goes_on_to_its_next_call(
    world: DispatchService, engine: Engine, database_url: str
) -> None:
    """The promotion as the paramedic's own login does it: row security lets the crew start
    only the assignment its unit was lined up for."""
    login = "carol"
    with engine.begin() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {login}"))
        conn.execute(
            text(f"CREATE ROLE {login} LOGIN IN ROLE dispatch_paramedic, dispatch_operator")
        )
    crew_engine = make_engine(engine.url.set(username=login, password=None).render_as_string(False))
    try:
        crew = DispatchService(make_sessionmaker(crew_engine), desk="crew")
        _busy(world, "M1", "ON_SCENE")
        nxt = new_call(world)
        world.queue("alice", "M1", nxt)
        assert crew.unit_status(login, "M1", "AVAILABLE").call_number == nxt
        # Its next call cancelled before it clears: the crew's clear still goes through.
        world.unit_status("alice", "M1", "ON_SCENE")
        gone = new_call(world)
        world.queue("alice", "M1", gone)
        world.cancel_call("bob", gone, "caller cancelled")
        cleared = crew.unit_status(login, "M1", "AVAILABLE")
        assert cleared.status == "AVAILABLE" and cleared.queued_call is None
        # An assignment it was not lined up for:
        with (
            pytest.raises(Exception, match=r"row-level security|permission denied"),
            crew_engine.begin() as conn,
        ):
            conn.execute(
                text(
                    "INSERT INTO assignments (call_id, unit_id, notified_at)"
                    " SELECT c.id, u.id, now() FROM calls c, units u"
                    " WHERE u.code = 'M1' AND c.number = :n"
                ),
                {"n": new_call(world)},
            )
    finally:
        crew_engine.dispose()
        with engine.begin() as conn:
            conn.execute(text(f"DROP OWNED BY {login}"))
            conn.execute(text(f"DROP ROLE IF EXISTS {login}"))
    assert violations(engine) == ""


def test_queue_from_the_cli(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _busy(world, "M1")
    nxt = new_call(world)
    assert main(["queue", "m1", nxt]) == 0
    assert f"M1 lined up for {nxt}" in capsys.readouterr().out
    assert main(["--json", "show", "units"]) == 0
    assert f'"queued_call": "{nxt}"' in capsys.readouterr().out
    assert main(["unqueue", "M1"]) == 0
    assert main(["unqueue", "M1"]) == 4


async def test_l_on_a_busy_unit_lines_up_its_next_call(
    world: DispatchService, database_url: str
) -> None:
    _busy(world, "M1", "ON_SCENE")
    nxt = new_call(world, priority=2, nature="Fall")
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: unit_status(app, "M1") == "ON_SCENE")
        units = screen_of(app).units
        units.focus()
        assert units.select_id(next(u.id for u in units.rows_by_key.values() if u.code == "M1"))
        await pilot.press("l")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PickScreen")
        await pilot.press("enter")
        await until(pilot, lambda: f"M1 lined up for {nxt}" in feedback(app))
        await until(pilot, lambda: "M1 next" in screen_of(app).pending.get_row_at(0)[4].plain)
        world.unit_status("alice", "M1", "AVAILABLE")  # the crew clears, elsewhere
        await until(pilot, lambda: pending_numbers(app) == [])
        assert unit_status(app, "M1") == "EN_ROUTE"


def _all_busy(world: DispatchService) -> str:
    """Every unit on one big call, on scene; a new pending call with none free."""
    big = new_call(world, nature="Bus crash")
    units = [u.code for u in world.units()]
    world.dispatch("alice", big, units)
    for code in units:
        world.unit_status("alice", code, "ON_SCENE")
    return new_call(world, priority=1, nature="Cardiac arrest")


def test_recommend_with_no_unit_free_names_the_next_to_clear(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    waiting = _all_busy(world)
    assert main(["recommend", waiting]) == 0
    out = capsys.readouterr().out
    assert "no unit is available; next to clear: M" in out and "queue M" in out
    assert "free in ~" in out


async def test_d_with_no_unit_free_offers_the_next_to_clear_to_line_up(
    world: DispatchService, database_url: str
) -> None:
    waiting = _all_busy(world)
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [waiting])
        screen_of(app).pending.focus()
        await pilot.press("d")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PickScreen")
        title = str(app.screen.query_one(".modal-title").render())
        assert f"No unit is free for {waiting}" in title
        await pilot.press("enter")
        await until(pilot, lambda: "lined up for" in feedback(app))
    assert world.call(waiting).queued_units != ()


async def test_with_no_unit_free_d_offers_a_divert_and_the_next_to_clear_together(
    world: DispatchService, database_url: str
) -> None:
    """A P1 with no unit free: a unit on its way to a P4 is offered to divert, and the units
    that clear next to line up, in one list; either is one Enter away."""
    p4 = new_call(world, priority=4, nature="Back pain")
    big = new_call(world, nature="Bus crash")
    rest = [u.code for u in world.units() if u.code != "B1"]
    world.dispatch("alice", p4, ["B1"])
    world.dispatch("alice", big, rest)
    for code in rest:
        world.unit_status("alice", code, "ON_SCENE")
    waiting = new_call(world, priority=1, nature="Cardiac arrest")
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [waiting])
        screen_of(app).pending.focus()
        await pilot.press("d")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PickScreen")
        title = str(app.screen.query_one(".modal-title").render())
        assert f"No unit is free for {waiting}" in title and "line up one that clears" in title
        options = app.screen.query_one("OptionList")
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]  # type: ignore[attr-defined]
        assert ids[0] == "divert:B1"
        assert len(ids) > 1 and all(i is not None and i.startswith("queue:") for i in ids[1:])
        await pilot.press("down", "enter")  # the first to clear
        await until(pilot, lambda: "lined up for" in feedback(app))
    assert world.call(waiting).queued_units == (ids[1].removeprefix("queue:"),)  # type: ignore[union-attr]
    assert world.call(p4).active_units == ("B1",)  # not diverted
