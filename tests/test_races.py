"""Races between desks, with real concurrency on a real PostgreSQL.

Every scenario starts its workers in real threads; each worker's action opens its own Session (and
so its own pooled connection), and a `threading.Barrier` releases them all at once so they really
contend for the same rows. Each worker's outcome is kept, the value or the exception, and the
threads are joined with a deadline, so a deadlock or a hang fails the test instead of freezing it.
Where the window that matters is too narrow for thread timing to hit, the workers are first
queued on a lock the test holds and let go at one instant (`race_held`).

Each test checks three things: the outcomes (exactly one winner where only one may win, and every
loser gets a domain `Conflict` saying who won, never a raw database error), the rows afterwards
(assignments, statuses, audit log), and the invariants of the whole database (`violations`,
shared with the soak and the simulator tests in `invariants.py`).
`write()` retries deadlocks silently, so the tests also check its log: a retry means two actions
took their locks in different orders, which the service promises never happens.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, text

from dispatch_tui.rules.errors import Conflict
from dispatch_tui.rules.views import Dispatched, UnitView
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_calls
from tests.invariants import ACTIVE, INVARIANTS, violations

pytestmark = pytest.mark.slow

# Longer than the service's 5 s lock_timeout, so a merely slow lock wait surfaces as a Conflict
# first; only a real hang (or a deadlock nobody detects) reaches this deadline.
JOIN_TIMEOUT = 15.0
TRANSACTIONS_LOG = "dispatch_tui.service.transactions"

# -- running a race ------------------------------------------------------------------------------


def race(
    actions: Sequence[Callable[[], Any]],
    timeout: float = JOIN_TIMEOUT,
    *,
    gate: Callable[[], None] | None = None,
) -> list[Any]:
    """Run each action in its own thread, all released together; return each value or exception.

    Slot i of the result belongs to actions[i], so the test can tell exactly who won. `gate`, if
    given, runs in the test's thread while the workers run (see `race_held`).
    """
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def worker(slot: int, action: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout)
            results[slot] = action()
        except Exception as err:  # kept, not raised: the test asserts on every outcome
            results[slot] = err

    # Daemon threads: if one hangs, the test fails below and the run can still exit.
    threads = [
        threading.Thread(target=worker, args=(i, a), name=f"race-{i}", daemon=True)
        for i, a in enumerate(actions)
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    try:
        if gate is not None:
            gate()
    finally:
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        pytest.fail(
            f"{len(stuck)} of {len(threads)} workers still running after {timeout} s "
            f"(deadlock or hang): {', '.join(stuck)}"
        )
    return results


def lock_waiters(engine: Engine) -> int:
    """How many sessions on the test database are waiting for a lock right now."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        )


def race_held(
    engine: Engine, actions: Sequence[Callable[[], Any]], hold: str, **params: Any
) -> list[Any]:
    """`race`, with the workers first queued on a lock the test itself holds (the `hold`
    statement), then all let go at one instant when the test commits.

    Thread timing alone rarely lines workers up on the narrow windows that matter (between a
    transaction's start and its first row lock, or between two row locks); queued on the
    server, they are. The test waits for what the server reports (every worker waiting on a
    lock), never for a guessed delay.
    """
    with engine.connect() as blocker:
        blocker.execute(text(hold), params)

        def gate() -> None:
            deadline = time.monotonic() + JOIN_TIMEOUT
            try:
                while (queued := lock_waiters(engine)) < len(actions):
                    if time.monotonic() > deadline:
                        pytest.fail(f"only {queued} of {len(actions)} workers reached the lock")
            finally:
                blocker.commit()

        return race(actions, gate=gate)


# Every write action reads its operator's row before it takes any row lock: holding the staff
# table queues each worker with its transaction (and so `now()`) already started and none of its
# row locks taken yet; let go together, they take the contested rows in an order that need not
# be the order they started in.
HOLD_STAFF = "LOCK TABLE staff IN ACCESS EXCLUSIVE MODE"


def failed(result: Any) -> bool:
    return isinstance(result, BaseException)


def assert_only_domain_errors(results: Sequence[Any]) -> None:
    """A loser must get a Conflict it can show the dispatcher, never a database exception."""
    raw = [r for r in results if failed(r) and not isinstance(r, Conflict)]
    if raw:
        shown = "\n".join("".join(traceback.format_exception(err)) for err in raw[:3])
        pytest.fail(f"{len(raw)} worker(s) got something other than a Conflict:\n{shown}")


