"""The desk, headless (`App.run_test`) on a real PostgreSQL with live LISTEN/NOTIFY.

Every wait is on a condition (the pane shows the row, the database has the assignment), never a
fixed sleep. Two desks run side by side in one test to prove a change made in one — or by the CLI
in another process — appears in the other without a key pressed.
"""

from __future__ import annotations

import asyncio
import io
import sys
from typing import Any

import pytest
from rich.console import Console
from rich.text import Text
from sqlalchemy import text
from textual import events
from textual.app import App, ComposeResult
from textual.coordinate import Coordinate
from textual.widgets import Input

from dispatch_tui.app import DispatchApp
from dispatch_tui.config import DEFAULT_STATUS_STYLES
from dispatch_tui.rules.errors import Unavailable
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.screens.desk import DeskScreen
from dispatch_tui.screens.pick import PickScreen
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.widgets.panes import Hospitals
from dispatch_tui.widgets.status_line import StatusLine
from tests.desk_helpers import (
    active_numbers,
    desk,
    feedback,
    pending_numbers,
    screen_of,
    unit_status,
    until,
)
from tests.helpers import new_call

SIZE = (160, 48)


async def test_two_keys_dispatch_the_top_recommendation(
    world: DispatchService, database_url: str, engine
) -> None:  # type: ignore[no-untyped-def]
    number = new_call(world)
    expected = world.recommend(number)[0].unit.code
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [number])
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, PickScreen))
        options = app.screen.query_one("OptionList")
        assert options.get_option_at_index(0).id == expected  # top of the modal = nearest suitable
        await pilot.press("enter")
        await until(
            pilot,
            lambda: number in active_numbers(app) and unit_status(app, expected) == "EN_ROUTE",
        )
        assert number not in pending_numbers(app)
        assert feedback(app) == f"✓ {expected} dispatched to {number}"
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT count(*) FROM assignments WHERE cleared_at IS NULL")
            ).scalar_one()
            == 1
        )


async def test_each_pane_says_how_many_rows_it_holds_live(
    world: DispatchService, database_url: str
) -> None:
    """Rows scrolled out of view are never hidden without a word: each pane's border counts
    them, and the hospitals' says which are not taking ambulances as usual."""
    first, _second = new_call(world), new_call(world)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: len(pending_numbers(app)) == 2)
        assert screen.pending.border_title == "Pending calls · 2"
        assert screen.active.border_title == "Active calls · 0"
        assert screen.units.border_title == "Units · 12 of 12 available"
        assert screen.hospitals.border_title == "Hospitals"  # every one open
        await asyncio.to_thread(world.dispatch, "bob", first, ["M1"])
        await asyncio.to_thread(world.hospital_status, "grace", "MERCY", "DIVERSION")
        await until(pilot, lambda: screen.active.border_title == "Active calls · 1")
        assert screen.pending.border_title == "Pending calls · 1"
        await until(pilot, lambda: screen.units.border_title == "Units · 11 of 12 available")
        await until(pilot, lambda: screen.hospitals.border_title == "Hospitals · 1 on diversion")


async def test_unit_keys_take_a_call_to_available(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    world.dispatch("bob", number, ["M2"])
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: unit_status(app, "M2") == "EN_ROUTE")
        screen.units.focus()
        assert screen.units.select_id(
            next(u.id for u in screen.units.rows_by_key.values() if u.code == "M2")
        )
        for key, status in (("e", "EN_ROUTE"), ("o", "ON_SCENE")):
            await pilot.press(key)
            await until(
                pilot, lambda s=status: unit_status(app, "M2") == s and "✓" in feedback(app)
            )
        await pilot.press("t")  # asks the destination
        await until(pilot, lambda: isinstance(app.screen, PickScreen))
        await pilot.press("enter")
        await until(pilot, lambda: unit_status(app, "M2") == "TRANSPORTING")
        await pilot.press("h")
        await until(pilot, lambda: unit_status(app, "M2") == "AT_HOSPITAL")
        await pilot.press("v")
        await until(pilot, lambda: unit_status(app, "M2") == "AVAILABLE")
        await until(pilot, lambda: number not in active_numbers(app))  # closed: all units cleared
    assert world.call(number).status == "CLOSED"


