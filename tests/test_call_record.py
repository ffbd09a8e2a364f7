"""The call record: narrative, edits, re-open, dispositions, answer time, find.

Each through the service on the real database, with what it must leave behind (and what it must
not), and through the CLI where a script would use it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from dispatch_tui.cli import main
from dispatch_tui.rules.errors import Conflict, Forbidden, InvalidInput, NotFound
from dispatch_tui.rules.validation import CallChanges, CallIntake
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call
from tests.invariants import violations

Count = Callable[..., int]


def _on_scene(world: DispatchService, unit: str = "M1", **fields: object) -> str:
    number = new_call(world, **fields)
    world.dispatch("alice", number, [unit])
    world.unit_status("alice", unit, "ON_SCENE")
    return number


# -- narrative ------------------------------------------------------------------------------------


def test_a_note_is_stamped_and_attributed_by_the_database(world: DispatchService) -> None:
    number = new_call(world)
    world.add_note("alice", number, "  caller says [bold]the door[/bold] is open  ")
    record = world.record(number)
    (note,) = [e for e in record.timeline if e.source == "note"]
    assert note.text == "caller says [bold]the door[/bold] is open"  # trimmed, markup kept literal
    assert note.who == "alice"
    assert record.call.received_at <= note.at <= world.now()


def test_a_correction_is_a_new_entry_naming_the_one_it_corrects(
    world: DispatchService, engine: Engine
) -> None:
    number, other = new_call(world), new_call(world)
    world.add_note("alice", number, "patient is 45")
    (first,) = [e.ref for e in world.record(number).timeline if e.source == "note"]
    world.add_note("bob", number, "patient is 54", corrects=f"#{first}")
    notes = [e for e in world.record(number).timeline if e.source == "note"]
    assert [n.text for n in notes] == ["patient is 45", f"(corrects #{first}) patient is 54"]
    assert [n.who for n in notes] == ["alice", "bob"]
    with pytest.raises(NotFound, match="no narrative entry"):
        world.add_note("alice", other, "wrong call", corrects=first)
    with pytest.raises(InvalidInput, match="not a narrative entry number"):
        world.add_note("alice", number, "x", corrects="first")


def test_the_narrative_is_append_only_even_for_a_superuser(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    world.add_note("alice", number, "keep me")
    for statement in (
        "UPDATE narrative SET text = 'changed'",
        "DELETE FROM narrative",
        "TRUNCATE narrative CASCADE",
    ):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(statement))
    assert [e.text for e in world.record(number).timeline if e.source == "note"] == ["keep me"]


@pytest.mark.parametrize(
    ("body", "error"),
    [("", "note is required"), ("   ", "note is required"), ("a\x1b[31mb", "control character")],
)
def test_a_bad_note_is_one_line_and_writes_nothing(
    world: DispatchService, count: Count, body: str, error: str
) -> None:
    number = new_call(world)
    with pytest.raises(InvalidInput, match=error):
        world.add_note("alice", number, body)
    with pytest.raises(InvalidInput, match="too long"):
        world.add_note("alice", number, "x" * 2001)
    assert count("narrative") == 0


def test_notes_are_for_the_floor_not_the_crews(world: DispatchService) -> None:
    number = new_call(world)
    world.add_note("grace", number, "supervisor: watch this one")
    with pytest.raises(Forbidden):
        world.add_note("carol", number, "paramedic note")


def test_a_closed_call_still_takes_notes(world: DispatchService) -> None:
    number = _on_scene(world)
    world.close_call("alice", number, "treated and released")
    world.add_note("alice", number, "late: family called back")
    assert world.record(number).timeline[-1].text == "late: family called back"


# -- edits ----------------------------------------------------------------------------------------


def test_an_edit_writes_its_columns_an_audit_row_and_a_narrative_line(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world, priority=3, nature="Fall", caller_name="Ann")
    view = world.update_call(
        "alice", number, CallChanges(priority="1", nature="Fall, not breathing")
    )
    assert (view.priority, view.nature, view.caller_name) == (1, "Fall, not breathing", "Ann")
    (audit,) = [a for a in world.audit(number) if a.action == "call_updated"]
    assert audit.details["changes"] == {
        "priority": [3, 1],
        "nature": ["Fall", "Fall, not breathing"],
    }
    line = world.record(number).timeline[-1]
    assert line.source == "event"
    assert line.text == "priority 3 → 1; nature 'Fall' → 'Fall, not breathing' by alice"


def test_an_edit_changes_only_what_it_names(world: DispatchService, engine: Engine) -> None:
    number = new_call(world, priority=2, caller_phone="555-0100")
    world.dispatch("alice", number, ["M1"])
    world.update_call("alice", number, CallChanges(caller_name="Bob"))
    after = world.call(number)
    assert (after.priority, after.caller_phone, after.caller_name) == (2, "555-0100", "Bob")
    assert after.active_units == ("M1",) and after.status == "DISPATCHED"


def test_a_determinant_brings_its_priority_unless_one_is_given(world: DispatchService) -> None:
    number = new_call(world, priority=4)
    assert world.update_call("alice", number, CallChanges(determinant="10-D-1")).priority == 1
    view = world.update_call("alice", number, CallChanges(determinant="10-C-1", priority=4))
    assert (view.determinant, view.priority) == ("10-C-1", 4)


def test_a_place_gives_location_and_coordinates(world: DispatchService) -> None:
    number = new_call(world, place="", location="somewhere vague")
    view = world.update_call("alice", number, CallChanges(place="Central Station"))
    assert view.location_text.startswith("Central Station, ")
    assert view.lat is not None and view.lon is not None
    record = world.record(number)
    assert record.place == "Central Station"
    view = world.update_call("alice", number, CallChanges(location="Platform 4, by the lifts"))
    assert world.record(number).place is None  # typed anew: no longer the named place
    assert (view.lat, view.lon) == (None, None)  # nor where it was
    moved = world.update_call(
        "alice", number, CallChanges(location="Platform 5", lat="40.01", lon="-83.01")
    )
    assert (moved.lat, moved.lon) == (40.01, -83.01)


@pytest.mark.parametrize(
    ("changes", "error", "kind"),
    [
        (CallChanges(), "name something to change", InvalidInput),
        (CallChanges(priority="7"), "priority", InvalidInput),
        (CallChanges(lat="40.1"), "both latitude and longitude", InvalidInput),
        (CallChanges(location="x", place="Central Station"), "not both", InvalidInput),
        (CallChanges(caller_phone="call me"), "not a phone number", InvalidInput),
        (CallChanges(priority=1), "nothing to change", InvalidInput),
        (CallChanges(place="Nowhere Special"), "no named place", NotFound),
    ],
)
def test_a_bad_edit_is_one_line_and_writes_nothing(
    world: DispatchService, count: Count, changes: CallChanges, error: str, kind: type
) -> None:
    number = new_call(world, priority=1)
    audit = count("audit_log")
    with pytest.raises(kind, match=error):
        world.update_call("alice", number, changes)
    assert (count("audit_log"), count("narrative")) == (audit, 0)


def test_an_ended_call_is_not_edited(world: DispatchService) -> None:
    number = new_call(world)
    world.cancel_call("alice", number, "duplicate")
    with pytest.raises(Conflict, match="re-open it to change it"):
        world.update_call("alice", number, CallChanges(priority=2))


# -- dispositions and reasons ---------------------------------------------------------------------


def test_a_close_needs_a_disposition_from_the_list(world: DispatchService, count: Count) -> None:
    number = _on_scene(world)
    for said, error in (("", "needs a disposition"), ("fine", "is not a disposition")):
        with pytest.raises(InvalidInput, match=error):
            world.close_call("alice", number, said)
    with pytest.raises(InvalidInput, match="matches several"):
        world.close_call("alice", number, "treated")
    assert world.call(number).status == "ON_SCENE"
    view = world.close_call("alice", number, "NO PATIENT")
    assert view.disposition == "no patient found"


def test_a_centre_sets_its_own_dispositions(engine: Engine, world: DispatchService) -> None:
    own = DispatchService(world.sessions, desk="test", dispositions=("ALS transport", "no trace"))
    number = _on_scene(world)
    with pytest.raises(InvalidInput, match="ALS transport, no trace"):
        own.close_call("alice", number, "treated and released")
    assert own.close_call("alice", number, "no t").disposition == "no trace"


def test_out_of_service_keeps_its_reason(world: DispatchService) -> None:
    world.unit_status("alice", "B6", "OUT_OF_SERVICE", reason="flat tyre")
    (row,) = [a for a in world.audit() if a.unit_code == "B6"]
    assert row.details["reason"] == "flat tyre"


# -- re-open --------------------------------------------------------------------------------------


def test_a_reopened_call_is_pending_with_its_history(
    world: DispatchService, engine: Engine
) -> None:
    number = _on_scene(world)
    world.close_call("alice", number, "patient refused care")
    view = world.reopen_call("bob", number, "caller rang back: now unconscious")
    assert view.status == "RECEIVED" and view.reopened_at is not None
    assert view.closed_at is None and view.disposition is None
    assert [a.unit_code for a in view.assignments] == ["M1"]  # the first unit's times are kept
    texts = [e.text for e in world.record(number).timeline]
    assert "call closed: patient refused care" in texts
    assert texts[-1] == (
        "re-opened, was closed (patient refused care): caller rang back: now unconscious by bob"
    )
    # Worked again: a new unit is sent, then cancelled: pending again, not closed by the old one.
    world.dispatch("alice", number, ["M2"])
    world.cancel_unit("alice", "M2", "wrong unit")
    assert world.call(number).status == "RECEIVED"
    world.dispatch("alice", number, ["M3"])
    world.unit_status("alice", "M3", "ON_SCENE")
    world.unit_status("alice", "M3", "AVAILABLE")
    assert world.call(number).status == "CLOSED"
    # Ended twice, re-opened once: each end has its audit row since the last re-open.
    assert violations(engine) == ""


def test_reopen_needs_a_reason_an_ended_call_and_the_window(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    with pytest.raises(Conflict, match="not closed"):
        world.reopen_call("alice", number, "why")
    world.cancel_call("alice", number, "duplicate")
    with pytest.raises(InvalidInput, match="reason is required"):
        world.reopen_call("alice", number, " ")
    with pytest.raises(Forbidden):
        world.reopen_call("carol", number, "paramedic")
    with engine.begin() as conn:  # it was cancelled two days ago
        conn.execute(
            text(
                "UPDATE calls SET cancelled_at = cancelled_at - interval '2 days' WHERE number = :n"
            ),
            {"n": number},
        )
    with pytest.raises(Conflict, match=r"ended 48 h ago; only a call that ended in the last 24 h"):
        world.reopen_call("alice", number, "too late")
    shorter = DispatchService(world.sessions, desk="test", reopen_hours=72)
    assert shorter.reopen_call("alice", number, "within 72 h").status == "RECEIVED"


def test_two_desks_closing_one_call_at_once_one_wins_the_other_is_told(
    world: DispatchService, count: Count
) -> None:
    number = _on_scene(world)
    results: list[str] = []
    start = threading.Barrier(2)

    def close(who: str) -> None:
        start.wait()
        try:
            world.close_call(who, number, "treated and released")
            results.append("closed")
        except Conflict as err:
            results.append(err.message)

    threads = [threading.Thread(target=close, args=(u,)) for u in ("alice", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(["closed", f"{number} is already closed"])
    assert count("audit_log", "action = 'call_closed'") == 1


def test_two_desks_editing_one_call_at_once_both_are_kept_in_order(
    world: DispatchService,
) -> None:
    number = new_call(world, priority=3)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def edit(changes: CallChanges) -> None:
        start.wait()
        try:
            world.update_call("alice", number, changes)
        except BaseException as err:
            errors.append(err)

    threads = [
        threading.Thread(target=edit, args=(CallChanges(priority=1),)),
        threading.Thread(target=edit, args=(CallChanges(caller_name="Second caller"),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    view = world.call(number)
    assert (view.priority, view.caller_name) == (1, "Second caller")  # neither undid the other
    events = [e.text for e in world.record(number).timeline if e.source == "event"]
    assert len(events) == 2


# -- answer time ----------------------------------------------------------------------------------


def test_a_call_is_received_when_it_was_answered(world: DispatchService, engine: Engine) -> None:
    answered = world.answer("alice")
    with engine.begin() as conn:  # 19 s of typing
        conn.execute(
            text("UPDATE call_answers SET at = at - interval '19 seconds' WHERE id = :id"),
            {"id": answered.id},
        )
    view = world.create_call(
        "alice", CallIntake(nature="Fall", location="1 Main St", priority=2, answered=answered.id)
    )
    assert view.received_at == answered.at - timedelta(seconds=19)
    assert world.now() - view.received_at >= timedelta(seconds=19)


def test_an_answer_takes_one_call_of_its_own_operator(world: DispatchService, count: Count) -> None:
    answered = world.answer("alice")
    intake = CallIntake(nature="Fall", location="1 Main St", priority=2, answered=answered.id)
    with pytest.raises(InvalidInput, match="no call answer"):
        world.create_call("bob", intake)
    taken = world.create_call("alice", intake)
    with pytest.raises(Conflict, match=f"taken already, as {taken.number}"):
        world.create_call("alice", intake)
    assert count("calls") == 1


def test_a_forged_received_time_is_overwritten_by_the_answer(
    world: DispatchService, engine: Engine
) -> None:
    answered = world.answer("alice")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO calls (location_text, nature, priority, created_by_id, answer_id,"
                " received_at) SELECT 'x', 'y', 1, id, :a, '2001-01-01' FROM staff"
                " WHERE username = 'alice'"
            ),
            {"a": answered.id},
        )
        received = conn.execute(
            text("SELECT received_at FROM calls WHERE answer_id = :a"), {"a": answered.id}
        ).scalar_one()
    assert received == answered.at


# -- find -----------------------------------------------------------------------------------------


def test_find_by_number_address_caller_phone_and_unit(world: DispatchService) -> None:
    a = new_call(world, place="", location="12 Elm Street", caller_name="Maria Lopez")
    b = new_call(world, place="", location="4 Oak Avenue", caller_phone="(555) 010-9988")
    assert [c.number for c in world.find("elm road").calls] == []
    assert [c.number for c in world.find("elm street").calls] == [a]
    assert [c.number for c in world.find("LOPEZ").calls] == [a]
    assert [c.number for c in world.find("5550109988").calls] == [b]
    assert [c.number for c in world.find(b.lower()).calls] == [b]
    assert [c.number for c in world.find(b.removeprefix("C-")).calls] == [b]
    assert [u.code for u in world.find("m1").units] == ["M1"]
    assert world.find("100%_").calls == ()  # wildcards are taken literally


def test_find_includes_ended_calls_of_the_last_days(world: DispatchService, engine: Engine) -> None:
    number = new_call(world, place="", location="7 Birch Road")
    world.cancel_call("alice", number, "duplicate")
    assert [c.number for c in world.find("birch").calls] == [number]
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE calls SET received_at = received_at - interval '5 days'"),
        )
    assert world.find("birch").calls == ()
    assert [c.number for c in world.find("birch", days=7).calls] == [number]
    assert [c.number for c in world.find(number).calls] == [number]  # its number: at any age


def test_find_says_when_it_cuts_the_list(world: DispatchService) -> None:
    for _ in range(4):
        new_call(world, place="", location="Harbour Road")
    found = world.find("harbour", limit=3)
    assert (len(found.calls), found.total_calls, found.truncated) == (3, 4, True)


# -- the CLI --------------------------------------------------------------------------------------


def test_the_cli_works_a_call_record(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    number = _on_scene(world)
    assert main(["call", "note", number, "door", "code", "1234"]) == 0
    assert main(["update", number, "--priority", "2", "--caller", "Ann"]) == 0
    assert main(["call", "close", number]) == 2  # a close without a disposition
    assert "needs a disposition" in capsys.readouterr().err
    assert main(["call", "close", number, "--disposition", "dead at scene"]) == 0
    assert main(["reopen", number]) == 2  # --reason is required
    assert main(["reopen", number, "--reason", "wrong address"]) == 0
    capsys.readouterr()
    assert main(["--json", "call", "show", number]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["call"]["status"] == "RECEIVED" and shown["created_by"] == "alice"
    texts = [e["text"] for e in shown["timeline"]]
    assert "door code 1234" in texts and "call closed: dead at scene" in texts
    assert main(["--json", "find", number]) == 0
    found = json.loads(capsys.readouterr().out)["found"]
    assert [c["number"] for c in found["calls"]] == [number] and found["total_calls"] == 1
    assert main(["os"]) == 2
    assert "os needs a unit: os M12" in capsys.readouterr().err


# -- fuzz -----------------------------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=st.text(max_size=80),
    nature=st.none() | st.text(max_size=40),
    caller=st.none() | st.text(max_size=40),
    prio=st.none() | st.sampled_from(["1", "4", "0", "x", " 2 "]),
)
def test_random_notes_and_edits_are_stored_exactly_or_refused(
    world: DispatchService,
    count: Count,
    body: str,
    nature: str | None,
    caller: str | None,
    prio: str | None,
) -> None:
    number = new_call(world)
    before = count("narrative")
    try:
        world.add_note("alice", number, body)
    except InvalidInput:
        assert count("narrative") == before
    else:
        assert world.record(number).timeline[-1].text == body.strip().replace("\t", " ")
    before_call = world.call(number)
    try:
        world.update_call(
            "alice", number, CallChanges(priority=prio, nature=nature, caller_name=caller)
        )
    except (InvalidInput, NotFound):
        assert world.call(number) == before_call
    else:
        after = world.call(number)
        if nature is not None and nature.strip():
            assert after.nature == nature.strip().replace("\t", " ")
