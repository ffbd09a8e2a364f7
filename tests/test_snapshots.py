"""Snapshot tests of the desk and the board at 160×48 and 100×30 (with their map, too), and of
a crew terminal at 80×24 and 160×48 (pytest-textual-snapshot).

A truncated column or a lost pane fails here, not on a dispatcher's screen. The rows come from
the real database (the demo area, calls taken and dispatched through the service); only the
times are pinned, so the running clocks read the same on every run. After a deliberate change
of layout, look at the new pictures and accept them with `pytest tests/test_snapshots.py
--snapshot-update`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from textual.pilot import Pilot

from dispatch_tui.app import DispatchApp
from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
from dispatch_tui.rules.validation import CallChanges
from dispatch_tui.rules.views import CallRecord, CrewView, Snapshot
from dispatch_tui.screens.crew import CrewLoaded, CrewScreen
from dispatch_tui.screens.live import DeskContext, LiveScreen, SnapshotLoaded
from dispatch_tui.screens.record import RecordScreen
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.widgets.status_line import StatusLine
from tests.helpers import new_call
from tests.map_helpers import grid_lines, put_streets

SIZES = [(160, 48), (100, 30)]
# Far in the future, so this snapshot is newer than anything the desk loaded itself.
NOW = datetime(2099, 6, 1, 14, 30, tzinfo=UTC)
STALE = NOW - timedelta(minutes=23)


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The status line prints local time: pin the zone so the clock reads the same anywhere."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def busy_shift(world: DispatchService) -> Snapshot:
    """A desk's worth of work, from the database: pending calls of each priority, one of them at
    an address with a hazard note, one call with a unit on scene, one unit out of service, a
    hospital on diversion."""
    c1 = new_call(world, nature="Cardiac arrest", priority=1)
    new_call(world, nature="Fall, hip pain, elderly patient on the floor", priority=3)
    c3 = new_call(world, nature="Difficulty breathing", priority=2, place="Riverside Park")
    world.add_premise("grace", world.call(c3).location_text, "dog on premises")
    world.dispatch("alice", c1, ["M1"])
    world.unit_status("alice", "M1", "ON_SCENE")
    world.unit_status("alice", "B6", "OUT_OF_SERVICE")
    world.hospital_status("grace", "MERCY", "DIVERSION", beds=2)
    return world.snapshot()


def pinned(snapshot: Snapshot) -> Snapshot:
    """The same rows with every time moved so the clocks read the same on every run: call i
    was received 45·(i+1) s before NOW, and each unit and hospital changed status 3 min ago;
    M2 last reported its position 23 min ago (stale), the others never."""

    def shift(row: Any, **times: datetime) -> Any:
        return dataclasses.replace(row, **times)

    calls = []
    for i, call in enumerate(sorted(snapshot.calls, key=lambda c: c.number)):
        received = NOW - timedelta(seconds=45 * (i + 1))
        assignments = tuple(
            shift(
                a,
                notified_at=received + timedelta(seconds=5),
                en_route_at=a.en_route_at and received + timedelta(seconds=10),
                on_scene_at=a.on_scene_at and received + timedelta(seconds=20),
            )
            for a in call.assignments
        )
        calls.append(
            shift(
                call,
                received_at=received,
                first_dispatched_at=call.first_dispatched_at and received + timedelta(seconds=5),
                assignments=assignments,
            )
        )
    earlier = NOW - timedelta(minutes=3)
    return dataclasses.replace(
        snapshot,
        db_now=NOW,
        calls=tuple(calls),
        units=tuple(
            shift(u, status_since=earlier, position_at=STALE if u.code == "M2" else None)
            for u in snapshot.units
        ),
        hospitals=tuple(shift(h, status_since=earlier) for h in snapshot.hospitals),
    )


def app_for(
    world: DispatchService, url: str, mode: str, user: str, unit: str | None = None
) -> DispatchApp:
    # No LISTEN and no clock: the pinned snapshot is the last word.
    options = DeskOptions(
        dict(DEFAULT_AGING),
        dict(DEFAULT_STATUS_STYLES),
        listen=False,
        poll_seconds=3600,
        clock=False,
    )
    context = DeskContext(world, world.operator(user), "dispatch (test)", url, options)
    return DispatchApp(context, mode=mode, clock=lambda: NOW, unit=unit)


def showing(snapshot: Snapshot) -> Any:
    async def run_before(pilot: Pilot[None]) -> None:
        app = pilot.app
        assert isinstance(app, DispatchApp)
        deadline = time.monotonic() + 20

        def status() -> StatusLine | None:
            screen = app.screen
            found = screen.query(StatusLine) if isinstance(screen, LiveScreen) else None
            return found.first() if found else None

        while (line := status()) is None or line.last_update is None:
            assert time.monotonic() < deadline, "the screen did not load"
            await pilot.pause(0.02)
        app.screen.post_message(SnapshotLoaded(snapshot))
        while line.last_update != NOW or line.state != "polling":
            assert time.monotonic() < deadline, "the pinned snapshot was not shown"
            await pilot.pause(0.02)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("mode", "user"), [("desk", "alice"), ("board", "grace")])
def test_the_screen_looks_right(
    world: DispatchService,
    database_url: str,
    utc: None,
    snap_compare: Any,
    mode: str,
    user: str,
    size: tuple[int, int],
) -> None:
    snapshot = pinned(busy_shift(world))
    app = app_for(world, database_url, mode, user)
    assert snap_compare(app, terminal_size=size, run_before=showing(snapshot))


def pinned_record(world: DispatchService, snapshot: Snapshot) -> CallRecord:
    """The record of the call with a unit on scene, a note, an edit and a correction added, its
    times pinned like the snapshot's (each timeline entry 10 s after the one before)."""
    (call,) = [c for c in snapshot.calls if c.assignments]
    world.add_note("alice", call.number, "caller says the patient [b]is[/b] breathing now")
    world.update_call("bob", call.number, CallChanges(caller_name="Dana", caller_phone="555-0199"))
    first = next(e.ref for e in world.record(call.number).timeline if e.source == "note")
    world.add_note("alice", call.number, "patient is 54, not 45", corrects=first)
    record = world.record(call.number)
    start = call.received_at
    timeline = tuple(
        dataclasses.replace(e, at=start + timedelta(seconds=10 * i))
        for i, e in enumerate(record.timeline)
    )
    live = dataclasses.replace(call, caller_name="Dana", caller_phone="555-0199")
    return dataclasses.replace(record, call=live, timeline=timeline)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_call_record_looks_right(
    world: DispatchService,
    database_url: str,
    utc: None,
    snap_compare: Any,
    size: tuple[int, int],
) -> None:
    snapshot = pinned(busy_shift(world))
    record = pinned_record(world, snapshot)
    app = app_for(world, database_url, "desk", "alice")
    load = showing(snapshot)

    async def run_before(pilot: Pilot[None]) -> None:
        await load(pilot)
        screen = RecordScreen(record.call.number, lambda action, call: None)
        await pilot.app.push_screen(screen)
        await pilot.pause()
        screen.show(record)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


