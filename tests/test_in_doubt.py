"""A write whose commit was in flight when its connection died is never "nothing was changed".

A proxy between the service and the server (`tests/fault_proxy.py`) passes a write's COMMIT (or
the one-statement dispatch) to the server, lets the server save it, and loses the reply. The
service then asks a fresh connection how the transaction ended (`pg_xact_status`, or, for the
dispatch, what the tables hold once the server process that ran it has ended) and answers what
really happened; when it cannot ask (the server is gone), the answer is "outcome unknown" with its
own exit code, never "nothing was changed".
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from dispatch_tui.cli import main
from dispatch_tui.db.engine import make_engine, make_sessionmaker
from dispatch_tui.rules import commands
from dispatch_tui.rules.errors import NOTHING_CHANGED, ExitCode, OutcomeUnknown, Unavailable
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.service import executor, transactions
from dispatch_tui.service.dispatch_service import DispatchService
from tests.desk_helpers import desk, feedback, pending_numbers, until
from tests.fault_proxy import ReplyDropper, reply_dropper
from tests.helpers import new_call, new_calls


@pytest.fixture
def proxy(database_url: str) -> Iterator[ReplyDropper]:
    with reply_dropper(database_url) as p:
        yield p


@pytest.fixture
def behind(world: DispatchService, proxy: ReplyDropper) -> Iterator[DispatchService]:
    """The service, its connections through the proxy."""
    eng = make_engine(proxy.url, application_name="dispatch-tui-in-doubt")
    try:
        yield DispatchService(make_sessionmaker(eng), desk="test")
    finally:
        eng.dispose()


def calls_named(engine: Engine, nature: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM calls WHERE nature = :n"), {"n": nature}
            ).scalar_one()
        )


def test_a_call_saved_while_the_reply_was_lost_is_reported_taken(
    behind: DispatchService, proxy: ReplyDropper, engine: Engine
) -> None:
    proxy.arm(b"COMMIT")
    call = behind.create_call(
        "alice", CallIntake(nature="Lost reply", place="Riverton Mall", priority=1)
    )
    assert proxy.dropped.is_set(), "the proxy did not lose the commit's reply"
    assert call.nature == "Lost reply"
    assert calls_named(engine, "Lost reply") == 1  # saved once, and said so


def test_a_dispatch_saved_while_the_reply_was_lost_is_reported_done(
    world: DispatchService, behind: DispatchService, proxy: ReplyDropper, engine: Engine
) -> None:
    number = new_call(world)
    # The statement runs prepared: its parameters (the units as an array literal) travel with
    # the message that executes it.
    proxy.arm(b"{M1}")
    done = behind.dispatch("alice", number, ["M1"])
    assert proxy.dropped.is_set(), "the proxy did not lose the dispatch's reply"
    assert done.units == ("M1",) and done.call_number == number
    assert world.call(number).active_units == ("M1",)


def test_a_status_change_saved_while_the_reply_was_lost_is_reported_done(
    world: DispatchService, behind: DispatchService, proxy: ReplyDropper
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    # One statement (migration 0010), run prepared: its parameters travel with its message.
    proxy.arm(b"ON_SCENE")
    once = commands.Once.of("alice", commands.SetUnitStatus("M1", "ON_SCENE"))
    unit = behind.unit_status("alice", "M1", "ON_SCENE", once=once)
    assert proxy.dropped.is_set()
    assert unit.status == "ON_SCENE" and world.call(number).status == "ON_SCENE"


def test_a_divert_saved_while_the_reply_was_lost_is_reported_done(
    world: DispatchService, behind: DispatchService, proxy: ReplyDropper
) -> None:
    first, second = new_call(world), new_call(world)
    world.dispatch("alice", first, ["M1"])
    proxy.arm(second.encode())
    once = commands.Once.of("alice", commands.Divert("M1", second))
    moved = behind.divert("alice", "M1", second, once=once)
    assert proxy.dropped.is_set()
    assert moved.call_number == second and world.call(second).active_units == ("M1",)


def test_a_status_change_in_doubt_without_a_request_id_is_not_called_unchanged(
    world: DispatchService,
    behind: DispatchService,
    proxy: ReplyDropper,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a request id nothing says how it ended: its outcome is unknown, never "nothing
    was changed" (the desk and the CLI always send one)."""
    monkeypatch.setattr(transactions, "SETTLE_SECONDS", 0.3)
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    proxy.arm(b"ON_SCENE")
    with pytest.raises(OutcomeUnknown):
        behind.unit_status("alice", "M1", "ON_SCENE")
    assert proxy.dropped.wait(5)  # (set by the proxy just after it cut the reply off)
    assert world.call(number).status == "ON_SCENE"  # it went through: "unchanged" would lie


