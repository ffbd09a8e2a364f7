"""The map on the desk and the board, headless on a real PostgreSQL: what it shows, its keys,
that it follows the desk live, that a stale position is drawn and listed as such, and that it
reads the streets of its view (a bounding box) off the UI thread, once per box.

The street lines are a small grid of the tests' own around the demo area (`map_helpers`), put
in and taken out by each test that needs them, whatever else the gazetteer holds. The line under
the map names the address nearest what it is centred on, from Riverton's address points (the
`riverton` fixture), read off the UI thread and once per position.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dispatch_tui.app import DispatchApp
from dispatch_tui.rules.addresses import AddressMatch
from dispatch_tui.rules.errors import Unavailable
from dispatch_tui.rules.views import Box
from dispatch_tui.screens.board import BoardScreen
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.widgets.map_canvas import call_key, unit_key
from dispatch_tui.widgets.map_view import STREETS_UP_TO_METRES, MapView
from tests.desk_helpers import desk, screen_of, until
from tests.helpers import new_call
from tests.map_helpers import EAST, NORTH, SOUTH, WEST, grid_lines, put_streets

SIZE = (160, 48)


@pytest.fixture
def grid(world: DispatchService, engine: Engine) -> Iterator[list[tuple[str, list[list[float]]]]]:
    """The street grid as the gazetteer's only streets, for the test's length (after `world`
    has emptied the gazetteer)."""
    lines = grid_lines()
    put_streets(engine, lines)
    yield lines
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM street_segments"))


class CountingReads(DispatchService):
    """The real service, counting the street boxes it was asked for."""

    def __init__(self, world: DispatchService) -> None:
        super().__init__(world.sessions, desk=world.desk)
        self.boxes: list[Box] = []

    def streets(self, box: Box, limit: int = 50_000) -> Any:
        self.boxes.append(box)
        return super().streets(box, limit)


class CountingAddresses(DispatchService):
    """The real service, counting the nearest addresses it was asked for and on which
    threads; `gate`, while clear, holds every such read (the database slow to answer)."""

    def __init__(self, world: DispatchService) -> None:
        super().__init__(world.sessions, desk=world.desk)
        self.asked: list[tuple[float, float]] = []
        self.threads: set[threading.Thread] = set()
        self.gate = threading.Event()
        self.gate.set()

    def nearest_address(self, lat: float | str, lon: float | str) -> AddressMatch | None:
        self.asked.append((float(lat), float(lon)))
        self.threads.add(threading.current_thread())
        self.gate.wait()
        return super().nearest_address(lat, lon)


def map_of(app: DispatchApp) -> MapView:
    return screen_of(app).map if app.mode == "desk" else board_of(app).map


def board_of(app: DispatchApp) -> BoardScreen:
    assert isinstance(app.desk, BoardScreen)
    return app.desk


def drawn(app: DispatchApp) -> str:
    picture = map_of(app).picture
    return picture.text() if picture is not None else ""


def said(app: DispatchApp, widget: str) -> str:
    return str(map_of(app).query_one(f"#{widget}").render())


def streets_read(app: DispatchApp) -> bool:
    """No street read under way (the listener's worker runs for ever: never wait for all)."""
    return not any(w.group == "streets" and not w.is_finished for w in app.workers)


def units_shown(app: DispatchApp) -> bool:
    return len(screen_of(app).units.rows_by_key) == 12


def addresses_read(app: DispatchApp) -> bool:
    """No nearest address being read (nor asked for and not yet read)."""
    asking = any(w.group == "addresses" and not w.is_finished for w in app.workers)
    return not asking and map_of(app)._asking is None


async def on_unit(app: DispatchApp, pilot: Any, code: str) -> None:
    """The map opened from the units pane, `code` selected there: the map follows it."""
    screen = screen_of(app)
    await until(pilot, lambda: units_shown(app))
    unit = next(u for u in screen.units.rows_by_key.values() if u.code == code)
    screen.units.focus()
    assert screen.units.select_id(unit.id)
    await pilot.press("m")
    assert screen.map.selected == unit_key(code)


# 30 m north of 456 W Maple St, and 14 m north of 457 across the street (Riverton's points).
MAPLE_456 = (40.0152, -83.022813)
NORTH_OF_456 = (40.01547, -83.022813)
NORTH_OF_457 = (40.01493, -83.022813)


# -- reading the streets --------------------------------------------------------------------------


def test_streets_are_read_by_bounding_box_with_their_count(
    world: DispatchService, grid: list[Any]
) -> None:
    everything = world.streets(Box(SOUTH - 1, NORTH + 1, WEST - 1, EAST + 1))
    assert everything.total == len(grid) and not everything.truncated
    # A box around the middle of the area: only the blocks that cross it.
    middle = Box(40.010, 40.020, -83.010, -83.000)
    found = world.streets(middle)
    assert 0 < len(found.rows) < len(grid)
    assert all(street.box.overlaps(middle) for street in found.rows)
    assert all(len(street.coords) == 2 for street in found.rows)
    # Cut on purpose: it says how many there were.
    cut = world.streets(Box(SOUTH - 1, NORTH + 1, WEST - 1, EAST + 1), limit=5)
    assert len(cut.rows) == 5 and cut.total == len(grid) and cut.truncated
    assert world.streets(Box(10.0, 10.1, 10.0, 10.1)).total == 0


def test_a_view_beyond_the_earth_is_refused_in_one_line(world: DispatchService) -> None:
    from dispatch_tui.rules.errors import InvalidInput

    with pytest.raises(InvalidInput, match="latitudes -90 and 90"):
        world.streets(Box(80.0, 95.0, 0.0, 1.0))


def test_a_board_reads_the_streets_on_its_read_only_login(
    world: DispatchService, grid: list[Any], sessions: Any
) -> None:
    board = ReadService(sessions, desk="board")
    assert board.streets(Box(SOUTH, NORTH, WEST, EAST)).total == len(grid)


# -- the desk -------------------------------------------------------------------------------------


async def test_m_shows_the_map_in_the_panes_place_and_m_again_the_panes(
    world: DispatchService, database_url: str, grid: list[Any]
) -> None:
    number = new_call(world, nature="Cardiac arrest")
    world.hospital_status("grace", "MERCY", "DIVERSION")
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: units_shown(app) and number in str(screen.pending.rows_by_key))
        await until(pilot, lambda: screen.pending.selected is not None)
        await pilot.press("m")
        await until(pilot, lambda: "M1·A" in drawn(app))
        assert not screen.query_one("#panes").display and screen.map.has_focus
        text = drawn(app)
        # Every unit by its code and state, the call by its priority (selected: in brackets,
        # with its number), the hospitals with their status by letter.
        for code in ("M1", "M2", "M3", "M4", "M5", "M6", "B1", "B2", "B3", "B4", "B5", "B6"):
            assert f"{code}·A" in text or code in said(app, "map-notes"), code
        assert f"[P1 {number}]" in text
        assert "+MERCY·D" in text and "+EAST·O" in text
        # The street grid, drawn in braille and named where there is room.
        await until(pilot, lambda: "streets: " in said(app, "map-head"))
        assert any(0x2801 <= ord(ch) <= 0x28FF for ch in drawn(app))
        assert map_of(app).picture is not None and map_of(app).picture.names  # type: ignore[union-attr]
        assert "A avail" in said(app, "map-legend")
        await pilot.press("m")
        await until(pilot, lambda: screen.query_one("#panes").display)
        assert not screen.map.display and screen.pending.has_focus