# -- the crew terminal ----------------------------------------------------------------------------

CREW_SIZES = [(80, 24), (160, 48)]


def crew_shift(world: DispatchService, *, acknowledged: bool) -> CrewView:
    """M1's crew (carol) on a P1 call with a note in markup, a hospital on diversion as the
    destination, and the next call lined up; on scene with its own note once acknowledged."""
    number = new_call(
        world,
        nature="Cardiac arrest, CPR in progress",
        determinant="09-E-1",
        caller_name="Security desk",
        caller_phone="555-0142",
    )
    later = new_call(world, nature="Fall, hip pain", priority=3, place="Riverside Park")
    world.add_note("alice", number, "caller says the patient [b]is[/b] breathing now")
    world.dispatch("alice", number, ["M1"], hospital="MERCY")
    world.hospital_status("grace", "MERCY", "DIVERSION", beds=2)
    world.queue("alice", "M1", later)
    if acknowledged:
        world.acknowledge("carol", "M1")
        world.unit_status("carol", "M1", "EN_ROUTE")
        world.unit_status("carol", "M1", "ON_SCENE")
        world.add_note("carol", number, "patient 54, conscious; [red]no[/red] markup here")
    return world.crew("carol", "M1")


def pinned_crew(view: CrewView) -> CrewView:
    """The same view with its times pinned: notified 4 min before NOW, each later step 30 s
    after the one before, the unit in its status for 3 min, each narrative entry 10 s apart."""
    assert view.record is not None
    start = NOW - timedelta(minutes=4)
    steps = ("acknowledged_at", "en_route_at", "on_scene_at")
    assignments = tuple(
        dataclasses.replace(
            a,
            notified_at=start,
            **{
                s: getattr(a, s) and start + timedelta(seconds=30 * (i + 1))
                for i, s in enumerate(steps)
            },
        )
        for a in view.record.call.assignments
    )
    call = dataclasses.replace(
        view.record.call,
        received_at=start - timedelta(seconds=45),
        first_dispatched_at=start,
        assignments=assignments,
    )
    timeline = tuple(
        dataclasses.replace(e, at=start + timedelta(seconds=10 * i))
        for i, e in enumerate(view.record.timeline)
    )
    return dataclasses.replace(
        view,
        db_now=NOW,
        unit=dataclasses.replace(view.unit, status_since=NOW - timedelta(minutes=3)),
        record=dataclasses.replace(view.record, call=call, timeline=timeline),
    )


