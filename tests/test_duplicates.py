"""Duplicate calls at intake: a second call about the same incident is not taken silently.

From the desk and the CLI a new call near an open one (150 m), or at its address, received in
the last 30 minutes, is refused with the candidates and nothing saved: the dispatcher attaches
the caller to the open call (its narrative, no new call) or takes a new call anyway (audited).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from dispatch_tui.cli.main import main
from dispatch_tui.rules import commands
from dispatch_tui.rules.errors import Conflict, DuplicateSuspected
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.service import executor
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call

Count = Callable[..., int]


def intake(**fields: object) -> CallIntake:
    return CallIntake(**{"nature": "Car on its roof", "priority": 2, **fields})  # type: ignore[arg-type]


def test_a_second_call_at_the_same_place_is_refused_with_the_first(
    world: DispatchService, count: Count
) -> None:
    first = new_call(world)  # at Riverton Mall
    with pytest.raises(DuplicateSuspected) as caught:
        executor.execute(world, "alice", commands.NewCall(intake(place="Riverton Mall")))
    assert first in caught.value.message and "--new-anyway" in caught.value.message
    (candidate,) = caught.value.candidates
    assert candidate["call"] == first and candidate["metres"] == 0
    assert count("calls") == 1  # nothing saved


def test_near_by_position_or_the_same_address_typed_otherwise(world: DispatchService) -> None:
    at_mall = new_call(world)
    with pytest.raises(DuplicateSuspected):  # about 100 m from the mall
        executor.execute(
            world,
            "alice",
            commands.NewCall(intake(location="mall car park", lat=40.022, lon=-82.988)),
        )
    far = intake(location="Quarry Road", lat=40.04, lon=-82.988)  # 2 km away
    executor.execute(world, "alice", commands.NewCall(far))
    typed = new_call(world, place="", location="12 North Main Street", priority=3)
    with pytest.raises(DuplicateSuspected) as caught:
        executor.execute(world, "alice", commands.NewCall(intake(location="12 n. main st")))
    assert [c["call"] for c in caught.value.candidates] == [typed]
    assert at_mall != typed


def test_an_ended_call_or_an_old_one_is_no_duplicate(world: DispatchService) -> None:
    first = new_call(world)
    world.cancel_call("alice", first, "caller hung up, no answer on call back")
    taken = executor.execute(world, "alice", commands.NewCall(intake(place="Riverton Mall")))
    assert taken.data is not None and taken.data.number != first


def test_taken_anyway_the_override_is_audited(world: DispatchService) -> None:
    first = new_call(world)
    taken = executor.execute(
        world, "alice", commands.NewCall(intake(place="Riverton Mall"), new_anyway=True)
    )
    number = taken.data.number  # type: ignore[union-attr]
    texts = [e.text for e in world.record(number).timeline]
    assert f"taken as a new call though {first} may be the same incident" in texts


def test_attached_the_caller_goes_into_the_open_calls_narrative(
    world: DispatchService, count: Count
) -> None:
    first = new_call(world)
    command = commands.AttachCaller(
        first, intake(caller_name="Dana", caller_phone="555-0199", notes="two people trapped")
    )
    done = executor.execute(world, "alice", command)
    assert done.message == f"caller added to {first} (no new call)"
    assert count("calls") == 1
    texts = [e.text for e in world.record(first).timeline]
    assert "additional caller Dana, 555-0199: Car on its roof; two people trapped" in texts
    world.cancel_call("alice", first, "all patients refused care")
    with pytest.raises(Conflict, match="take a new call instead"):
        executor.execute(world, "alice", command)


def test_the_cli_needs_a_decision_and_says_the_candidates_in_json(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str], count: Count
) -> None:
    first = new_call(world)
    argv = ["call", "new", "Second caller", "--place", "Riverton Mall", "-p", "2"]
    assert main([*argv, "--json"]) == 4
    out, err = capsys.readouterr()
    document = json.loads(out)
    assert document["error"]["kind"] == "duplicate"
    assert [c["call"] for c in document["error"]["candidates"]] == [first]
    assert err.startswith("error: this may be ") and err.count("\n") == 1
    assert count("calls") == 1
    assert main([*argv, "--attach", first]) == 0
    assert f"caller added to {first}" in capsys.readouterr().out
    assert main([*argv, "--new-anyway"]) == 0
    assert count("calls") == 2
    assert main([*argv, "--new-anyway", "--attach", first]) == 2  # one or the other


# -- on the desk -----------------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["attach", "new anyway"])
async def test_the_intake_form_offers_the_open_call_before_a_duplicate(
    world: DispatchService, database_url: str, choice: str
) -> None:
    from tests.desk_helpers import desk, pending_numbers, until

    first = new_call(world, place="Riverside Park", priority=2, nature="Seizure")
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [first])
        await pilot.press("n")
        await until(pilot, lambda: app.screen.__class__.__name__ == "IntakeScreen")
        await pilot.press(*"Fitting", "enter", "2", "enter", "enter", *"riverside", "ctrl+s")
        await until(pilot, lambda: app.screen.__class__.__name__ == "PickScreen")
        shown = str(app.screen.query_one(".modal-title").render())
        assert shown == "This may be a call already open"
        if choice == "new anyway":
            await pilot.press("down")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen.__class__.__name__ == "DeskScreen")
        if choice == "attach":
            texts = [e.text for e in world.record(first).timeline]
            assert "additional caller unnamed: Fitting; Riverside Park" in texts
            assert len(world.calls()) == 1
        else:
            await until(pilot, lambda: len(pending_numbers(app)) == 2)