async def test_c_centres_on_the_call_selected_in_the_panes(
    world: DispatchService, database_url: str
) -> None:
    first = new_call(world, nature="Cardiac arrest")
    second = new_call(world, nature="Fall", priority=3, place="Eastside Stadium")
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: len(screen.pending.rows_by_key) == 2)
        screen.pending.focus()
        await pilot.press("down")  # the P3 call at the stadium
        await until(pilot, lambda: screen.pending.selected is not None)
        assert screen.pending.selected.number == second  # type: ignore[union-attr]
        await pilot.press("m", "c")  # two keys from the panes to the call, centred
        view = screen.map.view
        stadium = world.call(second)
        assert view is not None and (view.lat, view.lon) == (stadium.lat, stadium.lon)
        col, row = screen.map.picture.placed[call_key(second)]  # type: ignore[union-attr]
        assert (col, row) == view.cell(stadium.lat, stadium.lon)  # type: ignore[arg-type]
        assert f"[P3 {second}]" in drawn(app)
        assert f"centred on {second} P3 Fall" in said(app, "map-head")
        # Zoom and pan move the view; f fits everything again.
        metres = view.metres
        await pilot.press("plus")
        assert screen.map.view.metres == metres / 2  # type: ignore[union-attr]
        await pilot.press("minus", "minus")
        assert screen.map.view.metres == metres * 2  # type: ignore[union-attr]
        await pilot.press("l")
        assert screen.map.view.lon > stadium.lon  # type: ignore[union-attr,operator]
        await pilot.press("k")
        assert screen.map.view.lat > stadium.lat  # type: ignore[union-attr,operator]
        await pilot.press("f")
        assert {call_key(first), call_key(second)} <= set(screen.map.picture.placed)  # type: ignore[union-attr]
        assert not screen.map.picture.outside  # type: ignore[union-attr]


