"""No silent caps: a storm's open calls are all on the desk, the board and `show calls`, and a list
cut on purpose (`show calls --all`, `audit -n`) says so, in text and in --json.

The calls are inserted with one INSERT ... SELECT generate_series (the triggers' notifications
then arrive before any desk is up); one P4 call is dispatched through the service, the case that
used to vanish from Active calls and from the timers when the reads stopped at 500.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import Engine, text
from textual.widgets import Static

from dispatch_tui.app import DispatchApp
from dispatch_tui.cli import main
from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
from dispatch_tui.rules import norms
from dispatch_tui.screens.board import BoardScreen
from dispatch_tui.screens.live import DeskContext
from dispatch_tui.service.dispatch_service import DispatchService
from tests.desk_helpers import active_numbers, desk, screen_of, until
from tests.helpers import new_call

PER_PRIORITY = 300  # P1..P4: 1,200 open calls, well past the old cap of 500


def add_open_calls(engine: Engine, per_priority: int) -> list[str]:
    """`per_priority` pending calls of each priority P1..P4, in one statement; their numbers,
    oldest first (P1, P2, P3, P4, P1, ...)."""
    with engine.begin() as conn:
        return list(
            conn.execute(
                text("""
                    INSERT INTO calls (location_text, lat, lon, nature, priority, created_by_id)
                    SELECT 'storm street ' || g, 40.0 + (g % 50) * 0.001,
                           -83.0 + (g % 40) * 0.001, 'Storm injury', 1 + g % 4,
                           (SELECT id FROM staff WHERE username = 'alice')
                    FROM generate_series(0, :n - 1) AS g
                    ORDER BY g
                    RETURNING number
                """),
                {"n": 4 * per_priority},
            ).scalars()
        )


@pytest.fixture
def storm(world: DispatchService, engine: Engine) -> tuple[list[str], str]:
    """1,200 open calls; the newest P4 call has M1 on the way. Returns (all numbers, that call)."""
    numbers = add_open_calls(engine, PER_PRIORITY)
    p4 = numbers[-1]  # g = 1199: priority 1 + 1199 % 4 = 4
    world.dispatch("alice", p4, ["M1"])
    return numbers, p4


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


async def test_every_open_call_is_on_the_desk(
    world: DispatchService, database_url: str, storm: tuple[list[str], str]
) -> None:
    numbers, p4 = storm
    snapshot = world.snapshot()
    assert sorted(c.number for c in snapshot.calls) == sorted(numbers)
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: screen.pending.row_count == len(numbers) - 1)
        assert active_numbers(app) == {p4}
        shown = {c.number for c in screen.pending.rows_by_key.values()} | active_numbers(app)
        assert shown == set(numbers)
        # Priority first, then age: the last row is the newest pending P4 call.
        last = screen.pending.get_row_at(screen.pending.row_count - 1)[0].plain
        assert last == numbers[-5]


async def test_a_storm_desk_keeps_its_order_its_cursor_and_its_clocks(
    world: DispatchService, database_url: str, storm: tuple[list[str], str]
) -> None:
    """The pending pane of a 1,200-call desk: rows placed without re-sorting stay in order as
    calls come and go, the cursor stays on its call, and a row scrolled into view after a tick
    shows the tick's clock (the clock rewrites only the rows in view)."""
    numbers, _ = storm
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = screen_of(app)
        pane = screen.pending

        def order() -> list[str]:
            return [pane.get_row_at(i)[0].plain for i in range(pane.row_count)]

        def expected() -> list[str]:
            calls = [c for c in world.snapshot().calls if c.status == "RECEIVED"]
            return [
                c.number for c in sorted(calls, key=lambda c: (c.priority, c.received_at, c.id))
            ]

        await until(pilot, lambda: pane.row_count == len(numbers) - 1)
        assert order() == expected()
        p3 = next(c for c in pane.rows_by_key.values() if c.priority == 3)
        assert pane.select_id(p3.id)
        new = new_call(world, priority=1)  # goes in at the end of the P1 calls
        p2 = numbers[1]  # the oldest P2 call leaves for Active calls
        world.dispatch("alice", p2, ["M2"])
        await until(pilot, lambda: new in order() and p2 in active_numbers(app))
        assert order() == expected()
        selected = pane.selected
        assert selected is not None and selected.id == p3.id
        # A tick: rows in view get the clock now; the last row, out of view, when it is drawn.
        assert pane.now is not None
        later = pane.now + timedelta(minutes=7)
        pane.tick(later)
        last = pane.row_count - 1
        pane.move_cursor(row=last, animate=False)
        await pilot.pause()
        row = pane.selected
        assert row is not None and pane.now == later
        shown = [cell.plain for cell in pane.get_row_at(last)[2:4]]
        assert shown == [cell.plain for cell in pane.time_cells(row)]