async def test_command_bar_runs_the_cli_grammar(world: DispatchService, database_url: str) -> None:
    number = new_call(world)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [number])
        await pilot.press("colon")
        await pilot.press(*f"d {number.lower()} m4")
        await pilot.press("enter")
        await until(pilot, lambda: unit_status(app, "M4") == "EN_ROUTE")
        assert feedback(app).startswith(f"✓ M4 dispatched to {number}")
        await pilot.press(*"os zz9", "enter")
        await until(pilot, lambda: "no unit ZZ9" in feedback(app))
        assert feedback(app).startswith("✗")
        await pilot.press(*"frobnicate", "enter")
        await until(pilot, lambda: "unknown command 'frobnicate'" in feedback(app))
        await pilot.press("up")
        assert screen_of(app).query_one("CommandBar").value == "frobnicate"


async def test_two_desks_and_the_cli_see_each_other_live(  # type: ignore[no-untyped-def]
    world: DispatchService, database_url: str, db_env
) -> None:
    first, second = (
        new_call(world),
        new_call(world, nature="Fall", place="Central Station", priority=3),
    )
    one, two = desk(world, database_url), desk(world, database_url, user="bob")
    async with one.run_test(size=SIZE) as p1, two.run_test(size=SIZE) as p2:
        await until(p1, lambda: len(pending_numbers(one)) == 2)
        await until(p2, lambda: len(pending_numbers(two)) == 2)
        await p1.press("colon", *f"d {first} M1", "enter")
        await until(p1, lambda: feedback(one).startswith("✓ M1 dispatched"))
        # Desk two follows without any key pressed.
        await until(
            p2, lambda: first in active_numbers(two) and unit_status(two, "M1") == "EN_ROUTE"
        )
        # The CLI, in another process, is seen by both.
        # (asyncio's subprocess: the desks keep running while the CLI works)
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dispatch_tui",
            "dispatch",
            second,
            "B1",
            env=db_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await cli.communicate()
        assert cli.returncode == 0, stderr.decode()
        await until(
            p1, lambda: unit_status(one, "B1") == "EN_ROUTE" and second in active_numbers(one)
        )
        await until(
            p2, lambda: unit_status(two, "B1") == "EN_ROUTE" and second in active_numbers(two)
        )
        assert pending_numbers(one) == pending_numbers(two) == []
        assert str(two.screen.query_one(StatusLine).state) == "live"


async def test_a_conflict_between_desks_is_one_clear_line(
    world: DispatchService, database_url: str, engine
) -> None:  # type: ignore[no-untyped-def]
    first, second = new_call(world), new_call(world)
    one, two = desk(world, database_url), desk(world, database_url, user="bob")
    async with one.run_test(size=SIZE) as p1, two.run_test(size=SIZE) as p2:
        await until(p1, lambda: len(pending_numbers(one)) == 2)
        await until(p2, lambda: len(pending_numbers(two)) == 2)
        await p1.press("colon", *f"d {first} M5", "enter")
        await until(p1, lambda: feedback(one).startswith("✓"))
        await p2.press("colon", *f"d {second} M5", "enter")
        await until(p2, lambda: feedback(two).startswith("✗"))
        assert feedback(two) == f"✗ M5 was dispatched to {first} by alice a moment ago"
        await until(p2, lambda: unit_status(two, "M5") == "EN_ROUTE")
        assert second in pending_numbers(two)  # the loser's call is still pending, untouched
    with engine.connect() as conn:
        rows = (
            conn.execute(
                text(
                    "SELECT c.number FROM assignments a JOIN calls c ON c.id = a.call_id JOIN units u ON u.id = a.unit_id WHERE u.code = 'M5'"
                )
            )
            .scalars()
            .all()
        )
    assert rows == [first]


