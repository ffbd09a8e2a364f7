"""The one-statement dispatch (`domain/at_once.py`): done in one round trip when everything holds,
nothing written when anything does not (the step-by-step transaction then gives the answer), and
the same result as the step-by-step transaction when it does the work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from dispatch_tui.rules.errors import DispatchError
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import CallView
from dispatch_tui.service import dispatch as at_once
from dispatch_tui.service.dispatch_service import DispatchService


def new_call(svc: DispatchService) -> str:
    return svc.create_call(
        "alice", CallIntake(nature="Chest pain", place="Riverton Mall", priority=1)
    ).number


def one_statement(
    world: DispatchService,
    number: str,
    units: list[str],
    *,
    who: str = "alice",
    paramedic: str | None = None,
    hospital: str | None = None,
    override: bool = False,
    add: bool = False,
) -> Any:
    return at_once.run(
        world.autocommit,
        world.desk,
        who,
        number,
        units,
        paramedic=paramedic,
        hospital=hospital,
        override_diversion=override,
        add=add,
    )


def written(engine: Engine) -> tuple[Any, ...]:
    """Everything a dispatch could write, as one comparable value."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(text(q)).all()
            for q in (
                "SELECT count(*) FROM assignments",
                "SELECT count(*) FROM audit_log",
                "SELECT code, status, status_since FROM units ORDER BY id",
                "SELECT number, status, first_dispatched_at, destination_hospital_id FROM calls"
                " ORDER BY id",
            )
        )


def test_the_plain_dispatch_is_one_statement(world: DispatchService, engine: Engine) -> None:
    number = new_call(world)
    sent: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        done = world.dispatch("alice", number, ["M1"], paramedic="carol", hospital="MERCY")
    finally:
        event.remove(engine, "before_cursor_execute", note)
    assert len(sent) == 1 and "INSERT INTO assignments" in sent[0]
    assert (done.call_number, done.units) == (number, ("M1",))
    call = world.call(number)
    assert (call.status, call.active_units, call.destination_code) == (
        "DISPATCHED",
        ("M1",),
        "MERCY",
    )
    assert call.assignments[0].paramedic == "carol"


# Each case: the setup (given the call's number), then the refused request's keyword arguments.
REFUSED: dict[str, tuple[Callable[[DispatchService, str], object], dict[str, Any]]] = {
    "no such call": (lambda w, n: None, {"number": "C-99999"}),
    "no such unit": (lambda w, n: None, {"units": ["Q9"]}),
    "unit busy": (lambda w, n: w.dispatch("bob", new_call(w), ["M1"]), {}),
    "one of two units busy": (
        lambda w, n: w.dispatch("bob", new_call(w), ["M2"]),
        {"units": ["M1", "M2"]},
    ),
    "unit out of service": (lambda w, n: w.unit_status("alice", "M1", "OUT_OF_SERVICE"), {}),
    "call already dispatched, no add": (lambda w, n: w.dispatch("bob", n, ["M2"]), {}),
    "call cancelled": (lambda w, n: w.cancel_call("alice", n), {"add": True}),
    "operator is a paramedic": (lambda w, n: None, {"who": "carol"}),
    "operator is a supervisor": (lambda w, n: None, {"who": "grace"}),
    "operator unknown": (lambda w, n: None, {"who": "mallory"}),
    "paramedic on another call": (
        lambda w, n: w.dispatch("bob", new_call(w), ["M2"], paramedic="carol"),
        {"paramedic": "carol"},
    ),
    "paramedic is a supervisor": (lambda w, n: None, {"paramedic": "grace"}),
    "hospital closed": (
        lambda w, n: w.hospital_status("grace", "EAST", "CLOSED"),
        {"hospital": "EAST"},
    ),
    "hospital on diversion": (
        lambda w, n: w.hospital_status("grace", "STJ", "DIVERSION"),
        {"hospital": "STJ"},
    ),
    "no such hospital": (lambda w, n: None, {"hospital": "NOPE"}),
}


# Refusals the one-statement path answers itself (a unit missing or taken); the rest it leaves
# to the step-by-step transaction.
ANSWERED_AT_ONCE = {"no such unit", "unit busy", "one of two units busy", "unit out of service"}


