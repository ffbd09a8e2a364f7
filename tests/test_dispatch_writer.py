"""The dispatch's one writer (`service/dispatch.py`): its rules written once, enforced by the one
statement, explained by a read that never writes.

- A plain dispatch is one statement, sent straight to the driver.
- Every refusal writes nothing and says the words the step-by-step transaction said; where
  several rules fail, the first in DOMAIN.md's order speaks.
- A rule added to `RULES` stops the write on every path and is explained in its own words; the
  statement alone is the gate (with the explanation switched off, nothing is written either).
- Only this module writes an assignment.
- When the statement wrote nothing and nothing refuses it, the statement is run again, a bounded
  number of times; a deadlock is retried; a paramedic or a hospital changed while the statement
  waited for a lock is seen and named.
- The connections the statement runs on follow the pool's rule: pinged after an idle spell, and
  never used again once dead.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

import dispatch_tui
import dispatch_tui.db.engine as engine_module
from dispatch_tui.cli import main
from dispatch_tui.db.models import Unit
from dispatch_tui.rules.errors import (
    Conflict,
    DispatchError,
    Forbidden,
    InvalidInput,
    NotFound,
    Unavailable,
)
from dispatch_tui.service import dispatch as dispatching
from dispatch_tui.service import transactions
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call


def written(engine: Engine) -> tuple[Any, ...]:
    """Everything a dispatch could write, as one comparable value."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(text(q)).all()
            for q in (
                "SELECT count(*) FROM assignments",
                "SELECT count(*) FROM audit_log",
                "SELECT code, status, status_since FROM units ORDER BY id",
                "SELECT number, status, first_dispatched_at, dispatched_by_id,"
                " destination_hospital_id FROM calls ORDER BY id",
            )
        )