async def test_markup_in_database_text_renders_literally(
    world: DispatchService, database_url: str
) -> None:
    raw = "[bold red]Fall[/] at [link=http://x]home[/link]"
    number = world.create_call(
        "bob", CallIntake(nature=raw, location="[i]1 Main St", priority=2, caller_name="[b]Bob")
    ).number
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [number])
        row = screen_of(app).pending.get_row_at(0)
        nature, place = row[4], row[5]
        assert isinstance(nature, Text) and nature.plain == raw and not nature.spans
        assert place.plain == "[i]1 Main St" and not place.spans


async def test_polling_desk_says_so_and_still_follows(
    world: DispatchService, database_url: str
) -> None:
    app = desk(world, database_url, listen=False, poll_seconds=0.2)
    async with app.run_test(size=SIZE) as pilot:
        status = screen_of(app).query_one(StatusLine)
        await until(pilot, lambda: status.state == "polling")
        number = new_call(world)
        await until(pilot, lambda: pending_numbers(app) == [number])


async def test_intake_form_validates_then_takes_the_call(
    world: DispatchService, database_url: str
) -> None:
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_of(app).units.row_count == 12)
        await pilot.press("n")
        await until(pilot, lambda: app.screen.__class__.__name__ == "IntakeScreen")
        await pilot.press("ctrl+s")  # nothing typed yet: refused with a reason, form stays
        assert "nature is required" in str(app.screen.query_one("#error").render())
        await pilot.press(*"Seizure", "enter", "2", "enter", "enter", *"riverside", "ctrl+s")
        await until(pilot, lambda: len(pending_numbers(app)) == 1)
    (call,) = world.calls()
    assert (call.nature, call.priority, call.location_text) == (
        "Seizure",
        2,
        "Riverside Park, 80 S Riverside Dr",
    )


async def test_d_and_enter_typed_at_once_send_the_top_recommendation(
    world: DispatchService, database_url: str
) -> None:
    """`d` Enter typed faster than a screen opens: one list, the top unit sent, no second list
    left open (the Enter is the list's, not a second `dispatch` on the pane)."""
    number = new_call(world)
    expected = world.recommend(number)[0].unit.code
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [number])
        for key in ("d", "enter"):
            app.post_message(events.Key(key, "\r" if key == "enter" else key))
        await until(pilot, lambda: unit_status(app, expected) == "EN_ROUTE")
        await pilot.pause()
        assert not isinstance(app.screen, PickScreen), "a second list was left open"
    assert world.call(number).active_units == (expected,)


async def test_keys_typed_as_the_form_or_the_bar_opens_go_into_it(
    world: DispatchService, database_url: str
) -> None:
    """A dispatcher types the nature as the caller says it, right after `n`: the keys that
    arrive before the form has its focus are the first field's, not lost and not the desk's."""
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_of(app).units.row_count == 12)
        # All at once, as a terminal delivers a fast typist's keys: none waits for the last.
        for char in "ndifficulty breathing":
            app.post_message(events.Key(char, char))
        await until(pilot, lambda: app.screen.__class__.__name__ == "IntakeScreen")
        await pilot.pause()
        nature = app.screen.query_one("#nature", Input)
        await until(pilot, lambda: nature.value == "difficulty breathing")
        assert app.screen.focused is nature
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DeskScreen))
        # The same for the command bar: what follows the colon is the command.
        for key, char in [("colon", ":"), *((c if c != " " else "space", c) for c in "d c-1 m4")]:
            app.post_message(events.Key(key, char))
        bar = screen_of(app).query_one("CommandBar", Input)
        await until(pilot, lambda: bar.value == "d c-1 m4")
        assert app.screen.focused is bar
    assert world.calls() == []  # nothing else happened on the desk meanwhile


