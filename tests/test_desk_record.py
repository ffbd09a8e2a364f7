"""The call record on the desk: open, follow live, note, close with a disposition, cancel with a
reason, find, the intake form that keeps a failed call, and the last ALS unit kept for a P1.

Headless desks (`App.run_test`) on the real database; every wait is on a condition.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from textual import events

from dispatch_tui.screens.ask import AskScreen
from dispatch_tui.screens.confirm import ConfirmScreen
from dispatch_tui.screens.desk import DeskScreen
from dispatch_tui.screens.find import FindScreen
from dispatch_tui.screens.intake import IntakeScreen
from dispatch_tui.screens.pick import PickScreen
from dispatch_tui.screens.record import RecordScreen
from dispatch_tui.service.dispatch_service import DispatchService
from tests.desk_helpers import (
    desk,
    feedback,
    pending_numbers,
    screen_of,
    status_line,
    unit_status,
    until,
)
from tests.helpers import new_call

SIZE = (160, 48)


def timeline(app: object) -> str:
    screen = app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, RecordScreen)
    return "\n".join(line.text for line in screen.query_one("#record-timeline").lines)


async def test_the_record_opens_from_the_bar_and_follows_the_call_live(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world, caller_name="Dana", caller_phone="555-0199")
    world.add_note("bob", number, "first note, from another desk")
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [number])
        await pilot.press("colon", *f"call show {number}", "enter")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        await until(pilot, lambda: "first note, from another desk" in timeline(app))
        head = str(app.screen.query_one("#record-head").render())
        assert number in head and "Dana" in head and "555-0199" in head
        # Another desk writes: the open record follows.
        world.add_note("bob", number, "second note, while it is open")
        world.dispatch("bob", number, ["M2"])
        await until(pilot, lambda: "second note, while it is open" in timeline(app))
        await until(pilot, lambda: "M2 dispatched" in timeline(app))
        # A note from the record itself: N, the line, Enter.
        await pilot.press("N")
        await until(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press(*"caller [b]says[/b] hurry", "enter")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        await until(pilot, lambda: "caller [b]says[/b] hurry" in timeline(app))  # literal
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DeskScreen))


async def test_close_asks_for_a_disposition_and_escape_changes_nothing(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    world.unit_status("alice", "M1", "ON_SCENE")
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: unit_status(app, "M1") == "ON_SCENE")
        await pilot.press("colon", *f"call show {number}", "enter")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        await until(pilot, lambda: "M1" in timeline(app))
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, PickScreen))
        title = str(app.screen.query_one(".modal-title").render())
        assert f"Close {number}" in title and "clears M1" in title
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        assert world.call(number).status == "ON_SCENE"
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, PickScreen))
        await pilot.press("down", "enter")  # the second disposition
        await until(pilot, lambda: world.call(number).status == "CLOSED")
    assert world.call(number).disposition == "treated and released"


async def test_cancel_asks_why_and_names_what_it_releases(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"], add=False)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: unit_status(app, "M1") == "EN_ROUTE")
        await pilot.press("colon", *f"call show {number}", "enter")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        await until(pilot, lambda: "M1" in timeline(app))
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, AskScreen))
        question = str(app.screen.query_one(".modal-title").render())
        assert f"Cancel {number}" in question and "releases M1" in question
        await pilot.press("enter")  # no reason yet: it waits
        assert isinstance(app.screen, AskScreen)
        await pilot.press(*"duplicate of an earlier call", "enter")
        await until(pilot, lambda: world.call(number).status == "CANCELLED")
    (row,) = [a for a in world.audit(number) if a.action == "call_cancelled"]
    assert row.details["reason"] == "duplicate of an earlier call"


async def test_find_opens_the_record_of_an_ended_call(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world, place="", location="12 Elm Street")
    world.cancel_call("alice", number, "caller hung up")
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_of(app).units.row_count == 12)
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, FindScreen))
        await pilot.press(*"elm st")
        found = app.screen.query_one("#found")
        await until(pilot, lambda: found.option_count == 1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        await until(pilot, lambda: "call cancelled: caller hung up" in timeline(app))
        # An ended call: re-open is offered, with a reason.
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press(*"caller rang back", "enter")
        await until(pilot, lambda: world.call(number).status == "RECEIVED")
        await pilot.press("escape")
        await until(pilot, lambda: pending_numbers(app) == [number])


async def test_a_call_that_cannot_be_saved_stays_in_the_form_and_is_taken_once(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_of(app).units.row_count == 12)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, IntakeScreen))
        form = app.screen
        assert isinstance(form, IntakeScreen)
        await until(pilot, lambda: form.answered is not None)  # the answer time, recorded
        answered = form.answered
        assert answered is not None
        with engine.begin() as conn:  # the save will be refused
            conn.execute(text("UPDATE staff SET active = false WHERE username = 'alice'"))
        await pilot.press(*"Fall", "enter", "3", "enter", "enter", *"riverside", "ctrl+s")
        await until(pilot, lambda: "alice" in str(form.query_one("#error").render()))
        assert app.screen is form and form.query_one("#nature").value == "Fall"
        assert world.calls() == []
        with engine.begin() as conn:
            conn.execute(text("UPDATE staff SET active = true WHERE username = 'alice'"))
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, DeskScreen))
        await until(pilot, lambda: len(pending_numbers(app)) == 1)
    (call,) = world.calls()
    assert call.nature == "Fall" and call.received_at == answered.at


async def test_ctrl_s_in_the_same_burst_as_the_last_keys_takes_them(
    world: DispatchService, database_url: str
) -> None:
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_of(app).units.row_count == 12)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, IntakeScreen))
        keys = [*"Seizure", "enter", "2", "enter", "enter", *"riverside"]
        for key in keys:  # all at once, as a terminal delivers a fast typist's keys
            app.post_message(events.Key(key, "\r" if key == "enter" else key))
        app.post_message(events.Key("ctrl+s", None))
        await until(pilot, lambda: len(pending_numbers(app)) == 1)
    (call,) = world.calls()
    assert (call.nature, call.priority) == ("Seizure", 2)


async def test_the_last_als_unit_is_not_sent_to_a_p4_without_asking(
    world: DispatchService, database_url: str
) -> None:
    urgent = new_call(world, priority=1, nature="Cardiac arrest")
    minor = new_call(world, priority=4, nature="Minor cut")
    for unit in world.units():  # every ALS unit but M1 busy elsewhere
        if unit.capability == "ALS" and unit.code != "M1":
            world.unit_status("alice", unit.code, "OUT_OF_SERVICE")
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [urgent, minor])
        pane = screen_of(app).pending
        pane.focus()
        pane.move_cursor(row=1)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, PickScreen))
        options = app.screen.query_one("OptionList")
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        for _ in range(ids.index("M1")):
            await pilot.press("down")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        question = str(app.screen.query_one(".modal-title").render())
        assert "last ALS unit" in question and urgent in question
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, DeskScreen))
        assert world.call(minor).active_units == ()


async def test_a_new_call_above_the_selection_is_said(
    world: DispatchService, database_url: str
) -> None:
    first, second = new_call(world, priority=3), new_call(world, priority=3)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [first, second])
        pane = screen_of(app).pending
        pane.focus()
        pane.move_cursor(row=1)
        urgent = new_call(world, priority=1, nature="Stroke")
        await until(pilot, lambda: pending_numbers(app)[0] == urgent)
        await until(pilot, lambda: urgent in str(status_line(app).render()))
        assert "above the selection" in str(status_line(app).render())
        assert feedback(app) == ""  # the feedback line is the answers', untouched


async def test_the_call_keys_record_note_edit_and_first_last(
    world: DispatchService, database_url: str
) -> None:
    first = new_call(world, priority=1, nature="Stroke")
    second = new_call(world, priority=3, nature="Fall", caller_name="Ann")
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [first, second])
        pane = screen_of(app).pending
        pane.focus()
        await pilot.press("G")  # the last row
        assert pane.selected is not None and pane.selected.number == second
        await pilot.press("g")  # the first
        assert pane.selected is not None and pane.selected.number == first
        await pilot.press("end")
        assert pane.selected is not None and pane.selected.number == second
        # Enter: the record.
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        await until(pilot, lambda: "call taken: P3 Fall" in timeline(app))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DeskScreen))
        # N: a note, in three keys and the text.
        await pilot.press("N")
        await until(pilot, lambda: isinstance(app.screen, AskScreen))
        await pilot.press(*"second caller on line 2", "enter")
        await until(pilot, lambda: "note added" in feedback(app))
        # u: the form, filled in; only what changed is sent.
        await pilot.press("u")
        await until(pilot, lambda: isinstance(app.screen, IntakeScreen))
        form = app.screen
        assert form.query_one("#nature").value == "Fall"
        assert form.query_one("#caller").value == "Ann"
        form.query_one("#priority").value = "1"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: world.call(second).priority == 1)
        await until(
            pilot, lambda: pending_numbers(app) == [first, second]
        )  # re-sorted: older first
    record = world.record(second)
    texts = [e.text for e in record.timeline]
    assert "second caller on line 2" in texts
    assert "priority 3 → 1 by alice" in texts
    assert record.call.caller_name == "Ann"  # untouched


async def test_a_paramedic_desk_has_no_call_keys_it_may_not_use(
    world: DispatchService, database_url: str
) -> None:
    number = new_call(world)
    app = desk(world, database_url, user="carol")
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [number])
        pane = screen_of(app).pending
        pane.focus()
        await pilot.press("N")
        await until(pilot, lambda: "may add to a call's narrative" in feedback(app))
        assert isinstance(app.screen, DeskScreen)
        await pilot.press("enter")  # the record is for everyone
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        assert not app.screen.check_action("act", ("note",))
        assert not app.screen.check_action("act", ("edit",))
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, DeskScreen))
        await pilot.press("n")  # a paramedic takes no calls: said, not silent
        await until(pilot, lambda: "only a dispatcher may do that" in feedback(app))
        assert isinstance(app.screen, DeskScreen)
        await pilot.press("colon", *"en m1")  # an n typed in the bar is the bar's
        bar = screen_of(app).query_one("CommandBar")
        await until(pilot, lambda: bar.value == "en m1")


async def test_an_action_that_fails_unexpectedly_still_answers_the_intake_form(
    world: DispatchService, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in an action is logged and answered like a refusal: the form waiting for its call
    says so and can be saved again, never stuck at "saving…"."""
    from dispatch_tui.service import executor

    real = executor.answer
    calls: list[object] = []

    def broken_once(*args: object, **kwargs: object) -> object:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(executor, "answer", broken_once)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_of(app).units.row_count == 12)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, IntakeScreen))
        form = app.screen
        await pilot.press(*"Fall", "enter", "3", "enter", "enter", *"riverside", "ctrl+s")
        await until(pilot, lambda: "unexpected error" in str(form.query_one("#error").render()))
        assert app.screen is form
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(pending_numbers(app)) == 1)