def retries(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Messages of transactions `write()` silently re-ran after a deadlock/serialization failure."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == TRANSACTIONS_LOG and "retried" in r.getMessage()
    ]


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    # The retry message is logged at INFO; the handler sees records from every worker thread.
    caplog.set_level(logging.INFO, logger=TRANSACTIONS_LOG)
    return caplog


# -- the world and what is in the database ------------------------------------------------------


def side_by_side(actions: Sequence[Callable[[], Any]]) -> list[Any]:
    """Setup steps that touch different rows, run in parallel only to keep the file fast; any
    error is raised as is, since setup has no loser."""
    results = race(actions)
    for r in results:
        if failed(r):
            raise r
    return results


def rows(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def audit_count(engine: Engine, action: str) -> int:
    return int(rows(engine, "SELECT count(*) FROM audit_log WHERE action = :a", a=action)[0][0])


def active_assignments(engine: Engine) -> list[tuple[str, str]]:
    """(unit, call) of every active assignment, sorted."""
    return sorted(
        (u, c)
        for u, c in rows(
            engine,
            f"""SELECT u.code, c.number FROM assignments a
                JOIN units u ON u.id = a.unit_id JOIN calls c ON c.id = a.call_id
                WHERE {ACTIVE}""",
        )
    )


def statuses(engine: Engine, table: str) -> dict[str, str]:
    key = "code" if table == "units" else "number"
    return {k: s for k, s in rows(engine, f"SELECT {key}, status FROM {table}")}


def add_units(engine: Engine, codes: Sequence[str]) -> None:
    """More units than the demo's twelve, for races with sixteen of them."""
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO units (code, capability, station_id)"
                " SELECT :code, 'BLS', id FROM stations WHERE code = 'S1'"
            ),
            [{"code": c} for c in codes],
        )


# -- 1. one unit, sixteen calls ------------------------------------------------------------------


def test_one_unit_sixteen_calls_exactly_one_dispatch_wins(
    world: DispatchService, engine: Engine, log: pytest.LogCaptureFixture
) -> None:
    """Sixteen desks send M1 to sixteen different calls at once: one booking, fifteen refusals
    that name the winner, and nothing written for the refused ones."""
    calls = new_calls(world, 16)
    users = ["alice" if i % 2 == 0 else "bob" for i in range(16)]

    results = race([partial(world.dispatch, users[i], calls[i], ["M1"]) for i in range(16)])

    assert_only_domain_errors(results)
    winners = [i for i, r in enumerate(results) if not failed(r)]
    assert len(winners) == 1, f"{len(winners)} desks booked M1: {[calls[i] for i in winners]}"
    (w,) = winners
    won: Dispatched = results[w]
    assert (won.call_number, won.units) == (calls[w], ("M1",))
    call = world.call(calls[w])
    assert (call.status, call.active_units) == ("DISPATCHED", ("M1",))
    # Each loser is told who got there first, on which call, so the desk can act on it.
    expected = f"M1 was dispatched to {calls[w]} by {users[w]} a moment ago"
    assert [str(r) for i, r in enumerate(results) if i != w] == [expected] * 15

    assert active_assignments(engine) == [("M1", calls[w])]
    call_status = statuses(engine, "calls")
    assert call_status.pop(calls[w]) == "DISPATCHED"
    assert set(call_status.values()) == {"RECEIVED"} and len(call_status) == 15
    assert statuses(engine, "units")["M1"] == "EN_ROUTE"
    # The refused dispatches wrote nothing: one audit row, one assignment row in total.
    assert rows(
        engine,
        """SELECT c.number, l.operator FROM audit_log l JOIN calls c ON c.id = l.call_id
           WHERE l.action = 'dispatch'""",
    ) == [(calls[w], users[w])]
    assert rows(engine, "SELECT count(*) FROM assignments") == [(1,)]
    assert violations(engine) == ""
    assert retries(log) == []


# -- 2. sixteen units, one call ------------------------------------------------------------------

SIXTEEN = [f"M{i}" for i in range(1, 7)] + [f"B{i}" for i in range(1, 7)] + ["M7", "M8", "B7", "B8"]


