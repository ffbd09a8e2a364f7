"""Premise hazards and history: a supervisor's note on an address, shown loudly with every call
there; and the calls at the address in the 12 months before.

Kept by the address as compared (`12 N. Main Street` finds the note on `12 north main st`),
added and retired by supervisors and admins only (the database agrees), audited, never deleted,
and said in the call's record, on the CLI and on the crew terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
import pytest

from dispatch_tui.cli.main import main
from dispatch_tui.rules.errors import Conflict, Forbidden, InvalidInput
from dispatch_tui.rules.validation import CallChanges
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call
from tests.test_roles import Login, libpq, logins, refused

__all__ = ["logins"]  # a fixture, used by name


def test_a_hazard_note_is_in_every_record_at_its_address(world: DispatchService) -> None:
    note = world.add_premise("grace", "12 North Main Street", "dog on premises")
    assert note.line() == "HAZARD: dog on premises"
    number = new_call(world, place="", location="12 n. main st", priority=2)
    (shown,) = world.record(number).hazards
    assert (shown.id, shown.note, shown.added_by) == (note.id, "dog on premises", "grace")
    elsewhere = new_call(world, place="", location="14 N Main St", priority=3)
    assert world.record(elsewhere).hazards == ()
    assert [p.id for p in world.premises("12 NORTH MAIN ST.")] == [note.id]


def test_retired_or_past_its_date_it_is_no_longer_shown(world: DispatchService) -> None:
    kept = world.add_premise("grace", "3 Elm Rd", "oxygen in use", until="2099-12-31")
    gone = world.add_premise("admin", "3 Elm Rd", "violent patient: police first")
    assert [p.id for p in world.premises("3 elm road")] == [kept.id, gone.id]
    world.retire_premise("grace", gone.id)
    assert [p.id for p in world.premises("3 elm road")] == [kept.id]
    with pytest.raises(Conflict, match="retired already"):
        world.retire_premise("grace", gone.id)
    with pytest.raises(InvalidInput, match="in the past"):
        world.add_premise("grace", "3 Elm Rd", "ladder needed", until="2000-01-01")
    audit = [a.action for a in world.audit()]
    assert audit.count("premise_added") == 2 and audit.count("premise_retired") == 1


def test_only_supervisors_and_admins_write_them(
    world: DispatchService, logins: Callable[..., Login]
) -> None:
    with pytest.raises(Forbidden):
        world.add_premise("alice", "3 Elm Rd", "dog")  # a dispatcher
    _, url = logins("dispatcher")
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        assert refused(
            conn,
            "INSERT INTO premise_notes (address_key, address, note) VALUES ('x', 'x', 'x')",
        )
    supervisor, url = logins("supervisor")
    world.add_premise(supervisor, "5 Oak Rd", "steep stairs")  # through the service as itself
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        assert not refused(
            conn,
            "INSERT INTO premise_notes (address_key, address, note) VALUES ('y', 'y', 'y')",
        )


def test_the_cli_adds_lists_retires_and_shows_them(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    number = new_call(world, place="", location="7 Birch Ave", priority=2)
    assert main(["--as", "grace", "premise", "add", "7 Birch Avenue", "dog", "on", "premises"]) == 0
    capsys.readouterr()
    assert main(["call", "show", number]) == 0
    assert "HAZARD: dog on premises" in capsys.readouterr().out
    assert main(["call", "show", number, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [h["note"] for h in shown["hazards"]] == ["dog on premises"]
    assert main(["premise", "list", "7 birch ave", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["note"] for p in listed["premises"]] == ["dog on premises"]
    note_id = listed["premises"][0]["id"]
    assert main(["--as", "grace", "premise", "retire", str(note_id)]) == 0
    assert main(["--as", "alice", "premise", "add", "7 Birch Ave", "x"]) == 5  # forbidden
    assert world.record(number).hazards == ()


async def test_the_desks_record_says_the_hazard(world: DispatchService, database_url: str) -> None:
    from dispatch_tui.screens.record import RecordScreen
    from tests.desk_helpers import desk, pending_numbers, until

    world.add_premise("grace", "21 Quarry Road", "violent patient: police first")
    number = new_call(world, place="", location="21 quarry rd", priority=1)
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [number])
        await pilot.press("colon", *f"call show {number}", "enter")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen))
        await until(
            pilot,
            lambda: (
                "HAZARD: violent patient: police first"
                in str(app.screen.query_one("#record-head").render())
            ),
        )


# -- a premise's history ---------------------------------------------------------------------


def test_the_record_counts_the_prior_calls_at_the_address(world: DispatchService) -> None:
    first = new_call(world, place="", location="40 Cedar Lane", priority=3, nature="Fall")
    world.cancel_call("alice", first, "caller called back")
    second = new_call(world, place="", location="40 cedar ln.", priority=2, nature="Sick person")
    elsewhere = new_call(world, place="", location="42 Cedar Lane", priority=3)
    third = new_call(world, place="", location="40 CEDAR LANE", priority=1, nature="Collapse")
    record = world.record(third)
    assert record.prior_count == 2
    assert [p.number for p in record.prior] == [second, first]  # newest first
    assert record.prior[1].line().endswith(f"{first} Fall: cancelled: caller called back")
    assert record.prior[0].line().endswith(f"{second} Sick person: received")
    assert world.record(first).prior_count == 0  # only the calls before it
    assert world.record(elsewhere).prior_count == 0
    # A location typed anew is found by its new address.
    world.update_call("alice", elsewhere, CallChanges(location="40 Cedar Ln"))
    assert world.record(third).prior_count == 3


def test_call_show_says_the_history(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    first = new_call(world, place="", location="8 Pine St", priority=3, nature="Fall")
    second = new_call(world, place="", location="8 Pine Street", priority=2)
    capsys.readouterr()
    assert main(["call", "show", second]) == 0
    out = capsys.readouterr().out
    assert "1 at this address in 12 months" in out and f"{first} Fall" in out
    assert main(["call", "show", second, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["prior_count"] == 1 and [p["number"] for p in shown["prior"]] == [first]


async def test_intake_says_the_hazard_and_the_calls_as_the_address_is_typed(
    world: DispatchService, database_url: str
) -> None:
    from dispatch_tui.screens.intake import IntakeScreen
    from tests.desk_helpers import desk, pending_numbers, until

    world.add_premise("grace", "21 Quarry Road", "dog on premises")
    earlier = new_call(world, place="", location="21 Quarry Rd", priority=3)
    app = desk(world, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [earlier])
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, IntakeScreen))

        def facts() -> str:
            return str(app.screen.query_one("#address-facts").render())

        await pilot.press(*"Fall", "enter", "3", "enter", "enter", "enter", *"21 quarry road")
        await until(pilot, lambda: "HAZARD: dog on premises" in facts())
        assert "1 call here in 12 months" in facts()
        await pilot.press(*" apt 2")  # another address: nothing known of it
        await until(pilot, lambda: facts() == "")


def test_a_note_written_in_psql_wakes_the_desks_showing_calls_at_its_address(
    world: DispatchService, database_url: str
) -> None:
    """Its trigger (migration 0017) notifies the open calls at the address, whoever writes."""
    here = new_call(world, place="", location="9 Cedar Lane")
    there = new_call(world, place="", location="10 Cedar Lane")
    ids = {c.number: c.id for c in world.calls()}
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        conn.execute("LISTEN dispatch_changes")
        key = conn.execute("SELECT address_key FROM calls WHERE number = %s", (here,)).fetchone()
        assert key is not None
        with psycopg.connect(libpq(database_url), autocommit=True) as writer:
            writer.execute(
                "INSERT INTO premise_notes (address_key, address, note) VALUES (%s, %s, %s)",
                (key[0], "9 Cedar Lane", "oxygen in use"),
            )
        heard = [json.loads(n.payload) for n in conn.notifies(timeout=2.0, stop_after=1)]
    assert {"table": "calls", "id": ids[here], "op": "UPDATE"} in heard
    assert all(h.get("id") != ids[there] for h in heard)
    assert world.call(here).hazard and not world.call(there).hazard
