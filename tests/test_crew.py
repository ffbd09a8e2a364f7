"""The crew terminal (`dispatch-tui crew M1`), headless on a real PostgreSQL with live LISTEN/NOTIFY.

carol crews M1 in the demo data (dave M3). A dispatch made by a dispatcher through the service
reaches her screen with no key pressed, rings the bell and fills the screen until `a`; the
acknowledgement, the status keys and a note are read back from the database as a desk reads
them. Anyone else is refused the terminal in one line. Every wait is on a condition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from dispatch_tui.app import DispatchApp
from dispatch_tui.cli import main
from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
from dispatch_tui.db.engine import make_engine, make_sessionmaker
from dispatch_tui.rules import recommend
from dispatch_tui.rules.errors import Forbidden
from dispatch_tui.screens.ask import AskScreen
from dispatch_tui.screens.crew import CrewScreen
from dispatch_tui.screens.live import DeskContext
from dispatch_tui.screens.pick import PickScreen
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.widgets.status_line import StatusLine
from tests.desk_helpers import until
from tests.helpers import new_call
from tests.test_faults import ListenerProbe, terminate
from tests.test_roles import Login, libpq, logins  # noqa: F401  # logins: a fixture

SIZE = (80, 24)


class Rings:
    """Counts the terminal bell of an app (App.bell, replaced on the instance)."""

    def __init__(self, app: DispatchApp) -> None:
        self.count = 0

        def bell() -> None:
            self.count += 1

        app.bell = bell  # type: ignore[method-assign]


def crew(world: DispatchService, url: str, user: str = "carol", unit: str = "M1") -> DispatchApp:
    """M1's crew terminal for `user`, its clock off (tests move time themselves)."""
    options = DeskOptions(dict(DEFAULT_AGING), dict(DEFAULT_STATUS_STYLES), clock=False)
    context = DeskContext(world, world.operator(user), "test", url, options)
    return DispatchApp(context, mode="crew", unit=unit)


def screen_of(app: DispatchApp) -> CrewScreen:
    assert isinstance(app.desk, CrewScreen)
    return app.desk


def shown(app: DispatchApp, selector: str) -> str:
    return str(screen_of(app).query_one(selector).render())


def feedback(app: DispatchApp) -> str:
    return shown(app, "#feedback")


def loaded(app: DispatchApp) -> bool:
    return app.desk is not None and app.desk.is_mounted and screen_of(app).view is not None


def unit_status(app: DispatchApp) -> str | None:
    view = screen_of(app).view
    return view.unit.status if view is not None else None


def acknowledged_at(engine: Engine, number: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT a.acknowledged_at FROM assignments a JOIN calls c ON c.id = a.call_id"
                " WHERE c.number = :n"
            ),
            {"n": number},
        ).scalar_one()


async def acknowledged(pilot: Any, app: DispatchApp, number: str) -> None:
    """Wait for the call to reach the screen, then press `a` and wait for the answer."""
    await until(pilot, lambda: screen_of(app).unacknowledged() is not None)
    await pilot.press("a")
    await until(pilot, lambda: "acknowledged" in feedback(app))
    await until(pilot, lambda: screen_of(app).unacknowledged() is None)


