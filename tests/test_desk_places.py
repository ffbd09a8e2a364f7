"""A sense of place on the desk, the crew terminal and the CLI: a unit's stale position said in
words (`STALE 23m`) with its age, and in the recommendation; a call whose address has a hazard
note in force says HAZARD on its line, wherever the call is listed, live as notes come and go;
and the calls' hazards read with the calls, never a query per call.

Positions are aged by moving `position_at` back in the database (the superuser's UPDATE), so no
test waits for a clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.app import DispatchApp
from dispatch_tui.cli import main
from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
from dispatch_tui.db import views
from dispatch_tui.screens.crew import CrewScreen
from dispatch_tui.screens.live import DeskContext
from dispatch_tui.screens.pick import PickScreen
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.widgets.panes import Pane
from tests.desk_helpers import desk, pending_numbers, screen_of, until
from tests.helpers import new_call

SIZE = (160, 48)
QUARRY = "21 Quarry Road"


def age_position(engine: Engine, code: str, minutes: float) -> None:
    """`code` reported its position `minutes` ago (and has not since)."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE units SET position_at = now() - make_interval(mins => :m) WHERE code = :c"
            ),
            {"m": minutes, "c": code},
        )


def forget_position(engine: Engine, code: str) -> None:
    """`code` never reported a position: it is measured from its station."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE units SET lat = NULL, lon = NULL, position_at = NULL WHERE code = :c"),
            {"c": code},
        )


def cell(pane: Pane[Any], column: str, **match: Any) -> str:
    """What `pane` shows in `column` for the row whose fields have the given values."""
    key = next(
        k for k, r in pane.rows_by_key.items() if all(getattr(r, f) == v for f, v in match.items())
    )
    index = [c for c, _, _ in pane.COLUMNS].index(column)
    return str(pane.get_row(key)[index].plain)


# -- positions carry their age ------------------------------------------------------------------


async def test_the_units_pane_says_a_stale_position_and_its_age(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    age_position(engine, "M2", 23)
    forget_position(engine, "M3")
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        units = screen_of(app).units
        await until(pilot, lambda: len(units.rows_by_key) == 12)
        assert cell(units, "pos", code="M2") == "STALE 23m"
        assert cell(units, "pos", code="M1") == ""  # reported just now
        assert cell(units, "pos", code="M3") == ""  # never reported: measured from its station
        # The clock ages a position on the desk: M1 turns stale once 10 minutes pass.
        assert units.now is not None
        units.tick(units.now + timedelta(minutes=11))
        await pilot.pause()
        assert cell(units, "pos", code="M1") == "STALE 11m"
        # A new report makes it fresh again, live.
        world.locate_unit("alice", "M2", 40.0, -83.0)
        await until(pilot, lambda: cell(units, "pos", code="M2") == "")


async def test_the_centres_threshold_decides_what_the_desk_calls_stale(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    age_position(engine, "M2", 23)
    age_position(engine, "M4", 31)
    app = desk(world, database_url, stale_position_seconds=30 * 60)
    async with app.run_test(size=SIZE) as pilot:
        units = screen_of(app).units
        await until(pilot, lambda: len(units.rows_by_key) == 12)
        assert cell(units, "pos", code="M2") == ""
        assert cell(units, "pos", code="M4") == "STALE 31m"


async def test_the_dispatch_list_says_how_old_a_stale_position_is(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    for code in ("B1", "B2", "B3", "B4", "B5", "B6", "M1", "M2", "M3", "M5", "M6"):
        world.unit_status("alice", code, "OUT_OF_SERVICE")
    age_position(engine, "M4", 23)  # the one unit free, last heard of 23 minutes ago
    number = new_call(world)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [number])
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, PickScreen))
        screen = app.screen
        assert isinstance(screen, PickScreen)
        ((code, line),) = screen.options
        assert code == "M4"
        assert "ETA ~" in line.plain and "from a stale position" in line.plain
        assert "position 23 min old" in line.plain


def test_the_service_recommends_with_the_centres_threshold(
    world: DispatchService, sessions: sessionmaker[Session], engine: Engine
) -> None:
    age_position(engine, "M4", 23)
    number = new_call(world)
    (m4,) = [r for r in world.recommend(number, limit=12) if r.unit.code == "M4"]
    assert m4.stale_position and "position 23 min old" in m4.reason
    lenient = DispatchService(sessions, desk="test", stale_position_seconds=30 * 60)
    (m4,) = [r for r in lenient.choices(number, limit=12).recommended if r.unit.code == "M4"]
    assert not m4.stale_position and "min old" not in m4.reason


def test_a_units_view_carries_its_positions_age_by_the_databases_clock(
    world: DispatchService, engine: Engine
) -> None:
    age_position(engine, "M2", 23)
    forget_position(engine, "M3")
    by_code = {u.code: u for u in world.units()}
    assert by_code["M2"].position_age == pytest.approx(23 * 60, abs=30)
    assert by_code["M3"].position_age is None
    located = world.locate_unit("alice", "M3", 40.0, -83.0)  # read back in its own write
    assert located.position_age is not None and 0 <= located.position_age < 5


def test_show_units_lists_each_positions_age_and_the_stale_ones(
    world: DispatchService,
    engine: Engine,
    db_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    age_position(engine, "M2", 23)
    forget_position(engine, "M3")
    assert main(["show", "units"]) == 0
    out = capsys.readouterr().out
    m2 = next(line for line in out.splitlines() if line.startswith("M2 "))
    assert "STALE 23 min old" in m2
    m1 = next(line for line in out.splitlines() if line.startswith("M1 "))
    assert "0 min old" in m1 and "STALE" not in m1
    assert "12 units; positions over 10 min old: M2" in out
    assert main(["show", "units", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    units = {u["code"]: u for u in document["units"]}
    assert units["M2"]["position_age"] == pytest.approx(23 * 60, abs=30)
    assert units["M2"]["position_stale"] is True
    assert units["M1"]["position_stale"] is False
    assert units["M3"]["position_age"] is None and units["M3"]["position_stale"] is False
    assert document["message"] == "12 units; positions over 10 min old: M2"


def test_the_threshold_is_the_centres_in_the_cli_too(
    world: DispatchService,
    engine: Engine,
    db_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    age_position(engine, "M2", 23)
    monkeypatch.setenv("DISPATCH_STALE_POSITION_MINUTES", "30")
    assert main(["show", "units", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert not any(u["position_stale"] for u in document["units"])
    assert document["message"] == "12 units"


# -- hazards wherever the call is listed ----------------------------------------------------------


async def test_a_hazard_comes_and_goes_on_the_calls_line_live(
    world: DispatchService, database_url: str
) -> None:
    waiting = new_call(world, place="", location="21 quarry rd", priority=2)
    rolling = new_call(world, place="", location="21 Quarry Rd.", priority=1)
    elsewhere = new_call(world, place="", location="4 Elm St", priority=3)
    world.dispatch("alice", rolling, ["M1"])
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = screen_of(app)

        def flags(pane: Pane[Any], number: str) -> list[str]:
            # The column says what the desk must know of the place (UNVERIFIED too: these
            # addresses are not in the gazetteer).
            return cell(pane, "hazard", number=number).split()

        await until(pilot, lambda: len(screen.pending.rows_by_key) == 2)
        await until(pilot, lambda: len(screen.active.rows_by_key) == 1)
        assert "HAZARD" not in flags(screen.pending, waiting)
        note = world.add_premise("grace", QUARRY, "violent patient: police first")
        # Added at another desk: every desk's lines at that address say so, without a reload.
        await until(pilot, lambda: "HAZARD" in flags(screen.pending, waiting))
        await until(pilot, lambda: "HAZARD" in flags(screen.active, rolling))
        assert "HAZARD" not in flags(screen.pending, elsewhere)
        world.retire_premise("grace", note.id)
        await until(pilot, lambda: "HAZARD" not in flags(screen.pending, waiting))
        await until(pilot, lambda: "HAZARD" not in flags(screen.active, rolling))


def test_the_hazards_of_the_calls_are_read_with_them(
    world: DispatchService, sessions: sessionmaker[Session], engine: Engine
) -> None:
    world.add_premise("grace", QUARRY, "dog on premises")
    world.add_premise("grace", "3 Elm Rd", "oxygen in use", until="2099-12-31")
    retired = world.add_premise("grace", "8 Ash Ct", "ladder needed")
    world.retire_premise("grace", retired.id)
    numbers = {
        new_call(world, place="", location=where, priority=3): flagged
        for where, flagged in (
            ("21 quarry rd", True),
            ("3 Elm Road", True),
            ("8 Ash Ct", False),
            ("9 Birch Ave", False),
        )
    }
    world.add_premise("grace", "9 Birch Ave", "loose dog", until="2099-12-31")
    with engine.begin() as conn:  # past its date since: no longer in force
        conn.execute(
            text(
                "UPDATE premise_notes SET until = now() - interval '1 day' WHERE note = 'loose dog'"
            )
        )

    def read() -> tuple[dict[str, bool], int]:
        with statements(engine) as counted, sessions() as s:
            calls = views.calls(s)
        return {c.number: c.hazard for c in calls}, len(counted)

    seen, queries = read()
    assert seen == numbers
    for _ in range(20):  # many more calls, at hazardous addresses and not
        new_call(world, place="", location="21 Quarry Road", priority=4)
        new_call(world, place="", location="1 Main St", priority=4)
    seen, more = read()
    assert sum(seen.values()) == 2 + 20
    assert more == queries  # one read for every call in view, never one per call


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements `engine` runs inside the block."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_show_calls_and_call_show_say_hazard(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_premise("grace", QUARRY, "dog on premises")
    number = new_call(world, place="", location="21 quarry rd", priority=2)
    other = new_call(world, place="", location="4 Elm St", priority=3)
    assert main(["show", "calls"]) == 0
    out = capsys.readouterr().out
    assert "HAZARD" in next(line for line in out.splitlines() if line.startswith(number))
    assert "HAZARD" not in next(line for line in out.splitlines() if line.startswith(other))
    assert main(["call", "show", number]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.startswith(number) and head.endswith("HAZARD")
    assert main(["show", "calls", "--json"]) == 0
    flags = {c["number"]: c["hazard"] for c in json.loads(capsys.readouterr().out)["calls"]}
    assert flags == {number: True, other: False}


async def test_the_crew_terminal_says_hazard_on_its_call_and_its_next(
    world: DispatchService, database_url: str
) -> None:
    world.add_premise("grace", QUARRY, "violent patient: police first")
    world.add_premise("grace", "4 Elm St", "dog on premises")
    on = new_call(world, place="", location="21 quarry rd", priority=1)
    later = new_call(world, place="", location="4 Elm Street", priority=3)
    world.dispatch("alice", on, ["M1"])
    world.queue("alice", "M1", later)
    world.acknowledge("carol", "M1")
    options = DeskOptions(dict(DEFAULT_AGING), dict(DEFAULT_STATUS_STYLES), clock=False)
    context = DeskContext(world, world.operator("carol"), "test", database_url, options)
    app = DispatchApp(context, mode="crew", unit="M1")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.desk, CrewScreen) and app.desk.view is not None)
        crew = app.desk
        assert isinstance(crew, CrewScreen)
        await until(pilot, lambda: f"on {on}  HAZARD" in str(crew.query_one("#crew-unit").render()))
        nxt = str(crew.query_one("#crew-next").render())
        assert f"{later}  P3  HAZARD  " in nxt


async def test_the_crew_terminal_lists_the_last_five_calls_at_its_address(
    world: DispatchService, database_url: str
) -> None:
    """How many calls the address had in 12 months, and the last five: date, nature, end."""
    earlier = [
        new_call(world, place="", location="77 Birch Ave", nature=f"Fall {n}", priority=3)
        for n in range(6)
    ]
    for number in earlier:
        world.cancel_call("alice", number, reason="caller called back")
    on = new_call(world, place="", location="77 Birch Avenue", priority=1)
    world.dispatch("alice", on, ["M1"])
    world.acknowledge("carol", "M1")
    options = DeskOptions(dict(DEFAULT_AGING), dict(DEFAULT_STATUS_STYLES), clock=False)
    context = DeskContext(world, world.operator("carol"), "test", database_url, options)
    app = DispatchApp(context, mode="crew", unit="M1")
    async with app.run_test(size=(80, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.desk, CrewScreen) and app.desk.view is not None)
        crew = app.desk
        assert isinstance(crew, CrewScreen)
        await until(pilot, lambda: "Prior calls" in str(crew.query_one("#crew-details").render()))
        details = str(crew.query_one("#crew-details").render())
        assert "6 in 12 months" in details
        shown = [n for n in range(6) if f"Fall {n}" in details]
        assert shown == [1, 2, 3, 4, 5]  # the last five, not the oldest