def test_sixteen_units_one_call_only_one_dispatch_without_add(
    world: DispatchService, engine: Engine, log: pytest.LogCaptureFixture
) -> None:
    """Sixteen desks each send a different unit to the same call: the call gets one unit, the
    other fifteen stay available."""
    add_units(engine, SIXTEEN[12:])
    (call,) = new_calls(world, 1)
    users = ["alice" if i % 2 == 0 else "bob" for i in range(16)]

    results = race([partial(world.dispatch, users[i], call, [u]) for i, u in enumerate(SIXTEEN)])

    assert_only_domain_errors(results)
    winners = [i for i, r in enumerate(results) if not failed(r)]
    assert len(winners) == 1, f"{call} got {len(winners)} separate dispatches"
    (w,) = winners
    unit = SIXTEEN[w]
    # Without --add, a second dispatch to a call another desk just dispatched is a conflict that
    # names what is already on its way.
    expected = f"{call} already has {unit} (dispatched by {users[w]}); use --add to send more"
    assert [str(r) for i, r in enumerate(results) if i != w] == [expected] * 15

    assert active_assignments(engine) == [(unit, call)]
    unit_status = statuses(engine, "units")
    assert unit_status.pop(unit) == "EN_ROUTE"
    assert sorted(unit_status) == sorted(set(SIXTEEN) - {unit})
    assert set(unit_status.values()) == {"AVAILABLE"}
    assert statuses(engine, "calls") == {call: "DISPATCHED"}
    assert audit_count(engine, "dispatch") == 1
    assert violations(engine) == ""
    assert retries(log) == []


def test_sixteen_units_one_call_with_add_all_join_in_turn(
    world: DispatchService, engine: Engine, log: pytest.LogCaptureFixture
) -> None:
    """With --add every dispatch succeeds, and each one sees the ones committed before it."""
    add_units(engine, SIXTEEN[12:])
    (call,) = new_calls(world, 1)
    users = ["alice" if i % 2 == 0 else "bob" for i in range(16)]

    # Queued with their transactions begun, the sixteen then take the call row in whatever order
    # the server runs them, not the order they started in.
    results = race_held(
        engine,
        [partial(world.dispatch, users[i], call, [u], add=True) for i, u in enumerate(SIXTEEN)],
        HOLD_STAFF,
    )

    assert [r for r in results if failed(r)] == []
    assert active_assignments(engine) == sorted((u, call) for u in SIXTEEN)
    assert set(statuses(engine, "units").values()) == {"EN_ROUTE"}
    assert statuses(engine, "calls") == {call: "DISPATCHED"}
    # Serialised on the call row: exactly one dispatch found the call empty (added=false), and
    # the call records that one as its first dispatcher.
    first = rows(
        engine,
        """SELECT l.operator, c.dispatched_by_id = l.operator_id FROM audit_log l
           JOIN calls c ON c.id = l.call_id
           WHERE l.action = 'dispatch' AND NOT (l.details->>'added')::boolean""",
    )
    assert len(first) == 1 and first[0][1] is True, first
    # A dispatch that queued for the call row must not record its unit as notified before the
    # call's first dispatch, which it waited for.
    view = world.call(call)
    earliest = min(view.assignments, key=lambda a: a.notified_at)
    assert view.first_dispatched_at is not None
    assert earliest.notified_at >= view.first_dispatched_at, (
        f"{earliest.unit_code} notified at {earliest.notified_at}, before {call} was first "
        f"dispatched at {view.first_dispatched_at} (by {view.dispatched_by})"
    )
    assert audit_count(engine, "dispatch") == 16
    assert violations(engine) == ""
    assert retries(log) == []


# -- 3. position updates racing dispatches --------------------------------------------------------

RACE_UNITS = ["M1", "M2", "M3", "M4", "M5", "M6"]
MAX_FIXES = 200  # a bound on each locator's loop, in case the dispatchers never finish