@pytest.mark.parametrize("case", list(REFUSED))
def test_anything_amiss_writes_nothing_and_the_answer_is_the_transactions(
    world: DispatchService, engine: Engine, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    setup, request = REFUSED[case]
    number = new_call(world)
    setup(world, number)
    before = written(engine)
    args = {"number": number, "units": ["M1"], **request}
    number, units = args.pop("number"), args.pop("units")
    if case in ANSWERED_AT_ONCE:
        with pytest.raises(DispatchError) as fast:
            one_statement(world, number, units, **args)
    else:
        assert one_statement(world, number, units, **args) is None
    assert written(engine) == before
    # What the step-by-step transaction says, word for word the same when answered at once.
    monkeypatch.setattr(at_once, "run", lambda *a, **k: None)
    who = args.pop("who", "alice")
    with pytest.raises(DispatchError) as slow:
        world.dispatch(who, number, units, override_diversion=args.pop("override", False), **args)
    if case in ANSWERED_AT_ONCE:
        assert (type(fast.value), str(fast.value)) == (type(slow.value), str(slow.value))
    assert written(engine) == before


def test_add_and_the_diversion_override_are_done_at_once(world: DispatchService) -> None:
    number = new_call(world)
    world.hospital_status("grace", "STJ", "DIVERSION")
    assert one_statement(world, number, ["M1"], hospital="STJ", override=True) is not None
    assert one_statement(world, number, ["M2"], add=True) is not None
    call = world.call(number)
    assert (call.active_units, call.destination_code) == (("M1", "M2"), "STJ")


EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _comparable(call: CallView) -> CallView:
    """A call without what differs between two identical dispatches: ids, numbers and times."""
    assert call.first_dispatched_at is not None
    return replace(
        call,
        id=0,
        number="",
        received_at=EPOCH,
        first_dispatched_at=EPOCH,
        assignments=tuple(
            replace(a, id=0, call_number="", notified_at=EPOCH) for a in call.assignments
        ),
    )


@pytest.mark.parametrize(
    "request_",
    [
        {},
        {"paramedic": "carol", "hospital": "MERCY"},
        {"hospital": "MERCY"},
        {"add": True, "hospital": "STJ", "override_diversion": True},
    ],
    ids=[
        "plain",
        "paramedic and hospital",
        "two units and hospital",
        "added, diversion overridden",
    ],
)
def test_both_paths_write_the_same(
    world: DispatchService,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    request_: dict[str, Any],
) -> None:
    world.hospital_status("grace", "STJ", "DIVERSION")
    results = []
    single = "paramedic" in request_
    for units, step_by_step in ((["M1", "M2"], False), (["M3", "M4"], True)):
        if single:
            units = units[:1]
        number = new_call(world)
        if request_.get("add"):
            world.dispatch("bob", number, [units.pop()])
        with monkeypatch.context() as patch:
            if step_by_step:
                patch.setattr(at_once, "run", lambda *a, **k: None)
            world.dispatch("alice", number, units, **request_)
        with engine.connect() as conn:
            audit = conn.execute(
                text(
                    "SELECT operator, desk, action, details FROM audit_log l"
                    " JOIN calls c ON c.id = l.call_id WHERE c.number = :n ORDER BY l.id"
                ),
                {"n": number},
            ).all()
        results.append((world.call(number), audit))
        world.cancel_call("alice", number)  # frees the paramedic for the second path
    (fast, fast_audit), (slow, slow_audit) = results
    assert fast_audit == slow_audit
    fast = replace(
        fast,
        assignments=tuple(
            replace(a, unit_code={"M1": "M3", "M2": "M4"}[a.unit_code]) for a in fast.assignments
        ),
    )
    assert _comparable(fast) == _comparable(slow)


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
    assert isinstance(result, DispatchError)
    assert str(result).startswith(
        "MERCY is " + ("on diversion" if status == "DIVERSION" else "closed")
    )
    assert world.call(number).assignments == ()


def test_a_paramedic_taken_while_waiting_is_named(world: DispatchService, engine: Engine) -> None:
    number, other = new_call(world), new_call(world)
    result = _while_the_call_is_held(
        world,
        engine,
        number,
        lambda: world.dispatch("bob", other, ["M2"], paramedic="carol"),
        paramedic="carol",
    )
    assert isinstance(result, DispatchError)
    assert str(result) == f"paramedic carol is already on {other}"
    assert world.call(number).assignments == ()
