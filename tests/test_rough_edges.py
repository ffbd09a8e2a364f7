"""The rough edges of issue 12, each fixed and kept fixed, on a real PostgreSQL.

- "En route" meant two things: a dispatched unit is named `dispatched` until its crew reports
  en route, on the desk, the board, the audit log and the CLI alike; after the report, `e` is
  gone from the footer and, pressed anyway, says why.
- Keys that did nothing and said nothing now say why in one line (and stay out of the footer).
- Every column a dispatcher needs is readable at 100×30 and 160×48, with no sideways scroll.
- `demo seed` records its calls as taken by the operator who ran it, when that operator takes
  calls, and says who.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import Engine, text
from textual.widgets import Static

from dispatch_tui.app import DispatchApp
from dispatch_tui.cli import main
from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
from dispatch_tui.screens.board import BoardScreen
from dispatch_tui.screens.live import DeskContext
from dispatch_tui.service import demo
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.widgets.panes import Pane
from tests.desk_helpers import active_numbers, desk, feedback, screen_of, unit_status, until
from tests.helpers import new_call
from tests.test_desk import screen_text

SIZES = [(100, 30), (160, 48)]


def select(pane: Pane[Any], **match: str) -> None:
    """Put the pane's cursor on the row whose fields have the given values, and focus it."""
    row = next(
        r for r in pane.rows_by_key.values() if all(getattr(r, k) == v for k, v in match.items())
    )
    pane.focus()
    assert pane.select_id(row.id)


def cell(pane: Pane[Any], column: str, **match: str) -> str:
    """What the pane shows in `column` for the row whose fields have the given values."""
    key = next(
        k for k, r in pane.rows_by_key.items() if all(getattr(r, f) == v for f, v in match.items())
    )
    index = [c for c, _, _ in pane.COLUMNS].index(column)
    return pane.get_row(key)[index].plain


def audited(engine: Engine, action: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT details FROM audit_log WHERE action = :a ORDER BY id"), {"a": action}
        )
        return [dict(r[0]) for r in rows]


# -- dispatched, then en route ------------------------------------------------------------------