async def test_next_call_centres_on_each_open_call_and_selects_it_in_its_pane(
    world: DispatchService, database_url: str
) -> None:
    p3 = new_call(world, nature="Fall", priority=3, place="Eastside Stadium")
    p1 = new_call(world, nature="Cardiac arrest")
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: len(screen.pending.rows_by_key) == 2)
        await pilot.press("m")
        assert screen.map.selected == call_key(p1)  # the panes' selection: the top call
        await pilot.press("right_square_bracket")  # the next, less urgent
        assert screen.map.selected == call_key(p3)
        assert screen.pending.selected.number == p3  # type: ignore[union-attr]
        await pilot.press("right_square_bracket")  # round again to the most urgent
        assert screen.map.selected == call_key(p1)
        await pilot.press("left_square_bracket")
        assert screen.map.selected == call_key(p3)
        await pilot.press("m")  # back on the panes, the call the map showed is selected
        assert screen.pending.has_focus and screen.pending.selected.number == p3  # type: ignore[union-attr]


async def test_the_map_follows_the_desk_live(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    number = new_call(world)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: units_shown(app))
        await pilot.press("m")
        await until(pilot, lambda: "M1·A" in drawn(app))
        world.dispatch("bob", number, ["M1"])  # another desk dispatches
        await until(pilot, lambda: "M1·D" in drawn(app) and "(P1)" in drawn(app))
        # The unit moves (a position report): the map draws it where it is now.
        mall = world.call(number)
        world.locate_unit("bob", "M1", mall.lat, mall.lon)  # type: ignore[arg-type]
        view = map_of(app).view
        assert view is not None
        await until(
            pilot,
            lambda: (
                map_of(app).picture is not None
                and abs(
                    map_of(app).picture.placed.get(unit_key("M1"), (999, 999))[0]  # type: ignore[union-attr]
                    - view.cell(mall.lat, mall.lon)[0]  # type: ignore[arg-type]
                )
                <= 12
            ),
        )


async def test_c_on_a_unit_follows_it_as_it_moves_until_a_pan(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await on_unit(app, pilot, "M1")
        await pilot.press("c")
        assert "following M1" in said(app, "map-head")
        mall = world.call(number)
        assert mall.lat is not None and mall.lon is not None
        # A position report halfway to the call: the view is centred on it again, its zoom kept.
        await pilot.press("plus")
        metres = map_of(app).view.metres  # type: ignore[union-attr]
        start = map_of(app).view
        assert start is not None
        halfway = ((start.lat + mall.lat) / 2, (start.lon + mall.lon) / 2)
        await asyncio.to_thread(world.locate_unit, "bob", "M1", *halfway)
        await until(pilot, lambda: (map_of(app).view.lat, map_of(app).view.lon) == halfway)  # type: ignore[union-attr]
        assert map_of(app).view.metres == metres  # type: ignore[union-attr]
        assert "following M1 dispatched" in said(app, "map-head")  # said as it is, zoomed too
        assert map_of(app).picture.placed[unit_key("M1")] == map_of(app).view.cell(*halfway)  # type: ignore[union-attr]
        # A pan ends it: the next report moves the unit, not the view.
        await pilot.press("l")
        panned = map_of(app).view
        await asyncio.to_thread(world.locate_unit, "bob", "M1", mall.lat, mall.lon)
        await until(pilot, lambda: "following" not in said(app, "map-head"))
        await pilot.pause(0.3)
        assert map_of(app).view == panned and map_of(app).following is None


async def test_a_stale_position_is_drawn_and_listed_as_stale(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE units SET position_at = now() - interval '23 minutes' WHERE code = 'M3'")
        )
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: units_shown(app))
        await pilot.press("m")
        await until(pilot, lambda: "M3·A?" in drawn(app))
        assert "M1·A?" not in drawn(app) and "M1·A" in drawn(app)
        stale = said(app, "map-stale")
        assert "STALE" in stale and "M3 position 23 min old" in stale
        assert "M1" not in stale
        assert "? stale" in said(app, "map-legend")


