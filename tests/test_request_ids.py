"""A write retried under its request id is carried out once, and answers what the first did.

Every write carries a request id (`--request-id`, or one made for it); the database keeps it with
what the write made, under a unique key, in the write's own transaction. A retry after a lost
answer finds it: the same outcome comes back, marked `done_before`, and nothing is written twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
import pytest
from sqlalchemy import Engine, text

from dispatch_tui.cli import main
from dispatch_tui.rules import commands as c
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.service import executor
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call

Count = Callable[..., int]


def _intake(nature: str = "Retried call") -> CallIntake:
    return CallIntake(nature=nature, place="Riverton Mall", priority=1)


def _on_scene(world: DispatchService, unit: str = "M1") -> str:
    number = new_call(world)
    world.dispatch("alice", number, [unit])
    world.unit_status("alice", unit, "ON_SCENE")
    return number


def _sent(world: DispatchService, unit: str) -> str:
    world.dispatch("alice", new_call(world), [unit])
    return unit


# Each write verb: its command, built on a fresh world (hospital status is a supervisor's).
WRITES: dict[str, Callable[[DispatchService], c.Write]] = {
    "call new": lambda w: c.NewCall(_intake()),
    "dispatch": lambda w: c.Dispatch(new_call(w), ("M1",)),
    "unit status": lambda w: c.SetUnitStatus("M2", "OUT_OF_SERVICE"),
    "unit locate": lambda w: c.LocateUnit("M2", "40.1", "-83.1"),
    "cancel unit": lambda w: c.CancelUnit(_sent(w, "M1"), "wrong unit"),
    "call cancel": lambda w: c.CancelCall(new_call(w), "caller called back"),
    "call close": lambda w: c.CloseCall(_on_scene(w), "treated and released"),
    "hospital status": lambda w: c.SetHospitalStatus("MERCY", "DIVERSION"),
}


@pytest.mark.parametrize("verb", WRITES)
def test_every_write_retried_under_its_id_is_done_once(
    world: DispatchService, count: Count, verb: str
) -> None:
    command = WRITES[verb](world)
    who = "grace" if verb == "hospital status" else "alice"
    first = executor.execute(world, who, command, request_id="retry-1")
    audit, calls = count("audit_log"), count("calls")
    again = executor.execute(world, who, command, request_id="retry-1")
    assert again.done_before and not first.done_before
    assert again.request_id == first.request_id == "retry-1"
    assert "not repeated" in again.message
    assert again.message.startswith(first.message.split(" (")[0]), (first.message, again.message)
    assert (count("audit_log"), count("calls")) == (audit, calls), "the retry wrote something"
    assert count("requests") == 1


def test_a_retried_call_is_never_taken_twice(world: DispatchService, count: Count) -> None:
    first = executor.execute(world, "alice", c.NewCall(_intake("Once only")), request_id="r-42")
    # The state a retry meets does not refuse it (a new call is always accepted): the key does.
    for _ in range(3):
        again = executor.execute(world, "alice", c.NewCall(_intake("Once only")), request_id="r-42")
        assert again.done_before and again.data.number == first.data.number
    assert count("calls", "nature = 'Once only'") == 1


def test_a_retried_dispatch_after_the_unit_was_freed_is_not_sent_again(
    world: DispatchService, count: Count
) -> None:
    number = new_call(world)
    command = c.Dispatch(number, ("M1",))
    executor.execute(world, "alice", command, request_id="d-1")
    world.cancel_unit("alice", "M1", "test")  # M1 is free again: only the key stops a redo
    again = executor.execute(world, "alice", command, request_id="d-1")
    assert again.done_before
    assert count("assignments") == 1
    assert world.call(number).active_units == ()


def test_an_id_given_again_for_another_action_is_refused(
    world: DispatchService, count: Count
) -> None:
    executor.execute(world, "alice", c.NewCall(_intake("First")), request_id="same")
    for other in (
        c.NewCall(_intake("Second")),
        c.SetUnitStatus("M2", "OUT_OF_SERVICE"),
        c.Dispatch(new_call(world), ("M1",)),
    ):
        with pytest.raises(InvalidInput, match="used for another action"):
            executor.execute(world, "alice", other, request_id="same")
    with pytest.raises(InvalidInput, match="used for another action"):  # another operator
        executor.execute(world, "bob", c.NewCall(_intake("First")), request_id="same")
    assert count("calls", "nature = 'Second'") == 0
    assert world.call(new_call(world)).active_units == ()


def test_a_malformed_request_id_is_refused_before_anything(world: DispatchService) -> None:
    for bad in ("", "has space", "x" * 65, "semi;colon", "é"):
        with pytest.raises(InvalidInput, match="is not a request id"):
            executor.execute(world, "alice", c.NewCall(_intake()), request_id=bad)


def test_the_same_id_from_many_threads_takes_one_call(world: DispatchService, count: Count) -> None:
    numbers: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def take() -> None:
        start.wait()
        try:
            out = executor.execute(world, "alice", c.NewCall(_intake("Race")), request_id="race")
            numbers.append(out.data.number)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(numbers)) == 1 and len(numbers) == 6
    assert count("calls", "nature = 'Race'") == 1


def test_the_same_dispatch_from_two_threads_is_done_once_and_neither_is_refused(
    world: DispatchService, count: Count
) -> None:
    number = new_call(world)
    answers: list[executor.Outcome] = []
    start = threading.Barrier(2)

    def send() -> None:
        start.wait()
        answers.append(
            executor.execute(world, "alice", c.Dispatch(number, ("M1",)), request_id="dd")
        )

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 2, "a retry of the same dispatch was refused"
    assert sorted(a.done_before for a in answers) == [False, True]
    assert count("assignments") == 1


def test_resolve_says_a_committed_write_went_through(world: DispatchService) -> None:
    command = c.NewCall(_intake("Resolved"))
    done = executor.execute(world, "alice", command, request_id="res-1")
    answer = executor.resolved(world, "alice", command, "res-1")
    assert answer.ok and answer.message.startswith("new call 'Resolved': went through")
    assert done.data.number in answer.message


def test_resolve_gives_up_a_write_that_never_came_and_it_can_never_land(
    world: DispatchService, count: Count
) -> None:
    command = c.NewCall(_intake("Never came"))
    answer = executor.resolved(world, "alice", command, "lost-1")
    assert not answer.ok and "did not go through; nothing was changed" in answer.message
    # The write, arriving late under the same id, is refused rather than done behind the desk's back.
    with pytest.raises(InvalidInput, match="was given up"):
        executor.execute(world, "alice", command, request_id="lost-1")
    assert count("calls", "nature = 'Never came'") == 0
    # Asked again, the answer is the same.
    assert not executor.resolved(world, "alice", command, "lost-1").ok


@pytest.mark.parametrize("ends", ["commit", "rollback"])
def test_resolve_waits_for_a_write_still_holding_its_id(
    world: DispatchService, engine: Engine, database_url: str, ends: str
) -> None:
    """A write whose answer was lost may still be finishing: the check waits for it and says
    how it ended, never "did not go through" for a write about to commit."""
    command = c.LocateUnit("M2", "40.2", "-83.2")
    once = c.Once.of("alice", command, "slow-1")
    libpq = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq) as slow:
        slow.execute(
            "INSERT INTO requests (id, fingerprint, unit_id) "
            "SELECT %s, %s, id FROM units WHERE code = 'M2'",
            (once.id, once.fingerprint),
        )
        answers: list[executor.Answer] = []
        asking = threading.Thread(
            target=lambda: answers.append(executor.resolved(world, "alice", command, once.id))
        )
        asking.start()
        asking.join(0.5)
        assert asking.is_alive(), "the check did not wait for the write holding the id"
        slow.commit() if ends == "commit" else slow.rollback()
        asking.join()
    assert answers[0].ok is (ends == "commit"), answers[0].message


def test_the_cli_takes_a_request_id_and_a_retry_is_not_repeated(
    world: DispatchService, db_env: dict[str, str], capsys: pytest.CaptureFixture[str], count: Count
) -> None:
    argv = [
        "--request-id",
        "cli-1",
        "--json",
        "call",
        "new",
        "Script call",
        "-l",
        "1 Main St",
        "-p",
        "2",
    ]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert '"request_id": "cli-1"' in first and '"done_before": false' in first
    assert main(["--request-id=cli-1", *argv[2:]]) == 0
    assert '"done_before": true' in capsys.readouterr().out
    assert (
        main(["--request-id", "cli-1", "call", "new", "Script call", "-l", "1 Main St", "-p", "2"])
        == 0
    )
    assert "not repeated" in capsys.readouterr().out
    assert count("calls", "nature = 'Script call'") == 1
    assert main(["--request-id", "cli-1", "os", "M2"]) == 2
    assert "used for another action" in capsys.readouterr().err
    assert main(["--request-id", "not valid", "os", "M2"]) == 2


def test_requests_are_kept_only_by_staff_logins(engine: Engine) -> None:
    with engine.connect() as conn:
        rights = dict(
            conn.execute(
                text(
                    "SELECT r, has_table_privilege(r, 'requests', 'INSERT') "
                    "FROM unnest(ARRAY['dispatch_operator', 'dispatch_board']) r"
                )
            ).all()
        )
    assert rights == {"dispatch_operator": True, "dispatch_board": False}