async def test_the_board_counts_every_open_call(
    world: DispatchService, database_url: str, storm: tuple[list[str], str]
) -> None:
    _, p4 = storm
    options = DeskOptions(dict(DEFAULT_AGING), dict(DEFAULT_STATUS_STYLES), clock=False)
    context = DeskContext(world, world.operator("grace"), "test", database_url, options)
    app = DispatchApp(context, mode="board")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = app.desk
        assert isinstance(screen, BoardScreen)
        await until(pilot, lambda: len(screen.calls) == 4 * PER_PRIORITY)
        situation = _text(screen, "#situation")
        n = PER_PRIORITY
        for counted in (f"P1 {n} ", f"P2 {n} ", f"P3 {n} ", f"P4 {n - 1} "):
            assert counted in situation, situation
        assert p4 in _text(screen, "#board-active")
        timers = norms.timers(screen.calls.values(), datetime.now(UTC))
        assert any(t.call_number == p4 and t.unit_code == "M1" for t in timers)


def test_show_calls_lists_every_open_call(
    world: DispatchService, db_env: Any, capsys: pytest.CaptureFixture[str], storm: Any
) -> None:
    numbers, _ = storm
    code, out = run(capsys, "--json", "show", "calls")
    document = json.loads(out)
    assert code == 0 and document["truncated"] is False and document["total"] == len(numbers)
    assert sorted(c["number"] for c in document["calls"]) == sorted(numbers)
    assert document["message"] == f"{len(numbers)} calls"
    code, out = run(capsys, "show", "calls")
    assert code == 0 and "showing" not in out and numbers[0] in out and numbers[-1] in out


def test_a_list_cut_on_purpose_says_so(
    world: DispatchService, db_env: Any, capsys: pytest.CaptureFixture[str], storm: Any
) -> None:
    numbers, p4 = storm
    # --all keeps the newest 500 by default, and says so, in --json and in text.
    code, out = run(capsys, "--json", "show", "calls", "--all")
    document = json.loads(out)
    assert code == 0 and document["truncated"] is True and document["total"] == len(numbers)
    assert {c["number"] for c in document["calls"]} == set(numbers[-500:])
    said = "showing the newest 500 of 1,200 calls; use --limit"
    assert document["message"] == said
    code, out = run(capsys, "show", "calls", "--all")
    assert said in out
    # Asked for more than there are: nothing cut, nothing said.
    code, out = run(capsys, "--json", "show", "calls", "--all", "--limit", "5000")
    document = json.loads(out)
    assert document["truncated"] is False and len(document["calls"]) == len(numbers)
    # A limit on the open calls is honoured, and said, too.
    code, out = run(capsys, "--json", "show", "calls", "-n", "3")
    document = json.loads(out)
    assert document["truncated"] is True
    assert {c["number"] for c in document["calls"]} == set(numbers[-3:])
    # The audit log: the newest N entries, and the word that there are more.
    new_call(world)  # a second entry besides the dispatch's
    code, out = run(capsys, "--json", "audit", "-n", "1")
    document = json.loads(out)
    assert document["truncated"] is True and len(document["audit"]) == 1
    assert document["message"].startswith("showing the newest 1 of ")
    code, out = run(capsys, "audit", "-n", "1")
    assert "showing the newest 1 of " in out and "use --limit" in out
    code, out = run(capsys, "--json", "audit", "--call", p4)
    document = json.loads(out)
    assert document["truncated"] is False and document["total"] == len(document["audit"]) >= 1


def _text(screen: BoardScreen, selector: str) -> str:
    console = Console(width=200, record=True)
    console.print(screen.query_one(selector, Static).content)
    return console.export_text()