async def test_the_streets_are_read_per_box_off_the_ui_thread(
    world: DispatchService, database_url: str, grid: list[Any]
) -> None:
    counting = CountingReads(world)
    new_call(world)
    app = desk(counting, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: units_shown(app))
        await pilot.press("m")
        await until(pilot, lambda: "streets: " in said(app, "map-head"))
        assert len(counting.boxes) == 1  # the view fitting everything, and half a view more
        held = counting.boxes[0]

        def view_box() -> Box:
            view = map_of(app).view
            assert view is not None
            return view.box()

        # Nearer on the call, and pans while the view stays in the box read: nothing is read.
        await pilot.press("c", "plus")
        presses = 0
        while held.contains(view_box()):
            await until(pilot, lambda: streets_read(app))
            assert len(counting.boxes) == 1
            await pilot.press("l")
            presses += 1
            assert presses < 100
        assert presses >= 2
        # Out of it: the streets around the new view are read, once.
        await until(pilot, lambda: len(counting.boxes) == 2)
        await until(pilot, lambda: "reading the streets" not in said(app, "map-head"))
        assert "no streets here" in said(app, "map-head")  # east of the grid
        assert counting.boxes[1].contains(view_box())
        # Back to everything: that box was kept, nothing is read.
        await pilot.press("f")
        await until(pilot, lambda: streets_read(app))
        assert held.contains(view_box()) and len(counting.boxes) == 2


async def test_too_far_out_the_streets_are_left_out_and_it_says_so(
    world: DispatchService, database_url: str, grid: list[Any]
) -> None:
    counting = CountingReads(world)
    app = desk(counting, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: units_shown(app))
        await pilot.press("m")
        await until(pilot, lambda: "M1·A" in drawn(app))
        while map_of(app).view.metres <= STREETS_UP_TO_METRES:  # type: ignore[union-attr]
            await pilot.press("minus")
        assert "streets left out at this zoom" in said(app, "map-head")
        await until(pilot, lambda: streets_read(app))
        asked = len(counting.boxes)
        await pilot.press("minus", "l", "j")
        await until(pilot, lambda: streets_read(app))
        assert len(counting.boxes) == asked
        assert not any(0x2801 <= ord(ch) <= 0x28FF for ch in drawn(app))


# -- the line under the map: what it is centred on, and the address nearest it ---------------------