def test_position_updates_never_undo_a_dispatch(
    world: DispatchService, engine: Engine, log: pytest.LogCaptureFixture
) -> None:
    """Crews keep sending positions while desks dispatch their units: neither write loses the
    other's columns (the old whole-row save once put a dispatched unit back to available)."""
    calls = new_calls(world, 8)
    # 8 locators and 8 dispatchers over six units: M1 and M2 get two of each, so two dispatches
    # also race each other, and two locators write the same unit.
    located = [RACE_UNITS[k % 6] for k in range(8)]
    dispatched = [RACE_UNITS[k % 6] for k in range(8)]
    pending = [8]
    lock = threading.Lock()
    all_dispatched = threading.Event()

    def dispatcher(k: int) -> Dispatched:
        try:
            return world.dispatch("alice", calls[k], [dispatched[k]])
        finally:
            with lock:
                pending[0] -= 1
                if pending[0] == 0:
                    all_dispatched.set()

    def locator(k: int) -> list[tuple[float, float, UnitView]]:
        # Keeps moving the unit until every dispatch has finished, then a few fixes more, so
        # position writes land before, during and after the dispatches.
        written = []
        after = 0
        for j in range(MAX_FIXES):
            lat, lon = 40.0 + k / 100 + j / 100_000, -83.0 - k / 100 - j / 100_000
            written.append((lat, lon, world.locate_unit("alice", located[k], lat, lon)))
            if all_dispatched.is_set():
                after += 1
                if after == 3:
                    break
        return written

    results = race(
        [partial(locator, k) for k in range(8)] + [partial(dispatcher, k) for k in range(8)]
    )
    fixes, dispatches = results[:8], results[8:]

    assert_only_domain_errors(results)
    assert [f for f in fixes if failed(f)] == [], "a position update was refused"
    # Every unit ends up dispatched exactly once; M1 and M2 had two dispatchers, one wins each.
    winners = [k for k, r in enumerate(dispatches) if not failed(r)]
    assert sorted(dispatched[k] for k in winners) == RACE_UNITS
    for k, r in enumerate(dispatches):
        if failed(r):
            assert re.fullmatch(rf"{dispatched[k]} was dispatched to C-\d+ by alice .*", str(r))
    assert active_assignments(engine) == sorted((dispatched[k], calls[k]) for k in winners)
    # No lost update: a position written after the dispatch never put the unit back.
    unit_status = statuses(engine, "units")
    assert {u: unit_status[u] for u in RACE_UNITS} == dict.fromkeys(RACE_UNITS, "EN_ROUTE")
    # ... nor did any locator ever read its unit AVAILABLE again once it had seen it EN_ROUTE.
    for k, written in enumerate(fixes):
        seen = [view.status for _, _, view in written]
        if "EN_ROUTE" in seen:
            assert "AVAILABLE" not in seen[seen.index("EN_ROUTE") :], (located[k], seen)

    # The last position written is kept: the unit's row holds the position of its last audited
    # fix (the row lock orders same-unit writes, and each audits after its update), and that is
    # the final fix of one of the unit's locators. The dispatch, which writes only the status,
    # did not put an older position back.
    for unit in RACE_UNITS:
        ((lat, lon, last_lat, last_lon),) = rows(
            engine,
            """SELECT u.lat, u.lon, (l.details->>'lat')::float8, (l.details->>'lon')::float8
               FROM units u JOIN audit_log l ON l.unit_id = u.id AND l.action = 'unit_position'
               WHERE u.code = :code ORDER BY l.id DESC LIMIT 1""",
            code=unit,
        )
        finals = {w[-1][:2] for k, w in enumerate(fixes) if located[k] == unit}
        assert (lat, lon) == (last_lat, last_lon)
        assert (lat, lon) in finals, (unit, (lat, lon), finals)
    # Every update committed exactly once, with its audit row.
    assert audit_count(engine, "unit_position") == sum(len(w) for w in fixes)
    assert audit_count(engine, "dispatch") == 6
    assert violations(engine) == ""
    assert retries(log) == []


# -- 4. status changes racing cancels ------------------------------------------------------------

PAIR_UNITS = ["M1", "M2", "M3", "M4", "M5", "M6", "B1", "B2"]