@pytest.mark.parametrize("size", [(100, 30), (160, 48)])
async def test_the_desk_fits_small_and_large_terminals(
    world: DispatchService, database_url: str, size: tuple[int, int]
) -> None:
    new_call(world)
    app = desk(world, database_url)
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: len(pending_numbers(app)) == 1)
        screen = screen_of(app)
        for pane in screen.panes():
            assert pane.region.height >= 5 and pane.region.width >= 30, pane.id
        # Text columns size to their content, even when the first snapshot beat the mount. The
        # table measures new rows when its queue is next idle, which a loaded machine delays: wait
        # for it (a column stuck at its header's width fails here after the wait).
        nature = screen.pending.columns["nature"]
        await until(pilot, lambda: nature.get_render_width(screen.pending) >= len("Chest pain"))


# -- what a change costs the desk ---------------------------------------------------------------


async def repainted(app: DispatchApp) -> None:
    """Return once the screen has been redrawn with what is already in the panes."""
    done = asyncio.Event()
    app.call_after_refresh(done.set)
    await asyncio.wait_for(done.wait(), 20)


def hospital_key(app: DispatchApp, code: str) -> str:
    pane = screen_of(app).hospitals
    return next(k for k, h in pane.rows_by_key.items() if h.code == code)


def beds(app: DispatchApp, code: str) -> int | None:
    return screen_of(app).hospitals.rows_by_key[hospital_key(app, code)].beds_available


