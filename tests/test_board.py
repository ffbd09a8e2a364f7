"""The supervisor's board and the shift report: KPIs against hand-computed fixtures, timers on a
controlled clock, and read-only enforced by PostgreSQL itself."""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from textual.widgets import Static

from dispatch_tui.app import DispatchApp
from dispatch_tui.cli import main
from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
from dispatch_tui.db.engine import make_engine, make_sessionmaker
from dispatch_tui.rules import norms
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.screens.board import BoardScreen
from dispatch_tui.screens.live import DeskContext
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.read_service import ReadService

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR = (T0 - timedelta(minutes=5), T0 + timedelta(hours=1))


def add_call(
    engine: Engine,
    number: str,
    *,
    received: int,
    dispatched: int | None,
    status: str = "CLOSED",
    **times: int | None,
) -> None:
    """A call with one M1 assignment, times in seconds after T0 (None: never happened)."""

    def at(seconds: int | None) -> datetime | None:
        return None if seconds is None else T0 + timedelta(seconds=seconds)

    ends = {
        "closed_at": at(times.get("cleared")) if status == "CLOSED" else None,
        "cancelled_at": at(times.get("cancelled", received + 1)) if status == "CANCELLED" else None,
    }
    with engine.begin() as conn:
        call_id = conn.execute(
            text(
                "INSERT INTO calls (number, received_at, location_text, nature, priority, status,"
                " first_dispatched_at, closed_at, cancelled_at)"
                " VALUES (:n, :r, 'x', 'x', 1, :s, :d, :closed, :cancelled) RETURNING id"
            ),
            {
                "n": number,
                "r": at(received),
                "s": status,
                "d": at(dispatched),
                "closed": ends["closed_at"],
                "cancelled": ends["cancelled_at"],
            },
        ).scalar_one()
        if dispatched is None:
            return
        conn.execute(
            text(
                "INSERT INTO assignments (call_id, unit_id, hospital_id, notified_at, en_route_at, on_scene_at,"
                " transporting_at, at_destination_at, cleared_at, cancelled_at)"
                " SELECT :c, (SELECT id FROM units WHERE code = :u), (SELECT id FROM hospitals WHERE code = :h),"
                " :d, :e, :o, :t, :a, :cl, :cx"
            ),
            {
                "c": call_id,
                "u": times.get("unit", "M1"),
                "d": at(dispatched),
                "e": at(times.get("en_route")),
                "o": at(times.get("on_scene")),
                "t": at(times.get("transport")),
                "a": at(times.get("arrived")),
                "cl": at(times.get("cleared")),
                "cx": ends["cancelled_at"],
                "h": "MERCY" if times.get("transport") is not None else None,
            },
        )


def kpis(
    world: DispatchService, window: tuple[datetime, datetime] = HOUR, by: str | None = None
) -> dict[str, norms.Kpi]:
    groups = world.kpis({"w": window}, by=by)["w"]
    return {k.norm.key: k for k in groups["all" if by is None else sorted(groups)[0]]}


def test_an_empty_period_has_no_numbers(world: DispatchService) -> None:
    result = kpis(world)
    assert all(
        k.count == 0 and k.p90 is None and k.share is None and k.ok is None for k in result.values()
    )


def test_a_single_call_gives_its_own_intervals(world: DispatchService, engine: Engine) -> None:
    add_call(
        engine,
        "C-1",
        received=0,
        dispatched=45,
        en_route=100,
        on_scene=400,
        transport=900,
        arrived=1500,
        cleared=3500,
    )
    k = kpis(world)
    assert (k["processing"].p50, k["processing"].p90, k["processing"].met) == (45, 45, 1)
    assert (k["turnout"].p90, k["turnout"].met) == (55, 1)
    assert (k["response"].p90, k["response"].met) == (400, 1)
    assert (k["offload"].p90, k["offload"].met, k["offload"].ok) == (2000, 0, False)


def test_fractiles_not_means_and_cancelled_calls_left_out(
    world: DispatchService, engine: Engine
) -> None:
    # Processing times 10, 20, ... 100 s: p50 = 55, p90 = 91 (linear interpolation), 6 within 60 s.
    for i in range(1, 11):
        add_call(
            engine,
            f"C-{i}",
            received=i,
            dispatched=i + 10 * i,
            unit=f"B{(i % 6) + 1}" if i > 6 else f"M{i}",
            on_scene=i + 10 * i + 200,
            cleared=i + 10 * i + 300,
        )
    # A cancelled call dispatched after 500 s must not count in call processing or response.
    add_call(
        engine, "C-99", received=0, dispatched=500, status="CANCELLED", unit="M6", cancelled=600
    )
    k = kpis(world)
    assert k["processing"].count == 10
    assert k["processing"].p50 == pytest.approx(55) and k["processing"].p90 == pytest.approx(91)
    assert k["processing"].met == 6 and k["processing"].ok is False  # mean is 55: a mean would pass
    assert (
        k["response"].count == 10 and k["turnout"].count == 0
    )  # no en-route times: nothing made up