@pytest.fixture
def rules_heard(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the rules whose refusal was raised, in order (the gate's rules, wrapped)."""
    heard: list[str] = []

    def wrapped(rule: dispatching.Rule) -> dispatching.Rule:
        def refusal(row: Any) -> DispatchError:
            heard.append(rule.name)
            return rule.refusal(row)

        return dispatching.Rule(rule.name, rule.on, rule.holds, refusal)

    gate = dispatching.Gate(wrapped(r) for r in dispatching.RULES)
    monkeypatch.setattr(dispatching, "GATE", gate)
    return heard


# -- one statement --------------------------------------------------------------------------------


def test_a_dispatch_is_one_statement_sent_to_the_driver(
    world: DispatchService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M2"])  # the driver connection is made (and kept) here
    number = new_call(world)
    through_sqlalchemy: list[str] = []
    to_the_driver: list[bytes] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        through_sqlalchemy.append(statement)

    take = world.statements.take

    class Watched:
        """The driver's cursor, noting each statement sent through it."""

        def __init__(self, cursor: Any) -> None:
            self.cursor = cursor

        def execute(self, query: bytes, *args: Any, **kwargs: Any) -> Any:
            to_the_driver.append(query)
            return self.cursor.execute(query, *args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.cursor, name)

    def take_and_watch() -> Any:
        return Watched(take())

    monkeypatch.setattr(world.statements, "take", take_and_watch)
    event.listen(engine, "before_cursor_execute", note)
    try:
        done = world.dispatch("alice", number, ["M1"], paramedic="carol", hospital="MERCY")
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert through_sqlalchemy == []
    assert len(to_the_driver) == 1 and b"INSERT INTO assignments" in to_the_driver[0]
    assert (done.call_number, done.units) == (number, ("M1",))
    call = world.call(number)
    assert (call.status, call.active_units, call.destination_code) == (
        "DISPATCHED",
        ("M1",),
        "MERCY",
    )
    assert call.assignments[0].paramedic == "carol"


def test_the_audit_rows_say_what_was_sent(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"], paramedic="carol", hospital="MERCY")
    world.hospital_status("grace", "STJ", "DIVERSION")
    world.dispatch("bob", number, ["M2", "M3"], add=True, hospital="STJ", override_diversion=True)
    with engine.connect() as conn:
        audit = conn.execute(
            text(
                "SELECT l.operator, l.desk, u.code, l.details FROM audit_log l"
                " JOIN units u ON u.id = l.unit_id WHERE l.action = 'dispatch' ORDER BY l.id"
            )
        ).all()
    assert [tuple(row) for row in audit] == [
        ("alice", "test", "M1", {"paramedic": "carol", "hospital": "MERCY", "added": False}),
        ("bob", "test", "M2", {"paramedic": None, "hospital": "STJ", "added": True}),
        ("bob", "test", "M3", {"paramedic": None, "hospital": "STJ", "added": True}),
    ]
    call = world.call(number)
    # The first dispatcher stays on the call; a later destination replaces the earlier one.
    assert (call.dispatched_by, call.destination_code) == ("alice", "STJ")


# -- every refusal: nothing written, the same words -----------------------------------------------

# Each case: the setup (given the world and the call's number, it returns the number of another
# call it used, if any), the refused request, the rule that refuses it (None: a row not found),
# and the error with its words ({n}: the call's number, {other}: the other call's).
REFUSED: dict[
    str, tuple[Callable[[DispatchService, str], Any], dict[str, Any], str | None, Any]
] = {
    "operator unknown": (
        lambda w, n: None,
        {"who": "mallory"},
        None,
        Forbidden("'mallory' is not an active operator of this service"),
    ),
    "operator is a paramedic": (
        lambda w, n: None,
        {"who": "carol"},
        "the operator may dispatch",
        Forbidden("carol is a paramedic; only a dispatcher may do that"),
    ),
    "operator is a supervisor": (
        lambda w, n: None,
        {"who": "grace"},
        "the operator may dispatch",
        Forbidden("grace is a supervisor; only a dispatcher may do that"),
    ),
    "no such call": (lambda w, n: None, {"number": "C-99999"}, None, NotFound("no call C-99999")),
    "call cancelled": (
        lambda w, n: w.cancel_call("alice", n),
        {"add": True},
        "the call is open",
        Conflict("{n} is already cancelled"),
    ),
    "no such unit": (lambda w, n: None, {"units": ["M1", "Q9"]}, None, NotFound("no unit Q9")),
    "unit busy": (
        lambda w, n: w.dispatch("bob", new_call(w), ["M1"]).call_number,
        {},
        "the unit is available",
        Conflict("M1 was dispatched to {other} by bob a moment ago"),
    ),
    "one of two units busy": (
        lambda w, n: w.dispatch("bob", new_call(w), ["M2"]).call_number,
        {"units": ["M1", "M2"]},
        "the unit is available",
        Conflict("M2 was dispatched to {other} by bob a moment ago"),
    ),
    "unit out of service": (
        lambda w, n: w.unit_status("alice", "M1", "OUT_OF_SERVICE"),
        {},
        "the unit is available",
        Conflict("M1 is out of service"),
    ),
    "call already dispatched, no add": (
        lambda w, n: w.dispatch("bob", n, ["M2"]),
        {},
        "the call has no unit yet, or more are added (--add)",
        Conflict("{n} already has M2 (dispatched by bob); use --add to send more"),
    ),
    "no such paramedic": (
        lambda w, n: None,
        {"paramedic": "nobody"},
        None,
        NotFound("no paramedic 'nobody'"),
    ),
    "paramedic is a supervisor": (
        lambda w, n: None,
        {"paramedic": "grace"},
        "the paramedic is a paramedic",
        InvalidInput("grace is a supervisor, not a paramedic"),
    ),
    "paramedic on another call": (
        lambda w, n: w.dispatch("bob", new_call(w), ["M2"], paramedic="carol").call_number,
        {"paramedic": "carol"},
        "the paramedic is on no other call",
        Conflict("paramedic carol is already on {other}"),
    ),
    "no such hospital": (
        lambda w, n: None,
        {"hospital": "NOPE"},
        None,
        NotFound("no hospital NOPE"),
    ),
    "hospital closed": (
        lambda w, n: w.hospital_status("grace", "EAST", "CLOSED"),
        {"hospital": "EAST"},
        "the hospital is not closed",
        Conflict("EAST is closed to ambulances"),
    ),
    "hospital on diversion": (
        lambda w, n: w.hospital_status("grace", "STJ", "DIVERSION"),
        {"hospital": "STJ"},
        "a hospital on diversion takes the override",
        Conflict("STJ is on diversion; repeat with --divert-override to send anyway"),
    ),
}


def _dispatch(world: DispatchService, number: str, request: dict[str, Any]) -> Any:
    args = {"number": number, "units": ["M1"], "who": "alice", **request}
    return world.dispatch(args.pop("who"), args.pop("number"), args.pop("units"), **args)


@pytest.mark.parametrize("case", list(REFUSED))
def test_every_refusal_writes_nothing_and_says_why(
    world: DispatchService, engine: Engine, rules_heard: list[str], case: str
) -> None:
    setup, request, rule, expected = REFUSED[case]
    number = new_call(world)
    other = setup(world, number)
    before = written(engine)
    with pytest.raises(DispatchError) as refused:
        _dispatch(world, number, request)
    words = expected.message.format(n=number, other=other)
    assert (type(refused.value), str(refused.value)) == (type(expected), words)
    assert rules_heard == ([rule] if rule else [])
    assert written(engine) == before


def test_every_rule_has_a_refusal_case() -> None:
    """A rule added to RULES without a case above fails here: its words are untested."""
    assert {rule for _, _, rule, _ in REFUSED.values() if rule} == {
        r.name for r in dispatching.RULES
    }


# Requests that break several rules at once: the first in DOMAIN.md's order is the answer.
FIRST_WINS: dict[str, tuple[Callable[[DispatchService, str], Any], dict[str, Any], str]] = {
    "permission before the call": (
        lambda w, n: None,
        {"who": "carol", "number": "C-99999"},
        "carol is a paramedic; only a dispatcher may do that",
    ),
    "the call before its units": (
        lambda w, n: w.cancel_call("alice", n),
        {"units": ["Q9"]},
        "{n} is already cancelled",
    ),
    "a busy unit before --add": (
        lambda w, n: (
            [w.dispatch("bob", c, [u]) for c, u in ((n, "M2"), (new_call(w), "M1"))][1].call_number
        ),
        {},
        "M1 was dispatched to {other} by bob a moment ago",
    ),
    "--add before the paramedic": (
        lambda w, n: w.dispatch("bob", n, ["M2"]),
        {"paramedic": "grace"},
        "{n} already has M2 (dispatched by bob); use --add to send more",
    ),
    "the paramedic before the hospital": (
        lambda w, n: w.hospital_status("grace", "EAST", "CLOSED"),
        {"paramedic": "grace", "hospital": "EAST"},
        "grace is a supervisor, not a paramedic",
    ),
    "a missing unit before a busy one": (
        lambda w, n: w.dispatch("bob", new_call(w), ["M1"]),
        {"units": ["M1", "Q9"]},
        "no unit Q9",
    ),
}


@pytest.mark.parametrize("case", list(FIRST_WINS))
def test_the_first_rule_in_domain_order_is_the_answer(
    world: DispatchService, engine: Engine, case: str
) -> None:
    setup, request, words = FIRST_WINS[case]
    number = new_call(world)
    other = setup(world, number)
    before = written(engine)
    with pytest.raises(DispatchError, match=f"^{re.escape(words.format(n=number, other=other))}$"):
        _dispatch(world, number, request)
    assert written(engine) == before


def test_add_and_the_diversion_override_dispatch(world: DispatchService) -> None:
    number = new_call(world)
    world.hospital_status("grace", "STJ", "DIVERSION")
    world.dispatch("alice", number, ["M1"], hospital="STJ", override_diversion=True)
    world.dispatch("alice", number, ["M2"], add=True)
    call = world.call(number)
    assert (call.active_units, call.destination_code) == (("M1", "M2"), "STJ")


# -- a rule added in one place -------------------------------------------------------------------

HELD_BACK = dispatching.Rule(
    "M1 is held back (a rule a test adds)",
    dispatching.Kind.UNIT,
    Unit.code != "M1",
    lambda row: Conflict(f"{row.code} is held back for the test"),
)


@pytest.fixture
def held_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """RULES with one more rule, as if it had been written there."""
    gate = dispatching.Gate((*dispatching.RULES, HELD_BACK))
    monkeypatch.setattr(dispatching, "GATE", gate)


@pytest.mark.usefixtures("held_back")
def test_a_rule_added_once_stops_the_write_and_is_explained(
    world: DispatchService, engine: Engine
) -> None:
    number = new_call(world)
    before = written(engine)
    with pytest.raises(Conflict, match=r"^M1 is held back for the test$"):
        world.dispatch("alice", number, ["M1"])
    with pytest.raises(Conflict, match=r"^M1 is held back for the test$"):
        world.dispatch("alice", number, ["M2", "M1"])  # all or nothing
    assert written(engine) == before
    # Only M1 is held back: the rule added is the one that refused.
    assert world.dispatch("alice", number, ["M2"]).units == ("M2",)


@pytest.mark.usefixtures("held_back")
def test_the_rule_added_holds_on_the_command_line_too(
    world: DispatchService,
    engine: Engine,
    db_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    number = new_call(world)
    before = written(engine)
    code = main(["--json", "d", number, "M1"])
    out, _ = capsys.readouterr()
    assert code == 4
    assert json.loads(out)["error"]["message"] == "M1 is held back for the test"
    assert written(engine) == before


@pytest.mark.usefixtures("held_back")
def test_the_statement_alone_is_the_gate(
    world: DispatchService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the explanation switched off, the rule still stops the write: the statement enforces
    it, the explanation only finds the words."""
    runs: list[int] = []
    write = dispatching._write

    def counted(*args: Any) -> Any:
        runs.append(1)
        return write(*args)

    monkeypatch.setattr(dispatching, "_write", counted)
    monkeypatch.setattr(dispatching.Gate, "explain", lambda *a, **k: {})
    number = new_call(world)
    before = written(engine)
    with pytest.raises(Conflict, match="changed at another desk"):
        world.dispatch("alice", number, ["M1"])
    assert written(engine) == before
    assert len(runs) == dispatching.ATTEMPTS


def test_only_the_dispatch_module_writes_an_assignment() -> None:
    """Every way to dispatch (desk, command bar, CLI, simulator) goes through DispatchService
    .dispatch, and so through the one statement; a divert and a lined-up call start theirs in
    their SQL functions (`dispatch_divert`, `dispatch_promote`, migration 0010): no other module
    inserts an assignment."""
    package = Path(dispatch_tui.__file__).parent
    writers = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if "migrations" not in path.parts
        and re.search(r"insert\(\s*Assignment\b|INSERT\s+INTO\s+assignments", path.read_text())
    )
    assert writers == ["service/dispatch.py"]


# -- running it again ------------------------------------------------------------------------------


def test_nothing_written_and_nothing_refused_runs_the_statement_again(
    world: DispatchService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when another desk changed a row between the statement and the read: the first run is
    made to write nothing; the second does the dispatch."""
    write = dispatching._write
    runs: list[object] = []

    def first_comes_up_empty(*args: Any) -> Any:
        runs.append(None)
        return None if len(runs) == 1 else write(*args)

    monkeypatch.setattr(dispatching, "_write", first_comes_up_empty)
    number = new_call(world)
    assert world.dispatch("alice", number, ["M1"]).units == ("M1",)
    assert len(runs) == 2
    assert world.call(number).active_units == ("M1",)


def test_it_gives_up_after_a_bounded_number_of_runs(
    world: DispatchService, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[object] = []

    def always_empty(*args: Any) -> None:
        runs.append(None)

    monkeypatch.setattr(dispatching, "_write", always_empty)
    number = new_call(world)
    before = written(engine)
    with pytest.raises(
        Conflict, match=f"^{number} or its units changed at another desk meanwhile; try again$"
    ):
        world.dispatch("alice", number, ["M1"])
    assert len(runs) == dispatching.ATTEMPTS
    assert written(engine) == before


def test_a_deadlock_runs_the_statement_again(
    world: DispatchService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=transactions.log.name)
    write = dispatching._write
    runs: list[object] = []

    def deadlocked_once(*args: Any) -> Any:
        runs.append(None)
        if len(runs) == 1:
            raise transactions.Retry
        return write(*args)

    monkeypatch.setattr(dispatching, "_write", deadlocked_once)
    number = new_call(world)
    assert world.dispatch("alice", number, ["M1"]).units == ("M1",)
    assert len(runs) == 2
    assert [r.getMessage() for r in caplog.records if r.name == transactions.log.name] == [
        "transaction retried after deadlock/serialization failure (attempt 1)"
    ]


# -- changes committed while the statement waited for the call's lock ---------------------------


def _while_the_call_is_held(
    world: DispatchService, engine: Engine, number: str, meanwhile: Callable[[], object], **kw: Any
) -> object:
    """Dispatch M1 to `number` while another session holds the call's row lock; run `meanwhile`
    (committed by another desk) once the dispatch is waiting; then let it go. Returns what the
    dispatch returned or raised."""
    outcome: list[object] = []

    def dispatcher() -> None:
        try:
            outcome.append(world.dispatch("alice", number, ["M1"], **kw))
        except DispatchError as err:
            outcome.append(err)

    with engine.connect() as holder:
        holder.execute(text("SELECT id FROM calls WHERE number = :n FOR UPDATE"), {"n": number})
        pid = holder.execute(text("SELECT pg_backend_pid()")).scalar_one()
        thread = threading.Thread(target=dispatcher, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waiting_on(engine, pid):
            assert time.monotonic() < deadline, "the dispatch never waited for the call"
            time.sleep(0.01)
        meanwhile()
        holder.rollback()
    thread.join(10)
    assert not thread.is_alive()
    (result,) = outcome
    return result


def _waiting_on(engine: Engine, holder: int) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND :holder = ANY(pg_blocking_pids(pid))"
                ),
                {"holder": holder},
            ).scalar_one()
        )


@pytest.mark.parametrize("status", ["DIVERSION", "CLOSED"])
def test_a_diversion_committed_while_waiting_is_seen(
    world: DispatchService, engine: Engine, status: str
) -> None:
    number = new_call(world)
    result = _while_the_call_is_held(
        world,
        engine,
        number,
        lambda: world.hospital_status("grace", "MERCY", status),
        hospital="MERCY",
    )
    assert isinstance(result, Conflict)
    assert str(result) == (
        "MERCY is on diversion; repeat with --divert-override to send anyway"
        if status == "DIVERSION"
        else "MERCY is closed to ambulances"
    )
    assert world.call(number).assignments == ()


def test_a_paramedic_taken_while_waiting_is_named(world: DispatchService, engine: Engine) -> None:
    """The statement had found carol free, then waited for the call; meanwhile she was put on
    another call. The unique index stops the write, and the explanation names that call."""
    number, other = new_call(world), new_call(world)
    result = _while_the_call_is_held(
        world,
        engine,
        number,
        lambda: world.dispatch("bob", other, ["M2"], paramedic="carol"),
        paramedic="carol",
    )
    assert isinstance(result, Conflict)
    assert str(result) == f"paramedic carol is already on {other}"
    assert world.call(number).assignments == ()


# -- the connections the statement runs on -----------------------------------------------------


@pytest.fixture
def one_connection(world: DispatchService, engine: Engine) -> Iterator[int]:
    """The service's statement connection, made by one dispatch and then killed while idle;
    yields its backend pid."""
    world.dispatch("alice", new_call(world), ["M2"])
    (cursor, _) = world.statements._idle[-1]
    pid = int(cursor.connection.info.backend_pid)
    with engine.connect() as c:
        assert c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    yield pid


@pytest.mark.parametrize("idle", [True, False], ids=["idle: pinged", "just used: not pinged"])
def test_a_statement_connection_that_died_is_never_used_again(
    world: DispatchService, one_connection: int, monkeypatch: pytest.MonkeyPatch, idle: bool
) -> None:
    """As the pool does: a connection idle past PING_AFTER_IDLE_SECONDS is pinged and replaced,
    so the dispatch goes through; one used a moment ago is not pinged, its death surfaces once
    as Unavailable (nothing was changed), and the next dispatch runs on a new connection."""
    number = new_call(world)
    monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0 if idle else 3600.0)
    if not idle:
        with pytest.raises(Unavailable, match="nothing was changed"):
            world.dispatch("alice", number, ["M1"])
        assert world.call(number).assignments == ()
    assert world.dispatch("alice", number, ["M1"]).units == ("M1",)
    (cursor, _) = world.statements._idle[-1]
    assert cursor.connection.info.backend_pid != one_connection