async def test_one_changed_cell_redraws_its_row_and_nothing_else(
    world: DispatchService, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        pane = screen_of(app).hospitals
        await until(pilot, lambda: pane.row_count == 5)
        await repainted(app)
        row = pane.get_row_index(hospital_key(app, "MERCY"))
        lines = [pane.render_line(y).text for y in range(pane.row_count + 1)]
        updates = pane._update_count
        drawn: list[int] = []
        render_cell = type(pane)._render_cell

        def spy(self: Any, row_index: int, *args: Any, **kwargs: Any) -> Any:
            if self is pane:
                drawn.append(row_index)
            return render_cell(self, row_index, *args, **kwargs)

        monkeypatch.setattr(type(pane), "_render_cell", spy)
        world.hospital_status("grace", "MERCY", beds=17)
        await until(pilot, lambda: beds(app, "MERCY") == 17)
        await repainted(app)

        # Not the whole table invalidated (as DataTable.update_cell does): only MERCY's cells
        # were rendered again, and its line shows the new count while the others are as before.
        assert pane._update_count == updates
        assert drawn and set(drawn) == {row}
        after = [pane.render_line(y).text for y in range(pane.row_count + 1)]
        header = 1
        assert "17" in after[header + row] and "17" not in lines[header + row]
        assert [t for i, t in enumerate(after) if i != header + row] == [
            t for i, t in enumerate(lines) if i != header + row
        ]


def screen_text(app: App[Any]) -> str:
    """The whole screen as text, composed the way a full redraw composes it: from each widget's
    cached lines, so a line that should have been redrawn and was not still shows its old text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


async def test_a_changed_row_is_redrawn_where_it_is_on_a_scrolled_pane(
    world: DispatchService, database_url: str
) -> None:
    app = desk(world, database_url)
    async with app.run_test(size=(100, 24)) as pilot:  # too short for all 12 units
        pane = screen_of(app).units
        await until(pilot, lambda: pane.row_count == 12)
        pane.focus()
        last = pane.coordinate_to_cell_key(Coordinate(pane.row_count - 1, 0)).row_key.value
        assert last is not None and pane.select_id(int(last))
        code = pane.rows_by_key[last].code
        await until(pilot, lambda: pane.scroll_y > 0)  # the pane shows its last rows
        await repainted(app)
        assert not any("OUT OF SVC" in line for line in screen_text(app).splitlines())

        world.unit_status("bob", code, "OUT_OF_SERVICE")
        await until(pilot, lambda: unit_status(app, code) == "OUT_OF_SERVICE")
        await repainted(app)
        (line,) = [line for line in screen_text(app).splitlines() if f" {code} " in line]
        assert "OUT OF SVC" in line


def footer_keys(app: DispatchApp) -> list[str]:
    return [str(key.description) for key in screen_of(app).query("FooterKey")]


async def test_the_footer_is_rebuilt_only_when_the_selected_rows_keys_change(
    world: DispatchService, database_url: str
) -> None:
    app = desk(world, database_url, user="grace")  # a supervisor may set hospital status
    async with app.run_test(size=SIZE) as pilot:
        screen = screen_of(app)
        pane = screen.hospitals
        await until(pilot, lambda: pane.row_count == 5)
        pane.focus()
        assert pane.select_id(int(hospital_key(app, "MERCY")))
        await until(pilot, lambda: "Diversion" in footer_keys(app))
        assert "Open" not in footer_keys(app)  # MERCY is open already
        rebuilds: list[object] = []
        screen.bindings_updated_signal.subscribe(screen, rebuilds.append)

        # Another row changes, then the selected row changes in a way its keys do not see.
        world.hospital_status("grace", "STJ", beds=3)
        await until(pilot, lambda: beds(app, "STJ") == 3)
        world.hospital_status("grace", "MERCY", beds=4)
        await until(pilot, lambda: beds(app, "MERCY") == 4)
        await repainted(app)
        assert rebuilds == []

        # The selected hospital goes on diversion: its keys change, and the footer follows.
        world.hospital_status("grace", "MERCY", "DIVERSION")
        await until(pilot, lambda: "Open" in footer_keys(app))
        assert "Diversion" not in footer_keys(app)
        assert len(rebuilds) == 1


async def test_the_desk_reads_everything_once_at_start(
    world: DispatchService, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[object] = []
    snapshot = world.snapshot

    def counted() -> Any:
        loads.append(None)
        return snapshot()

    monkeypatch.setattr(world, "snapshot", counted)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot,
            lambda: (
                screen_of(app).units.row_count == 12
                and screen_of(app).query_one(StatusLine).state == "live"
            ),
        )
        # A notification is handled after the listener's resync: once this change is shown,
        # every start-up load has been asked for.
        world.hospital_status("grace", "MERCY", beds=9)
        await until(pilot, lambda: beds(app, "MERCY") == 9)
    assert len(loads) == 1


async def test_a_desk_that_could_not_load_says_so_and_loads_when_it_can(
    world: DispatchService, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = world.snapshot
    failures = [Unavailable("the database did not answer")]

    def flaky() -> Any:
        if failures:
            raise failures.pop()
        return snapshot()

    monkeypatch.setattr(world, "snapshot", flaky)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: feedback(app) == "✗ the database did not answer")
        await until(pilot, lambda: screen_of(app).units.row_count == 12)


async def test_the_cursor_stays_on_its_call_when_the_order_changes(
    world: DispatchService, database_url: str
) -> None:
    fall = new_call(world, nature="Fall", priority=3)
    burn = new_call(world, nature="Burn", priority=2)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        pane = screen_of(app).pending
        await until(pilot, lambda: pending_numbers(app) == [burn, fall])
        assert pane.select_id(next(c.id for c in pane.rows_by_key.values() if c.number == fall))
        arrest = new_call(world, nature="Arrest", priority=1)
        await until(pilot, lambda: pending_numbers(app) == [arrest, burn, fall])
        selected = pane.selected
        assert selected is not None and selected.number == fall
        assert pane.cursor_row == 2


async def test_rows_drawn_before_the_columns_grew_are_drawn_again(world: DispatchService) -> None:
    """Rows drawn before the table measured them (columns still as wide as their headers) are
    drawn again at the widths the columns grow to, not kept from the cache."""

    class OnePane(App[None]):
        def compose(self) -> ComposeResult:
            yield Hospitals(dict(DEFAULT_STATUS_STYLES))

    app = OnePane()
    async with app.run_test(size=(80, 10)) as pilot:
        pane = app.query_one(Hospitals)
        pane.sync(world.hospitals(), full=True, now=world.now())
        early = [pane.render_line(y).text for y in range(pane.row_count + 1)]
        assert not any("trauma, stroke" in line for line in early)  # drawn at header widths
        await pilot.pause()
        await pilot.pause()
        shown = screen_text(app)
        assert "trauma, stroke, stemi, burns" in shown, shown