def test_when_the_server_cannot_be_asked_the_outcome_is_unknown(
    behind: DispatchService,
    proxy: ReplyDropper,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transactions, "SETTLE_SECONDS", 0.3)
    proxy.arm(b"COMMIT")
    proxy.refuse_after_drop = True
    with pytest.raises(OutcomeUnknown, match="may or may not have been saved") as caught:
        behind.create_call(
            "alice", CallIntake(nature="Unknown fate", place="Riverton Mall", priority=2)
        )
    assert "nothing was changed" not in caught.value.message
    assert caught.value.exit_code == ExitCode.OUTCOME_UNKNOWN == 7
    assert calls_named(engine, "Unknown fate") == 1  # it was saved: "nothing changed" would lie


def test_the_cli_exits_7_when_the_outcome_is_unknown(
    proxy: ReplyDropper,
    world: DispatchService,
    db_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: Engine,
) -> None:
    monkeypatch.setattr(transactions, "SETTLE_SECONDS", 0.3)
    monkeypatch.setenv("DISPATCH_DATABASE_URL", proxy.url)
    proxy.arm(b"COMMIT")
    proxy.refuse_after_drop = True
    code = main(["--json", "call", "new", "CLI unknown", "--place", "Riverton Mall", "-p", "2"])
    out, err = capsys.readouterr()
    assert code == 7, (out, err)
    assert "may or may not have been saved" in err and "nothing was changed" not in err
    assert '"kind": "outcome_unknown"' in out
    assert calls_named(engine, "CLI unknown") == 1


def test_a_desk_is_told_which_action_is_in_doubt(
    world: DispatchService,
    behind: DispatchService,
    proxy: ReplyDropper,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transactions, "SETTLE_SECONDS", 0.3)
    number = new_call(world)
    proxy.arm(b"{M2}")
    proxy.refuse_after_drop = True
    answer = executor.answer(behind, "alice", commands.Dispatch(number, ("M2",)))
    assert not answer.ok
    assert answer.message.startswith(f"M2 → {number}: outcome unknown"), answer.message
    assert answer.in_doubt
    assert world.call(number).active_units == ("M2",)  # saved, though the desk could not know