def test_report_breaks_down_and_exports_csv_with_time_problems(
    world: DispatchService, engine: Engine, db_env, capsys, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    add_call(engine, "C-1", received=0, dispatched=30, en_route=60, on_scene=300, cleared=900)
    add_call(
        engine, "C-2", received=10, dispatched=90, on_scene=600, cleared=1200, unit="B1"
    )  # en route never reported
    out = tmp_path / "shift.csv"
    code = main(
        [
            "--json",
            "report",
            "--since",
            (T0 - timedelta(hours=1)).isoformat(),
            "--until",
            (T0 + timedelta(hours=2)).isoformat(),
            "--by",
            "unit",
            "--csv",
            str(out),
        ]
    )
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document["groups"]) == {"B1", "M1"}
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["call_number"] for r in rows] == ["C-1", "C-2"]
    assert rows[0]["time_problems"] == "" and rows[0]["turnout_s"] == "30"
    assert rows[1]["time_problems"] == "missing unit_en_route" and rows[1]["unit_en_route"] == ""
    assert main(["report", "--since", "yesterday-ish"]) == 2


def test_the_board_cannot_write_even_directly(database_url: str, world: DispatchService) -> None:
    engine = make_engine(database_url, read_only=True)
    board = ReadService(make_sessionmaker(engine))
    assert board.units()  # reads work
    with board.sessions() as session, pytest.raises(DBAPIError, match="read-only transaction"):
        session.execute(text("UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M1'"))
    engine.dispose()
    assert {u.code: u.status for u in world.units()}["M1"] == "AVAILABLE"


async def until(pilot: Any, predicate: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await pilot.pause(0.02)


async def test_board_shows_warnings_and_rings_once_per_overdue_timer(
    world: DispatchService, database_url: str
) -> None:
    number = world.create_call(
        "alice", CallIntake(nature="Cardiac arrest", place="Riverton Mall", priority=1)
    ).number
    for code in ("M1", "M2", "M3", "M4", "M5"):
        world.unit_status("alice", code, "out_of_service")
    engine = make_engine(database_url, read_only=True)
    clock = {"now": datetime.now(UTC)}
    options = DeskOptions(dict(DEFAULT_AGING), dict(DEFAULT_STATUS_STYLES), clock=False)
    app = DispatchApp(
        DeskContext(
            ReadService(make_sessionmaker(engine)),
            world.operator("grace"),
            "test",
            database_url,
            options,
        ),
        mode="board",
        clock=lambda: clock["now"],
    )
    bells: list[float] = []
    app.bell = lambda: bells.append(time.monotonic())  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        screen = app.desk
        assert isinstance(screen, BoardScreen)
        await until(pilot, lambda: any(c.number == number for c in screen.calls.values()))
        world.dispatch("alice", number, ["M6"])  # the last ALS unit: the loud warning appears
        await until(pilot, lambda: "NO ALS UNIT AVAILABLE" in _text(screen, "#situation"))
        assert not bells
        # A second P1 with no ALS unit free: who clears first, and about when.
        second = world.create_call(
            "alice", CallIntake(nature="Stroke", place="Central Station", priority=1)
        ).number
        await until(
            pilot, lambda: f"{second} P1 next to clear: M6 ~" in _text(screen, "#situation")
        )
        clock["now"] += timedelta(seconds=61)  # M6 not en route after 61 s: overdue
        screen.render_all()
        assert "OVERDUE" in _text(screen, "#timers") and len(bells) == 1
        screen.render_all()
        assert len(bells) == 1  # once, not on every refresh
        # Nothing on the board can change data: its keys are refresh, the map, quit and the
        # palette.
        actions = {active.binding.action for active in app.active_bindings.values()}
        harmless = {
            "refresh_kpis",
            "map",
            "quit",
            "command_palette",
            "help",
            "app.focus_next",
            "app.focus_previous",
            "screen.copy_text",
        }
        assert actions <= harmless, actions
    engine.dispose()


def _text(screen: BoardScreen, selector: str) -> str:
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()