@pytest.mark.parametrize("size", CREW_SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("acknowledged", [False, True], ids=["alert", "on-scene"])
def test_the_crew_terminal_looks_right(
    world: DispatchService,
    database_url: str,
    utc: None,
    snap_compare: Any,
    acknowledged: bool,
    size: tuple[int, int],
) -> None:
    view = pinned_crew(crew_shift(world, acknowledged=acknowledged))
    app = app_for(world, database_url, "crew", "carol", unit="M1")

    async def run_before(pilot: Pilot[None]) -> None:
        deadline = time.monotonic() + 20
        while not isinstance(pilot.app.screen, CrewScreen) or pilot.app.screen.view is None:
            assert time.monotonic() < deadline, "the crew terminal did not load"
            await pilot.pause(0.02)
        screen = pilot.app.screen
        line = screen.query_one(StatusLine)
        screen.post_message(CrewLoaded(view))
        while line.last_update != NOW or line.state != "polling":
            assert time.monotonic() < deadline, "the pinned view was not shown"
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


# -- the map ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize(("mode", "user"), [("desk", "alice"), ("board", "grace")])
def test_the_map_looks_right(
    world: DispatchService,
    engine: Engine,
    database_url: str,
    utc: None,
    snap_compare: Any,
    mode: str,
    user: str,
    size: tuple[int, int],
) -> None:
    """The busy shift on the map (`m`), fitting everything, on the tests' street grid: M2's
    position stale, the selected pending call in brackets (the desk's top one), MERCY on
    diversion, B6 out of service."""
    put_streets(engine, grid_lines())
    snapshot = pinned(busy_shift(world))
    app = app_for(world, database_url, mode, user)
    load = showing(snapshot)

    async def run_before(pilot: Pilot[None]) -> None:
        await load(pilot)
        await pilot.press("m")
        screen = pilot.app.screen
        head = screen.query_one("#map-head")
        deadline = time.monotonic() + 20
        while "streets: " not in str(head.render()):
            assert time.monotonic() < deadline, "the map did not read its streets"
            await pilot.pause(0.02)
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