def test_on_scene_racing_cancel_leaves_a_consistent_state(
    world: DispatchService, engine: Engine, log: pytest.LogCaptureFixture
) -> None:
    """Eight units per round, each with one desk reporting it on scene while another cancels it
    (or its whole call); two rounds, swapping which pairs cancel the whole call, so each unit
    meets both kinds of cancel."""
    for rnd in range(2):
        calls = new_calls(world, len(PAIR_UNITS))
        side_by_side(
            [
                partial(world.dispatch, "alice", c, [u])
                for c, u in zip(calls, PAIR_UNITS, strict=True)
            ]
        )
        whole_call = [(i + rnd) % 2 == 0 for i in range(len(PAIR_UNITS))]
        actions: list[Callable[[], Any]] = []
        for i, (call, unit) in enumerate(zip(calls, PAIR_UNITS, strict=True)):
            actions.append(partial(world.unit_status, "alice", unit, "ON_SCENE"))
            if whole_call[i]:
                actions.append(partial(world.cancel_call, "bob", call, "caller cancelled"))
            else:
                actions.append(partial(world.cancel_unit, "bob", unit, "sent elsewhere"))

        # The first round as thread timing has it; then with every transaction begun before any
        # takes its call lock, so which one started first and which one locks first can differ.
        results = race(actions) if rnd == 0 else race_held(engine, actions, HOLD_STAFF)

        assert_only_domain_errors(results)
        views = {v.number: v for v in world.calls(open_only=False)}
        for i, (call, unit) in enumerate(zip(calls, PAIR_UNITS, strict=True)):
            on_scene, cancel = results[2 * i], results[2 * i + 1]
            view = views[call]
            (a,) = view.assignments
            arrived = not failed(on_scene)
            if failed(on_scene):
                assert unit in str(on_scene), on_scene
            if whole_call[i]:
                # Cancelling the call wins either way (an open call can always be cancelled,
                # taking an arrived unit with it); the on-scene report may have come first.
                assert not failed(cancel), cancel
                assert view.status == "CANCELLED"
                # A unit that arrived first is cleared (it reached the patient); one still on its
                # way is cancelled. Either way the record must not end before the unit arrived.
                if arrived and a.on_scene_at is not None:
                    assert a.unit_status == "CLEARED" and a.cleared_at is not None
                    assert a.cleared_at >= a.on_scene_at, (
                        f"round {rnd}: {unit} on {call} cleared at {a.cleared_at}, "
                        f"before it arrived at {a.on_scene_at}"
                    )
                else:
                    assert a.unit_status == "CANCELLED" and a.cancelled_at is not None
            else:
                # A unit that has arrived is cleared, not cancelled: exactly one of the two wins.
                assert arrived != (not failed(cancel)), (unit, on_scene, cancel)
                if arrived:
                    assert str(cancel) == (
                        f"{unit} is on scene; clear it (av {unit}) instead of cancelling"
                    )
                    assert (view.status, a.unit_status) == ("ON_SCENE", "ON_SCENE")
                else:
                    assert (view.status, a.unit_status) == ("RECEIVED", "CANCELLED")
            assert (a.on_scene_at is not None) == arrived, (unit, on_scene, a)

        assert violations(engine) == "", f"round {rnd}"
        # Clear the units that arrived and stayed, so the next round starts with all available.
        side_by_side(
            [
                partial(world.unit_status, "alice", unit, "AVAILABLE")
                for unit, status in statuses(engine, "units").items()
                if status == "ON_SCENE"
            ]
        )
        assert set(statuses(engine, "units").values()) == {"AVAILABLE"}

    assert retries(log) == []


def test_transport_racing_close_call_leaves_a_consistent_state(
    world: DispatchService, engine: Engine, log: pytest.LogCaptureFixture
) -> None:
    """Eight units on scene; one desk reports each one transporting while another closes its
    call. Closing an arrived call always succeeds (it clears the unit, transporting or not); the
    transport report either came first or gets a Conflict. Two rounds, the second queued like
    the on-scene test's."""
    for rnd in range(2):
        calls = new_calls(world, len(PAIR_UNITS))

        def arrive(call: str, unit: str) -> None:
            world.dispatch("alice", call, [unit])
            world.unit_status("alice", unit, "ON_SCENE")

        side_by_side([partial(arrive, c, u) for c, u in zip(calls, PAIR_UNITS, strict=True)])
        actions: list[Callable[[], Any]] = []
        for call, unit in zip(calls, PAIR_UNITS, strict=True):
            actions.append(
                partial(world.unit_status, "alice", unit, "TRANSPORTING", hospital="MERCY")
            )
            actions.append(partial(world.close_call, "bob", call, "treated and released"))

        results = race(actions) if rnd == 0 else race_held(engine, actions, HOLD_STAFF)

        assert_only_domain_errors(results)
        views = {v.number: v for v in world.calls(open_only=False)}
        for i, (call, unit) in enumerate(zip(calls, PAIR_UNITS, strict=True)):
            transport, close = results[2 * i], results[2 * i + 1]
            assert not failed(close), close
            view = views[call]
            (a,) = view.assignments
            assert (view.status, a.unit_status) == ("CLOSED", "CLEARED")
            assert (a.transporting_at is not None) == (not failed(transport)), (unit, transport)
            if a.transporting_at is not None:
                assert a.cleared_at is not None and a.cleared_at >= a.transporting_at

        assert violations(engine) == "", f"round {rnd}"
        assert set(statuses(engine, "units").values()) == {"AVAILABLE"}

    assert retries(log) == []