def test_the_en_route_report_is_audited_as_dispatched_to_en_route(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    (m1,) = [u for u in world.units() if u.code == "M1"]
    assert m1.status == "EN_ROUTE" and not m1.en_route_reported
    reported = world.unit_status("alice", "M1", "EN_ROUTE")
    assert reported.en_route_reported
    world.unit_status("alice", "M1", "ON_SCENE")
    # The stored statuses stay what they are (the invariants and the KPIs read them); the
    # change is said in the words every screen uses.
    assert audited(engine, "unit_status") == [
        {"old": "EN_ROUTE", "new": "EN_ROUTE", "change": "dispatched → en route"},
        {"old": "EN_ROUTE", "new": "ON_SCENE", "change": "en route → on scene"},
    ]


def test_the_cli_names_a_dispatched_unit_dispatched(  # type: ignore[no-untyped-def]
    world: DispatchService, db_env, capsys
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1", "M2"])
    world.unit_status("alice", "M2", "EN_ROUTE")
    assert main(["show", "units"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line[:2] in ("M1", "M2")}
    assert "DISPATCHED" in lines["M1"] and "EN_ROUTE" in lines["M2"]
    assert main(["audit", "--call", number]) == 0
    out = capsys.readouterr().out
    assert "dispatched → en route" in out and "old=EN_ROUTE" not in out
    assert main(["--json", "show", "units"]) == 0
    units = {u["code"]: u for u in json.loads(capsys.readouterr().out)["units"]}
    assert units["M1"]["status"] == units["M2"]["status"] == "EN_ROUTE"
    assert (units["M1"]["en_route_reported"], units["M2"]["en_route_reported"]) == (False, True)


async def test_the_desk_shows_dispatched_until_the_crew_reports_en_route(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: unit_status(app, "M1") == "EN_ROUTE")
        assert cell(screen.units, "status", code="M1") == "DISPATCHED"
        assert cell(screen.active, "units", number=number).startswith("M1 disp ")
        select(screen.units, code="M1")
        await pilot.pause()
        assert "e" in app.active_bindings  # the crew's report is still to come
        await pilot.press("e")
        await until(pilot, lambda: cell(screen.units, "status", code="M1") == "EN ROUTE")
        assert feedback(app) == f"✓ M1 en route on {number}"
        await until(pilot, lambda: cell(screen.active, "units", number=number).startswith("M1 en "))
        await until(pilot, lambda: "e" not in app.active_bindings)  # reported: not offered again
        await pilot.press("e")
        await until(pilot, lambda: feedback(app) == "✗ M1 is already reported en route")


async def test_the_board_names_the_dispatched_unit_as_the_desk_does(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1", "M2"])
    world.unit_status("alice", "M2", "EN_ROUTE")
    world.acknowledge("alice", "M1")  # (its other clock, the acknowledgement, stops)
    app = board(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.desk
        assert isinstance(screen, BoardScreen)
        await until(pilot, lambda: number in {c.number for c in screen.calls.values()})
        screen.render_all()
        assert "M1 dispatched" in rendered(screen, "#board-active")
        assert "M2 en route" in rendered(screen, "#board-active")
        situation = rendered(screen, "#situation")
        assert "DISPATCHED 1" in situation and "EN ROUTE 1" in situation
        (timer,) = [line for line in rendered(screen, "#timers").splitlines() if "M1" in line]
        assert timer.split()[0] == "dispatched"


# -- keys that do not apply say why ---------------------------------------------------------------


async def test_keys_that_do_not_apply_are_hidden_and_say_why(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: number in active_numbers(app) and screen.hospitals.row_count)

        async def refused(key: str, why: str) -> None:
            await pilot.pause()
            assert key not in app.active_bindings, f"{key} is offered in the footer"
            await pilot.press(key)
            await until(pilot, lambda: feedback(app) == f"✗ {why}")

        # A dispatcher does not set a hospital's status or beds: a supervisor does.
        select(screen.hospitals, code="MERCY")
        await refused("v", "only an admin or a supervisor may change a hospital's status")
        await refused("b", "only an admin or a supervisor may change a hospital's beds")
        # A unit on a call is cleared before it goes out of service.
        select(screen.units, code="M1")
        await refused("s", "M1 is dispatched on a call; clear it before taking it out of service")
        # A call no unit has reached is cancelled, not closed.
        select(screen.active, number=number)
        await refused("c", f"no unit has reached {number} yet; cancel it instead (x)")
        # Nothing changed.
        assert world.call(number).status == "DISPATCHED"
        assert unit_status(app, "M1") == "EN_ROUTE"


# -- columns -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_column_is_readable(
    world: DispatchService, database_url: str, size: tuple[int, int]
) -> None:
    busy = new_call(world, nature="Cardiac arrest, CPR in progress")
    world.dispatch("alice", busy, ["M1", "M2", "B1"], hospital="MERCY")
    world.unit_status("alice", "M1", "ON_SCENE")
    world.unit_status("alice", "M2", "EN_ROUTE")
    waiting = new_call(
        world, nature="Difficulty breathing, history of asthma", place="Lincoln High School"
    )
    app = desk(world, database_url)
    async with app.run_test(size=size) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: busy in active_numbers(app))
        await until(pilot, lambda: screen.pending.row_count == 1)
        await pilot.pause()
        shown = screen_text(app)
        lines = [line.split("││")[0] for line in shown.splitlines()]  # the calls' side
        # Every column's header, whole.
        (head,) = [line for line in lines if " Age " in line]
        for label in ("Call", "P", "Age", "Flag", "Nature", "Place"):
            assert f" {label} " in head + " ", (label, shown)
        for words in ("Units", "Nature", "Dest", "Unit", "Cap", "Time", "Stn", "Code", "Beds"):
            assert f" {words}" in shown, (words, shown)
        # The pending call: its nature and its place, at least begun.
        (row,) = [line for line in lines if waiting in line]
        assert "Difficulty" in row and "Lincoln" in row, row
        # The active call: all three units, the nature begun, the destination whole.
        (row,) = [line for line in lines if busy in line and "M1" in line]
        assert all(unit in row for unit in ("M1", "M2", "B1")), row
        assert "Cardiac" in row and "MERCY" in row, row
        # Nothing past a pane's right edge.
        for pane in screen.panes():
            assert pane.virtual_size.width <= pane.scrollable_content_region.width, pane.id


async def test_the_board_pending_line_does_not_wrap_at_100_columns(
    world: DispatchService, database_url: str
) -> None:
    for priority in (2, 3, 4):
        new_call(world, priority=priority)
    app = board(world, database_url)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.desk
        assert isinstance(screen, BoardScreen)
        await until(pilot, lambda: len(screen.calls) == 3)
        screen.render_all()
        await pilot.pause()
        (line,) = [line for line in screen_text(app).splitlines() if "Pending" in line]
        assert all(f"P{p} " in line for p in (1, 2, 3, 4)), line


# -- demo seed -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("os_user", "taker"),
    [("zoe", "zoe"), ("bob", "bob"), ("grace", "alice"), ("bad name!", "alice")],
    ids=["new-dispatcher", "staff-dispatcher", "supervisor", "no-valid-name"],
)
def test_demo_calls_are_taken_by_the_operator_who_seeded(
    world: DispatchService,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    os_user: str,
    taker: str,
) -> None:
    monkeypatch.setattr(demo.getpass, "getuser", lambda: os_user)
    report = demo.seed(world)
    assert report.calls == len(demo.CALLS) and report.calls_taken_by == taker
    with engine.connect() as conn:
        takers = conn.execute(
            text("SELECT DISTINCT operator FROM audit_log WHERE action = 'call_created'")
        ).scalars()
        creators = conn.execute(
            text("SELECT DISTINCT s.username FROM calls c JOIN staff s ON s.id = c.created_by_id")
        ).scalars()
        assert list(takers) == list(creators) == [taker]


# -- helpers -------------------------------------------------------------------------------------


def board(world: DispatchService, url: str) -> DispatchApp:
    options = DeskOptions(dict(DEFAULT_AGING), dict(DEFAULT_STATUS_STYLES), clock=False)
    context = DeskContext(world, world.operator("grace"), "test", url, options)
    return DispatchApp(context, mode="board")


def rendered(screen: BoardScreen, selector: str) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()