def test_a_call_retaken_after_an_unknown_outcome_is_not_duplicated(
    proxy: ReplyDropper,
    world: DispatchService,
    db_env: dict[str, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: Engine,
) -> None:
    """The CLI names the write's request id; run again with it once the server answers, the
    call saved the first time is the answer, and there is still one call."""
    monkeypatch.setattr(transactions, "SETTLE_SECONDS", 0.3)
    monkeypatch.setenv("DISPATCH_DATABASE_URL", proxy.url)
    proxy.arm(b"COMMIT")
    proxy.refuse_after_drop = True
    argv = ["call", "new", "Retaken call", "--place", "Riverton Mall", "-p", "1"]
    assert main(["--json", *argv]) == ExitCode.OUTCOME_UNKNOWN
    out, err = capsys.readouterr()
    rid = json.loads(out)["error"]["request_id"]
    assert f"run the same command with --request-id {rid}" in err
    monkeypatch.setenv("DISPATCH_DATABASE_URL", database_url)  # the server answers again
    assert main(["--json", "--request-id", rid, *argv]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["done_before"] is True and again["call"]["nature"] == "Retaken call"
    assert calls_named(engine, "Retaken call") == 1


def test_a_dispatch_in_doubt_is_settled_by_its_request_row(
    world: DispatchService, behind: DispatchService, proxy: ReplyDropper
) -> None:
    number = new_call(world)
    proxy.arm(b"{M3}")
    once = commands.Once.of("alice", commands.Dispatch(number, ("M3",)))
    done = behind.dispatch("alice", number, ["M3"], once=once)
    assert proxy.dropped.is_set(), "the proxy did not lose the dispatch's reply"
    assert done.units == ("M3",) and world.call(number).active_units == ("M3",)


async def test_a_desk_says_which_write_went_through_once_it_can_ask(
    world: DispatchService,
    behind: DispatchService,
    proxy: ReplyDropper,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The desk's writes go through the proxy (its listener does not): the dispatch is saved,
    its reply lost, the server unreachable for a while. The desk says the outcome is unknown,
    then, once the server answers, that it went through."""
    monkeypatch.setattr(transactions, "SETTLE_SECONDS", 0.3)
    number = new_call(world)
    app = desk(behind, database_url)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: pending_numbers(app) == [number])
        proxy.arm(b"{M2}")
        proxy.refuse_after_drop = True
        await pilot.press("colon", *f"d {number} m2", "enter")
        await until(pilot, lambda: "outcome unknown" in feedback(app))
        assert f"M2 → {number}: outcome unknown" in feedback(app)
        assert len(app.desk.in_doubt) == 1
        proxy.refuse = False  # the server answers again
        await until(pilot, lambda: "went through" in feedback(app))
        assert feedback(app).startswith(f"✓ M2 → {number}: went through"), feedback(app)
        assert not app.desk.in_doubt
    assert world.call(number).active_units == ("M2",)


def test_a_status_change_whose_answer_cannot_be_read_back_still_says_it_was_done(
    world: DispatchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Committed, then the server gone before the unit could be read again: the answer is what
    the write itself said of the unit, never "nothing was changed"."""
    first, nxt = new_calls(world, 2)
    world.dispatch("alice", first, ["M1"])
    world.unit_status("alice", "M1", "ON_SCENE")
    world.queue("alice", "M1", nxt)

    def gone(unit_id: int) -> object:
        raise Unavailable(NOTHING_CHANGED)

    monkeypatch.setattr(world, "_unit", gone)
    cleared = world.unit_status("alice", "M1", "AVAILABLE")  # and on to its next call
    assert (cleared.code, cleared.status, cleared.call_number) == ("M1", "EN_ROUTE", nxt)
    assert not cleared.en_route_reported and cleared.queued_call is None
    assert world.call(nxt).active_units == ("M1",)


def test_lining_up_a_call_whose_answer_cannot_be_read_back_still_says_it_was_done(
    world: DispatchService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call lined up (one statement, migration 0018), then the server gone before the unit
    could be read again: the answer is what the write said of the unit, its next call named."""
    first, nxt = new_calls(world, 2)
    world.dispatch("alice", first, ["M1"])

    def gone(unit_id: int) -> object:
        raise Unavailable(NOTHING_CHANGED)

    monkeypatch.setattr(world, "_unit", gone)
    lined = world.queue("alice", "M1", nxt)
    assert (lined.code, lined.status, lined.call_number, lined.queued_call) == (
        "M1",
        "EN_ROUTE",
        first,
        nxt,
    )
    taken_back = world.unqueue("alice", "M1")
    assert (taken_back.call_number, taken_back.queued_call) == (first, None)
    monkeypatch.undo()
    (unit,) = [u for u in world.units() if u.code == "M1"]
    assert unit.queued_call is None
    # Its status did not change: said since when it is in it (its dispatch), not "since now".
    assert lined.status_since == taken_back.status_since == unit.status_since