async def test_the_unit_followed_is_named_by_its_nearest_address_read_once_per_position(
    riverton: DispatchService, database_url: str, engine: Engine
) -> None:
    service = CountingAddresses(riverton)
    number = new_call(riverton, nature="Fall", priority=3, place="", location="456 W Maple St")
    riverton.dispatch("alice", number, ["M3"])
    riverton.unit_status("alice", "M3", "EN_ROUTE")  # the crew reports en route
    riverton.locate_unit("alice", "M3", *NORTH_OF_456)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE units SET position_at = now() - interval '2 minutes' WHERE code = 'M3'")
        )
    app = desk(service, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await on_unit(app, pilot, "M3")
        await until(pilot, lambda: "near " in said(app, "map-info"))
        assert said(app, "map-info") == (
            "M3 EN ROUTE · near 456 W Maple St, Riverton (30 m) · position 2 min old"
        )
        # Read on a worker's thread, never the UI's.
        assert service.asked == [NORTH_OF_456]
        assert threading.main_thread() not in service.threads
        # The desk's data changes and the map is drawn again: the unit did not move, nothing
        # is read again.
        riverton.hospital_status("grace", "MERCY", "DIVERSION")
        await until(pilot, lambda: "+MERCY·D" in drawn(app))
        # Nor when it reports a position a metre away (the same ten metres): only its age.
        riverton.locate_unit("alice", "M3", NORTH_OF_456[0] + 0.00001, NORTH_OF_456[1])
        await until(pilot, lambda: "position 0 min old" in said(app, "map-info"))
        assert "near 456 W Maple St, Riverton (31 m)" in said(app, "map-info")
        assert addresses_read(app) and len(service.asked) == 1
        # Across the street: read once more, and named by the new address.
        riverton.locate_unit("alice", "M3", *NORTH_OF_457)
        await until(pilot, lambda: "457" in said(app, "map-info"))
        assert said(app, "map-info") == (
            "M3 EN ROUTE · near 457 W Maple St, Riverton (14 m) · position 0 min old"
        )
        assert service.asked == [NORTH_OF_456, NORTH_OF_457]
        # Back where it was: known already.
        riverton.locate_unit("alice", "M3", *NORTH_OF_456)
        await until(pilot, lambda: "(30 m)" in said(app, "map-info"))
        assert len(service.asked) == 2


async def test_a_call_is_said_as_typed_and_by_its_nearest_address_when_unverified(
    riverton: DispatchService, database_url: str
) -> None:
    exact = new_call(riverton, nature="Cardiac arrest", place="", location="456 W Maple St")
    between = new_call(riverton, nature="Fall", priority=3, place="", location="459 w maple")
    assert not riverton.call(between).location_verified  # no 459: placed between 457 and 469
    app = desk(riverton, database_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: len(screen.pending.rows_by_key) == 2)
        await pilot.press("m")  # on the panes' selection: the top call, verified
        assert screen.map.selected == call_key(exact)
        await until(pilot, lambda: addresses_read(app))
        # At the address typed: nothing more to say of where it is.
        assert said(app, "map-info") == f"{exact} P1 Cardiac arrest · 456 W Maple St"
        await pilot.press("right_square_bracket")
        await until(pilot, lambda: "near " in said(app, "map-info"))
        assert said(app, "map-info") == (
            f"{between} P3 Fall · 459 w maple · UNVERIFIED · near 457 W Maple St, Riverton (9 m)"
        )


async def test_the_map_is_drawn_while_the_nearest_address_is_being_read(
    riverton: DispatchService, database_url: str
) -> None:
    service = CountingAddresses(riverton)
    service.gate.clear()  # the database is slow to answer
    app = desk(service, database_url)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await on_unit(app, pilot, "M3")
            await until(pilot, lambda: service.asked)
            assert said(app, "map-info").startswith("M3 AVAILABLE · finding the nearest address…")
            # Meanwhile the desk goes on: a unit's move is drawn, the line keeps its place.
            view = map_of(app).view
            assert view is not None
            before = map_of(app).picture.placed[unit_key("M1")]  # type: ignore[union-attr]
            riverton.locate_unit("alice", "M1", *MAPLE_456)
            await until(
                pilot,
                lambda: map_of(app).picture.placed.get(unit_key("M1")) != before,  # type: ignore[union-attr]
            )
            assert "finding the nearest address…" in said(app, "map-info")
            assert len(service.asked) == 1  # one read at a time
            service.gate.set()
            await until(pilot, lambda: "near " in said(app, "map-info"))
            assert "finding" not in said(app, "map-info")
    finally:
        service.gate.set()


class FailingAddresses(DispatchService):
    """The real service, whose nearest-address reads fail as a lost server's do."""

    def __init__(self, world: DispatchService) -> None:
        super().__init__(world.sessions, desk=world.desk)
        self.asked = 0

    def nearest_address(self, lat: float | str, lon: float | str) -> AddressMatch | None:
        self.asked += 1
        raise Unavailable("the database is unreachable")


async def test_an_address_that_cannot_be_read_is_said_under_the_map(
    world: DispatchService, database_url: str
) -> None:
    service = FailingAddresses(world)
    app = desk(service, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await on_unit(app, pilot, "M1")
        await until(pilot, lambda: "not read" in said(app, "map-info"))
        assert "M1 AVAILABLE · nearest address not read: the database is unreachable" in said(
            app, "map-info"
        )
        assert "M1·A" in drawn(app)
        # Not asked again for the same position on every redraw; again when chosen anew.
        await pilot.press("plus")
        await until(pilot, lambda: addresses_read(app))
        assert service.asked == 1
        await pilot.press("c")
        await until(pilot, lambda: service.asked == 2)


# -- the board --------------------------------------------------------------------------------------


def board(world: DispatchService, url: str) -> DispatchApp:
    from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
    from dispatch_tui.screens.live import DeskContext

    options = DeskOptions(dict(DEFAULT_AGING), dict(DEFAULT_STATUS_STYLES), clock=False)
    context = DeskContext(world, world.operator("grace"), "test", url, options)
    return DispatchApp(context, mode="board")


async def test_the_board_shows_the_map_in_the_active_calls_place(
    world: DispatchService, database_url: str, grid: list[Any]
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M2"])
    app = board(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = board_of(app)
        await until(pilot, lambda: len(screen.units) == 12)
        await pilot.press("m")
        await until(pilot, lambda: "M2·D" in drawn(app))
        assert not screen.query_one("#board-active").display
        assert "(P1)" in drawn(app)
        # Nothing is selected on a board: no `c`; `]` goes to the call. Every key it offers
        # only looks: none changes anything.
        assert screen.map.check_action("centre", ()) is False
        assert said(app, "map-info") == "nothing selected: ] centres on the next call"
        actions = {active.binding.action for active in app.active_bindings.values()}
        looking = {"zoom(2)", "zoom(0.5)", "pan(-1, 0)", "pan(1, 0)", "pan(0, -1)", "pan(0, 1)"}
        looking |= {"next_call(1)", "next_call(-1)", "fit", "map", "refresh_kpis", "quit"}
        looking |= {"command_palette", "app.focus_next", "app.focus_previous", "screen.copy_text"}
        assert actions <= looking, actions - looking
        await pilot.press("right_square_bracket")
        assert screen.map.selected == call_key(number)
        assert f"[(P1) {number}]" in drawn(app)
        assert said(app, "map-info").startswith(f"{number} P1 Chest pain · Riverton Mall")
        await pilot.press("m")
        assert screen.query_one("#board-active").display and not screen.map.display


async def test_a_crowd_is_counted_and_named_under_the_map_never_dropped(
    world: DispatchService, database_url: str
) -> None:
    for _ in range(15):
        new_call(world, nature="Chest pain", priority=2)
    app = desk(world, database_url)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = screen_of(app)
        await until(pilot, lambda: len(screen.pending.rows_by_key) == 15)
        await pilot.press("m", "c")  # on the top call, all fifteen at the mall
        picture = map_of(app).picture
        assert picture is not None
        shown = {k for k in picture.placed if k.startswith("call:")}
        hidden = [c for crowd in picture.crowded.values() for c in crowd if c.startswith("P2 ")]
        assert shown and hidden and len(shown) + len(hidden) == 15
        (crowd,) = picture.crowded.values()  # one place: one crowd, on its most urgent
        assert f"+{len(crowd)}" in drawn(app)
        notes = said(app, "map-notes")
        # The crowd is said with the calls' numbers, as many as fit, and how many more.
        assert f"+{len(hidden)}: P2 C-" in notes and "more" in notes
        listed = [h for h in hidden if h in notes]
        assert listed and len(listed) < len(hidden)
        assert f"… {len(hidden) - len(listed)} more" in notes


async def test_the_desks_keys_list_the_maps(world: DispatchService, database_url: str) -> None:
    from dispatch_tui.screens.help import HelpScreen

    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: units_shown(app))
        sections = dict(screen_of(app).help_sections())
        keys = {b.key: b.description for b in sections["Map"]}
        assert keys["plus,equals_sign"] == "Zoom in" and keys["c"] == "Centre"
        assert any(b.key == "m" and b.description == "Map" for b in sections["Anywhere"])
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
