"""The intake form's location completed from the gazetteer, headless on a real PostgreSQL: an
address chosen from the list goes with its position, verified; one not found is taken and said
UNVERIFIED on the pending pane and in the call's record."""

from __future__ import annotations

from textual.widgets import Input, OptionList

from dispatch_tui.screens.intake import IntakeScreen
from dispatch_tui.screens.record import RecordScreen
from dispatch_tui.service.dispatch_service import DispatchService
from tests.desk_helpers import desk, pending_numbers, screen_of, until

SIZE = (160, 48)


def offered(app) -> list[str]:  # type: ignore[no-untyped-def]
    """The addresses the form lists now."""
    shown = app.screen.query_one("#completions", OptionList)
    if shown.has_class("hidden"):
        return []
    return [str(shown.get_option_at_index(i).prompt) for i in range(shown.option_count)]


def said(app) -> str:  # type: ignore[no-untyped-def]
    return str(app.screen.query_one("#location-info").render())


async def open_form_at_location(app, pilot) -> None:  # type: ignore[no-untyped-def]
    """The intake form, a nature and a priority typed, the focus on the location field."""
    await until(pilot, lambda: screen_of(app).units.row_count == 12)
    await pilot.press("n")
    await until(pilot, lambda: isinstance(app.screen, IntakeScreen))
    await pilot.press(*"Fall", "enter", "3", "enter", "enter", "enter")
    await until(pilot, lambda: app.screen.focused is app.screen.query_one("#location", Input))


async def test_an_address_chosen_as_it_is_typed_takes_its_position(
    riverton: DispatchService, database_url: str
) -> None:
    app = desk(riverton, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await open_form_at_location(app, pilot)
        await pilot.press(*"456 w map")
        await until(pilot, lambda: offered(app) == ["456 W Maple St, Riverton"])
        assert "Enter takes 456 W Maple St, Riverton" in said(app)
        await pilot.press("down", "enter")  # the first address, taken; on to the caller
        form = app.screen
        assert form.query_one("#location", Input).value == "456 W Maple St, Riverton"
        assert form.focused is form.query_one("#caller", Input)
        assert offered(app) == []
        assert "in the gazetteer: 456 W Maple St, Riverton (40.01520, -83.02281)" in said(app)
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(pending_numbers(app)) == 1)
    (call,) = riverton.calls()
    assert call.location_text == "456 W Maple St, Riverton" and call.location_verified
    assert (call.lat, call.lon) == (40.0152, -83.022813)


async def test_enter_alone_takes_the_one_address_the_typing_begins(
    riverton: DispatchService, database_url: str
) -> None:
    """`456 w map` and Enter: the one address listed that begins so is taken (a dispatcher
    need not press ↓ first); with several such, Enter moves on with the text as typed."""
    app = desk(riverton, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await open_form_at_location(app, pilot)
        await pilot.press(*"456 w map")
        await until(pilot, lambda: offered(app) == ["456 W Maple St, Riverton"])
        await pilot.press("enter")
        form = app.screen
        assert form.query_one("#location", Input).value == "456 W Maple St, Riverton"
        assert form.chosen is not None and form.focused is form.query_one("#caller", Input)
    app = desk(riverton, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await open_form_at_location(app, pilot)
        await pilot.press(*"456 ")
        await until(pilot, lambda: len(offered(app)) > 1)
        assert "↓ ↑ choose" in said(app)
        await pilot.press("enter")
        form = app.screen
        assert form.query_one("#location", Input).value == "456 " and form.chosen is None
        assert form.focused is form.query_one("#caller", Input)


async def test_escape_closes_the_list_and_typing_on_forgets_the_address_taken(
    riverton: DispatchService, database_url: str
) -> None:
    app = desk(riverton, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await open_form_at_location(app, pilot)
        await pilot.press(*"magn")
        await until(pilot, lambda: len(offered(app)) == 2)  # W and E Magnolia St: streets
        await pilot.press("escape")
        assert offered(app) == [] and isinstance(app.screen, IntakeScreen)  # the form stays
        await pilot.press("down", "enter")  # nothing listed: Enter moves on as ever
        form = app.screen
        assert form.focused is form.query_one("#caller", Input)
        assert form.chosen is None


async def test_an_address_not_found_is_taken_and_shown_unverified(
    riverton: DispatchService, database_url: str
) -> None:
    app = desk(riverton, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await open_form_at_location(app, pilot)
        await pilot.press(*"12 Nowhere Rd")
        await until(pilot, lambda: "not in the gazetteer" in said(app))
        assert offered(app) == []
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(pending_numbers(app)) == 1)
        pane = screen_of(app).pending
        row = pane.get_row_at(0)
        assert "UNVERIFIED" in [cell.plain for cell in row]
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        record = app.screen
        await until(
            pilot, lambda: "UNVERIFIED LOCATION" in str(record.query_one("#record-head").render())
        )
    (call,) = riverton.calls()
    assert (call.location_verified, call.lat) == (False, None)