async def test_an_intake_save_in_doubt_holds_the_form_until_the_desk_knows(
    world: DispatchService, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The save's answer was lost: the form stays, saying so; the check says it did not go
    through; the form takes the call again, under a new request id (the check gave the old one
    up), and the call is taken once."""
    from dispatch_tui.service import executor

    real = executor.answer
    ids: list[str | None] = []

    def lost_once(
        service: object, operator: str, command: object, request_id: object = None
    ) -> object:
        ids.append(request_id)  # type: ignore[arg-type]
        if len(ids) == 1:
            return executor.Answer(False, "new call 'Fall': outcome unknown …", in_doubt=True)
        return real(service, operator, command, request_id)  # type: ignore[arg-type]

    monkeypatch.setattr(executor, "answer", lost_once)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: screen_of(app).units.row_count == 12)
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, IntakeScreen))
        form = app.screen
        await pilot.press(*"Fall", "enter", "3", "enter", "enter", *"riverside", "ctrl+s")
        # The desk checks by the request id at once (the form says "outcome unknown" till
        # then): nothing was saved under it.
        await until(pilot, lambda: "did not go through" in str(form.query_one("#error").render()))
        assert app.screen is form and world.calls() == []
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(pending_numbers(app)) == 1)
    assert len(ids) == 2 and ids[0] != ids[1]
    assert len(world.calls()) == 1