# -- 5. the same units in opposite order ----------------------------------------------------------

PAIRS = [("M1", "M2"), ("M3", "M4"), ("M5", "M6"), ("B1", "B2"), ("B3", "B4"), ("B5", "B6")]


def test_opposite_unit_order_never_deadlocks(
    world: DispatchService, engine: Engine, log: pytest.LogCaptureFixture
) -> None:
    """alice sends [x, y] to one call while bob sends [y, x] to another, for six pairs at once,
    two rounds. Locks are taken in unit id order whatever order the units are named in, so
    there is no deadlock to detect, not even one `write()` would silently retry.

    The window for a deadlock is the instant between a worker's two row locks, far too short to
    hit by thread timing alone, so the test holds all twelve units itself until every worker is
    queued on them: had the workers locked in the order named, alice would then take x and bob
    y, and each would wait for the other."""
    units = [u for pair in PAIRS for u in pair]
    for rnd in range(2):
        calls = new_calls(world, 2 * len(PAIRS))
        actions: list[Callable[[], Any]] = []
        for p, (x, y) in enumerate(PAIRS):
            actions.append(partial(world.dispatch, "alice", calls[2 * p], [x, y]))
            actions.append(partial(world.dispatch, "bob", calls[2 * p + 1], [y, x]))

        hold = "SELECT id FROM units WHERE code = ANY(:codes) FOR UPDATE"
        results = race_held(engine, actions, hold, codes=units)

        assert_only_domain_errors(results)
        booked = []
        for p, (x, y) in enumerate(PAIRS):
            pair = results[2 * p : 2 * p + 2]
            won = [j for j, r in enumerate(pair) if not failed(r)]
            assert len(won) == 1, f"round {rnd}, {x}/{y}: {pair}"
            (j,) = won
            winner_call, loser_call = calls[2 * p + j], calls[2 * p + 1 - j]
            who = "alice" if j == 0 else "bob"
            assert re.fullmatch(
                rf"({x}|{y}) was dispatched to {winner_call} by {who} a moment ago",
                str(pair[1 - j]),
            ), pair[1 - j]
            # All or nothing: the winner has both units, the loser none.
            assert sorted(pair[j].units) == sorted((x, y))
            assert sorted(world.call(winner_call).active_units) == sorted((x, y))
            loser_view = world.call(loser_call)
            assert (loser_view.status, loser_view.assignments) == ("RECEIVED", ())
            booked += [(x, winner_call), (y, winner_call)]
        assert active_assignments(engine) == sorted(booked)
        assert audit_count(engine, "dispatch") == 2 * len(PAIRS) * (rnd + 1)
        assert violations(engine) == "", f"round {rnd}"
        side_by_side([partial(world.cancel_call, "alice", c, "round over") for _, c in booked[::2]])

    assert retries(log) == []


def test_a_unit_added_as_the_calls_last_unit_is_cancelled_leaves_it_dispatched(
    world: DispatchService, engine: Engine, database_url: str
) -> None:
    """A call's last unit cancelled (the call pending again) commits while a dispatch adding
    another unit waits on it. The dispatch's statement saw the call still dispatched; it must
    still leave the call dispatched, never pending with a unit on the way (found by the soak)."""
    import psycopg

    from tests.test_roles import libpq

    (number,) = new_calls(world, 1)
    world.dispatch("alice", number, ["M4"])
    with psycopg.connect(libpq(database_url)) as cancel:
        # What a cancel of M4 does, held open: the call locked, M4 off it, the call pending.
        call_id = cancel.execute(
            "SELECT id FROM calls WHERE number = %s FOR UPDATE", (number,)
        ).fetchone()
        assert call_id is not None
        cancel.execute(
            "UPDATE assignments SET cancelled_at = now() WHERE call_id = %s", (call_id[0],)
        )
        cancel.execute("UPDATE units SET status = 'AVAILABLE' WHERE code = 'M4'")
        cancel.execute("UPDATE calls SET status = 'RECEIVED' WHERE id = %s", (call_id[0],))
        added: list[object] = []
        adding = threading.Thread(
            target=lambda: added.append(world.dispatch("alice", number, ["M2"], add=True))
        )
        adding.start()
        time.sleep(0.5)  # its statement has begun, and waits for the call
        cancel.commit()
    adding.join(timeout=10)
    assert added, "the dispatch did not finish"
    call = world.call(number)
    assert (call.status, call.active_units) == ("DISPATCHED", ("M2",))
    # (The cancel above writes no audit rows: only the states are checked.)
    states = (
        "a call's status disagrees with its units",
        "a unit's status disagrees with its assignments",
    )
    assert violations(engine, {k: INVARIANTS[k] for k in states}) == ""