async def test_a_dispatch_rings_fills_the_screen_and_waits_for_the_acknowledgement(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    number = new_call(world, nature="Cardiac arrest", caller_phone="555-0142", determinant="9-E-1")
    app = crew(world, database_url)
    rings = Rings(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: loaded(app))
        assert "No call" in shown(app, "#crew-details")
        assert rings.count == 0
        # A dispatcher at a desk sends M1: nothing pressed here.
        await asyncio.to_thread(world.dispatch, "alice", number, ["M1"])
        await until(pilot, lambda: screen.unacknowledged() is not None)
        assert rings.count == 1
        assert screen.has_class("alerting")
        alert = shown(app, "#crew-alert")
        for part in ("NEW CALL", number, "P1", "9-E-1", "Cardiac arrest", "555-0142"):
            assert part in alert
        assert "Press  a  to acknowledge" in alert
        # Until then the status keys are not offered: the call waits for `a`.
        assert not screen.check_action("status", ("ON_SCENE",))
        assert not screen.check_action("note", ())
        assert acknowledged_at(engine, number) is None

        await pilot.press("a")
        await until(pilot, lambda: acknowledged_at(engine, number) is not None)
        await until(pilot, lambda: not screen.has_class("alerting"))
        at = acknowledged_at(engine, number).astimezone().strftime("%H:%M:%S")
        assert feedback(app) == f"✓ M1 acknowledged {number} at {at}"
        assert f"ack {at}" in shown(app, "#crew-details")
        assert rings.count == 1  # the acknowledgement rings nothing more
    # Every desk reads it beside the notified time.
    (assignment,) = world.call(number).assignments
    assert assignment.acknowledged_at is not None
    assert assignment.acknowledged_at >= assignment.notified_at


async def test_status_keys_take_the_unit_through_its_call(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    call = world.call(number)
    # The nearest hospital to the scene goes on diversion: the nearest open one is offered first.
    nearest = recommend.destinations(call, world.hospitals())[0].hospital.code
    world.hospital_status("grace", nearest, "DIVERSION")
    expected = recommend.destinations(call, world.hospitals())
    assert expected[0].hospital.code != nearest and expected[-1].hospital.code == nearest
    app = crew(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await acknowledged(pilot, app, number)
        await pilot.press("e")
        await until(pilot, lambda: screen_of(app).view.unit.en_route_reported)  # type: ignore[union-attr]
        assert "EN ROUTE" in shown(app, "#crew-unit")
        assert not screen_of(app).check_action("status", ("EN_ROUTE",))  # reported once
        await pilot.press("o")
        await until(pilot, lambda: unit_status(app) == "ON_SCENE")
        assert {u.code: u.status for u in world.units()}["M1"] == "ON_SCENE"
        assert "ON SCENE" in shown(app, "#crew-unit")
        await pilot.press("t")  # the destinations, nearest open first, diversion marked
        await until(pilot, lambda: isinstance(app.screen, PickScreen))
        options = app.screen.query_one("OptionList")
        codes = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert codes == [d.hospital.code for d in expected]
        assert "ON DIVERSION" in str(options.get_option_at_index(len(codes) - 1).prompt)
        await pilot.press("enter")
        await until(pilot, lambda: unit_status(app) == "TRANSPORTING")
        assert world.call(number).assignments[0].hospital_code == expected[0].hospital.code
        assert f"Destination {expected[0].hospital.code}" in shown(app, "#crew-details")
        await pilot.press("h")
        await until(pilot, lambda: unit_status(app) == "AT_HOSPITAL")
        await pilot.press("v")
        await until(pilot, lambda: unit_status(app) == "AVAILABLE")
        await until(pilot, lambda: "No call" in shown(app, "#crew-details"))
        assert feedback(app).startswith("✓ M1 available")
        assert f"{nearest} diversion" in shown(app, "#crew-details")  # where not to go next
    assert world.call(number).status == "CLOSED"


async def test_the_crew_takes_its_unit_out_of_service_and_back_with_no_call(
    world: DispatchService, database_url: str
) -> None:
    """Restocking, fuel, a break: `s` takes the free unit out of service, `v` brings it back;
    neither is offered while the unit is on a call."""
    app = crew(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: unit_status(app) == "AVAILABLE")
        assert screen_of(app).check_action("status", ("OUT_OF_SERVICE",))
        assert not screen_of(app).check_action("status", ("AVAILABLE",))
        await pilot.press("s")
        await until(pilot, lambda: unit_status(app) == "OUT_OF_SERVICE")
        assert "OUT OF SERVICE" in shown(app, "#crew-unit")
        assert screen_of(app).check_action("status", ("AVAILABLE",))
        await pilot.press("v")
        await until(pilot, lambda: unit_status(app) == "AVAILABLE")
        number = new_call(world)
        await asyncio.to_thread(world.dispatch, "alice", number, ["M1"])
        await acknowledged(pilot, app, number)
        assert not screen_of(app).check_action("status", ("OUT_OF_SERVICE",))
    changes = [
        (a.operator, a.details.get("new"))
        for a in world.audit()
        if a.action == "unit_status" and a.unit_code == "M1"
    ]
    assert changes == [("carol", "OUT_OF_SERVICE"), ("carol", "AVAILABLE")]


async def test_a_note_lands_in_the_narrative_as_the_crew(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    app = crew(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await acknowledged(pilot, app, number)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, AskScreen))
        note = "patient [b]conscious[/b], GCS 15"  # markup stays text
        await pilot.press(*note, "enter")
        await until(pilot, lambda: feedback(app) == f"✓ note added to {number}")
        log = screen_of(app).query_one("#crew-narrative")
        await until(pilot, lambda: any(note in line.text for line in log.lines))  # type: ignore[attr-defined]
        # A desk's note arrives live too.
        await asyncio.to_thread(world.add_note, "alice", number, "police on the way")
        await until(pilot, lambda: any("police on" in line.text for line in log.lines))  # type: ignore[attr-defined]
    notes = [e for e in world.record(number).timeline if e.source == "note"]
    assert [(e.who, e.text) for e in notes] == [("carol", note), ("alice", "police on the way")]


async def test_the_next_call_and_a_stand_down_reach_the_crew(
    world: DispatchService, database_url: str
) -> None:
    first, second = new_call(world), new_call(world, nature="Fall", priority=3)
    world.dispatch("alice", first, ["M1"])
    app = crew(world, database_url)
    rings = Rings(app)
    async with app.run_test(size=SIZE) as pilot:
        await acknowledged(pilot, app, first)
        await asyncio.to_thread(world.queue, "alice", "M1", second)
        await until(pilot, lambda: second in shown(app, "#crew-next"))
        assert "Fall" in shown(app, "#crew-next")
        before = rings.count
        await asyncio.to_thread(world.cancel_unit, "alice", "M1", "nearer unit")
        # Cancelled from its call, M1 goes straight to the one lined up: a new alert.
        await until(pilot, lambda: screen_of(app).unacknowledged() is not None)
        assert screen_of(app).view.record.call.number == second  # type: ignore[union-attr]
        assert f"off {first} now" in feedback(app)
        assert rings.count >= before + 1


async def test_the_crew_terminal_resyncs_after_its_connection_is_lost(
    world: DispatchService, database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = ListenerProbe(monkeypatch)
    number = new_call(world)
    app = crew(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: loaded(app) and probe.backends)
        line = screen_of(app).query_one(StatusLine)
        await until(pilot, lambda: line.state == "live")
        probe.gate.clear()  # held between connecting and LISTEN: the dispatch goes unheard
        try:
            terminate(engine, probe.backends[-1])
            await until(pilot, lambda: line.state == "reconnecting")
            assert "RECONNECTING" in str(line.render())
            await asyncio.to_thread(world.dispatch, "alice", number, ["M1"])
        finally:
            probe.gate.set()
        await until(pilot, lambda: line.state == "live")
        await until(pilot, lambda: screen_of(app).unacknowledged() is not None)


# -- who may open it ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("dave", "dave crews M3, not M1; open the crew terminal of M3 instead"),
        (
            "alice",
            "alice is a dispatcher; only the paramedic crewing M1 may open its crew terminal",
        ),
    ],
)
def test_only_the_units_own_crew_opens_its_terminal(
    world: DispatchService,
    db_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    user: str,
    message: str,
) -> None:
    with pytest.raises(Forbidden, match=f"^{message}$"):
        world.crew(user, "M1")
    monkeypatch.setenv("DISPATCH_USER", user)
    assert main(["crew", "M1"]) == 5
    assert capsys.readouterr().err == f"error: {message}\n"
    # The unit's own crew is not refused (the terminal itself is tested above).
    assert world.crew("carol", "m1").unit.code == "M1"


def test_a_crew_notes_only_the_call_its_unit_is_on(world: DispatchService) -> None:
    mine, other = new_call(world), new_call(world, priority=3)
    world.dispatch("alice", mine, ["M1"])
    world.dispatch("alice", other, ["M3"])
    world.add_note("carol", mine, "on our way")
    with pytest.raises(Forbidden):
        world.add_note("carol", other, "not ours")
    world.unit_status("carol", "M1", "ON_SCENE")
    world.unit_status("carol", "M1", "AVAILABLE")
    with pytest.raises(Forbidden):  # cleared: no longer its call
        world.add_note("carol", mine, "late")
    assert [e.text for e in world.record(mine).timeline if e.source == "note"] == ["on our way"]


def test_the_database_holds_a_paramedics_login_to_its_own_call(
    world: DispatchService, request: pytest.FixtureRequest
) -> None:
    mine, other = new_call(world), new_call(world, priority=3)
    world.dispatch("alice", mine, ["M2"])
    make_login: Callable[..., Login] = request.getfixturevalue("logins")
    medic, url = make_login("paramedic", unit="M2")
    engine = make_engine(url)
    try:
        own = DispatchService(make_sessionmaker(engine), desk="crew-M2")
        own.acknowledge(medic, "M2")
        own.add_note(medic, mine, "patient found, treating")
    finally:
        engine.dispose()
    assert world.record(mine).timeline[-1].who == medic
    ids = {n: world.call(n).id for n in (mine, other)}
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for call_id, kind in ((ids[other], "note"), (ids[mine], "event")):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
                conn.execute(
                    "INSERT INTO narrative (call_id, operator, desk, kind, text)"
                    " VALUES (%s, %s, 'psql', %s, 'x')",
                    (call_id, medic, kind),
                )