def test_taking_back_a_lined_up_call_never_deadlocks_with_its_calls_cancel(
    world: DispatchService, database_url: str
) -> None:
    """Desk B takes back M1's next call having seen none lined up (so it locks no call) and
    waits for M1; meanwhile desk A lines M1 up for X, and desk C cancels X, which ends that
    entry and then waits for M1 (its audit row). B, once it has M1, must not wait for the entry
    C holds: it locks an entry only when it holds its call, else looks again (found in review;
    before, PostgreSQL ended one of them with a deadlock)."""
    import psycopg

    from dispatch_tui.service import sql_functions
    from tests.test_roles import libpq

    first, x = new_calls(world, 2)
    world.dispatch("alice", first, ["M1"])
    url = libpq(database_url)
    rules = sql_functions.RULES
    out: dict[str, object] = {}

    def waiting(admin: psycopg.Connection[Any], pid: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = admin.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row is not None and row[0] == "Lock":
                return
            time.sleep(0.02)
        raise AssertionError(f"backend {pid} never waited for a lock")

    def run(name: str, conn: psycopg.Connection[Any], statements: list[tuple[str, Any]]) -> None:
        try:
            for sql, params in statements:
                out[name] = conn.execute(sql, params).fetchall()
        except psycopg.Error as err:
            out[name] = f"{type(err).__name__}: {err}".splitlines()[0]

    with (
        psycopg.connect(url, autocommit=True) as admin,
        psycopg.connect(url) as lining,
        psycopg.connect(url) as crew,
        psycopg.connect(url, autocommit=True) as taking_back,
        psycopg.connect(url) as cancel,
    ):
        lining.execute(
            "SELECT * FROM dispatch_queue('alice', 'M1', %s, 'A', NULL, NULL, %s::jsonb)",
            (x, rules),
        )
        # Another writer of M1 (a crew's status change) waits for it first.
        held = threading.Thread(
            target=run,
            args=("crew", crew, [("SELECT 1 FROM units WHERE code = 'M1' FOR UPDATE", None)]),
        )
        held.start()
        waiting(admin, crew.info.backend_pid)
        unqueue = threading.Thread(
            target=run,
            args=(
                "unqueue",
                taking_back,
                [
                    (
                        "SELECT * FROM dispatch_unqueue('bob', 'M1', 'B', NULL, NULL, %s::jsonb)",
                        (rules,),
                    )
                ],
            ),
        )
        unqueue.start()
        waiting(admin, taking_back.info.backend_pid)
        lining.commit()  # the crew's writer gets M1; B still waits for it
        held.join(10)
        row = admin.execute("SELECT id FROM calls WHERE number = %s", (x,)).fetchone()
        staff = admin.execute("SELECT id FROM staff WHERE username = 'alice'").fetchone()
        assert row is not None and staff is not None
        ending = threading.Thread(
            target=run,
            args=(
                "cancel",
                cancel,
                [
                    ("SELECT 1 FROM calls WHERE id = %s FOR UPDATE", (row[0],)),
                    (
                        "SELECT dispatch_end_lined_up(%s, clock_timestamp(), %s, 'alice', 'C',"
                        " 'cancelled')",
                        (row[0], staff[0]),
                    ),
                ],
            ),
        )
        ending.start()
        waiting(admin, cancel.info.backend_pid)
        crew.commit()  # M1 free: B takes it
        unqueue.join(10)
        ending.join(10)
        assert not unqueue.is_alive() and not ending.is_alive(), out
        cancel.rollback()
    assert "Deadlock" not in str(out), out
    assert out["unqueue"] == [("moved", None, None, None)], out  # looks again, locks the call
