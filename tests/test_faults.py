"""Faults the desk and the service must survive, provoked for real: no mocked database.

* The desk's LISTEN connection is terminated by the server (`pg_terminate_backend`): the status
  line says RECONNECTING, goes back to LIVE within 2 s of the database being reachable, and a
  change made while the desk was deaf appears without a key pressed (the resync after reconnect).
* The whole server goes away (a throwaway embedded server, stopped and started again; never the
  shared test server): the desk keeps answering keys, says RECONNECTING, refuses a write with one
  clear line ("nothing was changed"), recovers by itself when the server is back, shows what
  changed meanwhile, and never replays the refused write. A second test keeps the server down for
  the issue's 10 s and times how long after the server is back the desk is live again.
* A dispatch whose backend is terminated while it waits for a lock (and, in a second variant,
  after it has already written its assignment) leaves nothing behind: the service reports
  Unavailable, and the call, the unit and the audit log are as before.
* Deadlocks and serialization failures, real ones from the server, are retried `RETRIES` times
  and then reported as a Conflict; one that clears on the retry returns normally.

Waits are on conditions with deadlines. The only timed sleep is the outage itself.

Where the test needs to know what the desk's listener is doing (when it tried to connect, or to
hold it between connecting and LISTEN so that a write is certainly made while the desk cannot
hear it), it runs the desk with a subclass of the real Listener that records and, when asked,
waits: the reconnect logic under test is the package's own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

import dispatch_tui.db.engine as engine_module
import dispatch_tui.screens.live as live_module
from dispatch_tui.app import DispatchApp
from dispatch_tui.db.embedded import EmbeddedServer
from dispatch_tui.db.engine import make_engine, make_sessionmaker, upgrade
from dispatch_tui.db.listener import APPLICATION_NAME, Listener, conninfo_from_url
from dispatch_tui.rules.errors import Conflict, Unavailable
from dispatch_tui.screens.desk import DeskScreen
from dispatch_tui.screens.help import HelpScreen
from dispatch_tui.service import demo, transactions
from dispatch_tui.service.dispatch_service import DispatchService
from tests.desk_helpers import (
    active_numbers,
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
TRANSACTIONS_LOG = "dispatch_tui.service.transactions"

# "Live again within 2 s of the database being reachable."
RECOVERY_SECONDS = 2.0
# The outage. The short one keeps the ordinary outage test fast.
LONG_OUTAGE_SECONDS = 10.0
SHORT_OUTAGE_SECONDS = 3.0
# How long a held listener may wait at the gate before going on by itself, so that a failing test
# can never leave the desk's thread stuck for good.
GATE_TIMEOUT = 30.0


# -- the desk, headless (as tests/test_desk.py builds it) ---------------------------------------


def hospital_beds(app: DispatchApp, code: str) -> int | None:
    return next(
        (h.beds_available for h in screen_of(app).hospitals.rows_by_key.values() if h.code == code),
        None,
    )


def live(app: DispatchApp) -> bool:
    return (
        isinstance(app.desk, DeskScreen)
        and app.desk.is_mounted
        and status_line(app).state == "live"
    )


def record_states(app: DispatchApp) -> list[str]:
    """Every value the status line's connection state takes, in order, from now on.

    Watched rather than polled: a reconnect after a terminated backend takes about 0.1 s, which a
    poll can miss.
    """
    states: list[str] = []

    def seen(state: str) -> None:
        states.append(state)

    app.watch(status_line(app), "state", seen, init=True)
    return states


# -- watching the desk's listener from inside ---------------------------------------------------


class ListenerProbe:
    """Runs the desk with a Listener subclass that records each connection attempt and can hold
    a successful one between connecting and LISTEN (`gate` cleared).

    Held there, the desk cannot hear a notification: a change made meanwhile reaches it only
    through the resync that follows a reconnect, which is what the tests want to prove. The
    reconnect loop, the backoff and the resync are the package's own.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._lock = threading.Lock()
        self.attempts: list[tuple[float, bool]] = []  # (when it started, connected?)
        self.backends: list[int] = []  # the server pid of each connection it made
        self.gate = threading.Event()
        self.gate.set()
        probe = self

        class ObservedListener(Listener):
            def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
                started = time.monotonic()
                try:
                    conn = super()._connect()
                except psycopg.OperationalError:
                    probe._attempt(started, ok=False)
                    raise
                probe._attempt(started, ok=True, pid=conn.info.backend_pid)
                probe.gate.wait(GATE_TIMEOUT)
                return conn

        monkeypatch.setattr(live_module, "Listener", ObservedListener)

    def _attempt(self, started: float, *, ok: bool, pid: int | None = None) -> None:
        with self._lock:
            self.attempts.append((started, ok))
            if pid is not None:
                self.backends.append(pid)

    def failed_attempts(self) -> list[float]:
        with self._lock:
            return [t for t, ok in self.attempts if not ok]

    def connected_since(self, since: float) -> list[float]:
        with self._lock:
            return [t for t, ok in self.attempts if ok and t >= since]


# -- 1. the desk's LISTEN connection is terminated ---------------------------------------------


def is_listener(engine: Engine, pid: int) -> bool:
    """Is `pid` a live desk listener's backend on the test database?"""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"
                    " AND application_name = :name AND datname = current_database()"
                ),
                {"pid": pid, "name": APPLICATION_NAME},
            ).scalar_one()
        )


def terminate(engine: Engine, pid: int) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()


async def test_terminated_listener_reconnects_and_resyncs(
    world: DispatchService, database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = ListenerProbe(monkeypatch)
    number = new_call(world)
    app = desk(world, database_url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: live(app))
        states = record_states(app)
        await until(pilot, lambda: states[-1] == "live" and pending_numbers(app) == [number])
        # The desk's own listener (another test's desk may still be closing its connection).
        first = probe.backends[-1]
        assert is_listener(engine, first)

        # Held between connecting and LISTEN: the dispatch below is certainly made while the
        # desk cannot hear it.
        probe.gate.clear()
        try:
            terminate(engine, first)
            await until(pilot, lambda: states[-1] == "reconnecting")
            await asyncio.to_thread(world.dispatch, "bob", number, ["M1"])
            # Nothing else could have told the desk.
            assert unit_status(app, "M1") == "AVAILABLE"
            reachable = time.monotonic()
        finally:
            probe.gate.set()
        await until(pilot, lambda: states[-1] == "live")
        back_after = time.monotonic() - reachable
        assert back_after <= RECOVERY_SECONDS, f"live again {back_after:.2f} s after reachable"
        # No key pressed: only the resync after the reconnect can show this.
        await until(
            pilot, lambda: number in active_numbers(app) and unit_status(app, "M1") == "EN_ROUTE"
        )
        assert number not in pending_numbers(app)

        # Again without holding it: the package's own backoff alone brings it back in time, and
        # it listens again (a later change arrives by notification, with no resync to help).
        second = probe.backends[-1]
        assert second != first and is_listener(engine, second)
        killed = time.monotonic()
        terminate(engine, second)
        await until(pilot, lambda: states[-2:] == ["reconnecting", "live"] and len(states) == 5)
        back_after = time.monotonic() - killed
        assert back_after <= RECOVERY_SECONDS, f"live again {back_after:.2f} s after the kill"
        await asyncio.to_thread(world.unit_status, "bob", "M1", "ON_SCENE")
        await until(pilot, lambda: unit_status(app, "M1") == "ON_SCENE")
        assert "LIVE" in str(status_line(app).render())

    assert states == ["live", "reconnecting", "live", "reconnecting", "live"]


# -- 2. the whole server goes away (a throwaway embedded server) --------------------------------


@dataclass
class Island:
    """A throwaway embedded server with a migrated dispatch database on demo reference data."""

    server: EmbeddedServer
    url: str
    engine: Engine
    service: DispatchService


@pytest.fixture(scope="module")
def island() -> Iterator[Island]:
    # /tmp, short: the server's Unix socket path must fit in ~107 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="dtui-faults-", dir="/tmp"))
    server = EmbeddedServer(data_dir)
    engine: Engine | None = None
    try:
        server.start()
        with psycopg.connect(conninfo_from_url(server.url("postgres")), autocommit=True) as conn:
            conn.execute("CREATE DATABASE faults")
        url = server.url("faults")
        engine = make_engine(url, application_name="dispatch-tui-faults")
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as s:
            demo._reference(s, None)
        yield Island(server, url, engine, DispatchService(sessions, desk="test"))
    finally:
        if engine is not None:
            engine.dispose()
        try:
            server.stop()
        finally:
            # No server may outlive its (deleted) directory, even if stop() failed.
            leftover = server.status().pid
            if leftover is not None:
                os.kill(leftover, signal.SIGKILL)
            shutil.rmtree(data_dir, ignore_errors=True)


def rows(engine: Engine, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def call_record(engine: Engine, number: str) -> tuple[str, Any, int, int]:
    """(status, first dispatched at, assignments, dispatch audit rows) of a call."""
    ((status, first, assigned, audited),) = rows(
        engine,
        """SELECT c.status, c.first_dispatched_at,
                  (SELECT count(*) FROM assignments a WHERE a.call_id = c.id),
                  (SELECT count(*) FROM audit_log l
                    WHERE l.call_id = c.id AND l.action = 'dispatch')
           FROM calls c WHERE c.number = :n""",
        n=number,
    )
    return status, first, assigned, audited


def unit_row(engine: Engine, code: str) -> str:
    ((status,),) = rows(engine, "SELECT status FROM units WHERE code = :c", c=code)
    return str(status)


@pytest.mark.slow
async def test_desk_rides_out_a_server_outage(
    island: Island, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc, server, engine = island.service, island.server, island.engine
    other = DispatchService(svc.sessions, desk="other desk")
    probe = ListenerProbe(monkeypatch)
    number = new_call(svc)
    app = desk(svc, island.url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: live(app))
        states = record_states(app)
        await until(pilot, lambda: states[-1] == "live" and number in pending_numbers(app))

        down = time.monotonic()
        await asyncio.to_thread(server.stop)
        try:
            await until(pilot, lambda: states[-1] == "reconnecting")
            assert "RECONNECTING" in str(status_line(app).render())

            # The desk still answers keys: the help screen opens and closes at once.
            opened = time.monotonic()
            await pilot.press("question_mark")
            await until(pilot, lambda: isinstance(app.screen, HelpScreen), within=2)
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is app.desk, within=2)
            # Generous for a busy machine, yet far below any database timeout (connect 5 s,
            # lock 5 s): a database call on the event loop would show here.
            assert time.monotonic() - opened < 2.0

            # A write from the command bar: refused at once, in one line, nothing changed.
            await pilot.press("colon", *f"d {number} M1", "enter")
            await until(pilot, lambda: feedback(app).startswith("✗"))
            refused = feedback(app)
            assert "nothing was changed" in refused, refused
            assert "dispatch database" in refused and "\n" not in refused, refused
            # ... and the same through the service itself, as the CLI would see it.
            with pytest.raises(Unavailable, match="nothing was changed"):
                await asyncio.to_thread(svc.dispatch, "alice", number, ["M2"])

            # The outage lasts a few seconds (the 10 s of the issue has its own test below).
            await asyncio.sleep(max(0.0, down + SHORT_OUTAGE_SECONDS - time.monotonic()))
            assert states[-1] == "reconnecting"

            # Back, but the desk is held before LISTEN until another desk has changed things:
            # only the resync can show it that change.
            probe.gate.clear()
            await asyncio.to_thread(server.start)
            meanwhile = await asyncio.to_thread(
                new_call, other, user="bob", nature="Fall", place="Central Station"
            )
            await asyncio.to_thread(other.dispatch, "bob", meanwhile, ["M3"])
        finally:
            probe.gate.set()
            if not server.status().running:
                await asyncio.to_thread(server.start)

        await until(pilot, lambda: states[-1] == "live")
        await until(
            pilot,
            lambda: meanwhile in active_numbers(app) and unit_status(app, "M3") == "EN_ROUTE",
        )

        # Nothing queued was replayed: no action is still running, the refused call is pending,
        # its units are available, and the desk said nothing more than the refusal.
        assert all(w.is_finished for w in app.workers if w.group == "actions")
        assert number in pending_numbers(app)
        assert unit_status(app, "M1") == unit_status(app, "M2") == "AVAILABLE"
        assert feedback(app) == refused
        # A change after the recovery arrives live; once the desk has shown it, anything queued
        # would have had its chance to run.
        await asyncio.to_thread(other.hospital_status, "grace", "EAST", beds=77)
        await until(pilot, lambda: hospital_beds(app, "EAST") == 77)
        assert feedback(app) == refused

    assert states == ["live", "reconnecting", "live"]
    assert call_record(engine, number) == ("RECEIVED", None, 0, 0)
    assert (unit_row(engine, "M1"), unit_row(engine, "M2")) == ("AVAILABLE", "AVAILABLE")
    assert call_record(engine, meanwhile)[2:] == (1, 1)


@pytest.mark.slow
async def test_desk_is_live_within_2_s_of_the_server_returning_after_10_s(
    island: Island, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's outage: unreachable for 10 s, then live within 2 s of the server being back.

    The server comes back just after one of the listener's failed attempts (the phase a real
    outage ends in is arbitrary; this is the one that shows the longest wait), so the time
    measured is what the desk's reconnect policy gives in the worst case.
    """
    svc, server = island.service, island.server
    probe = ListenerProbe(monkeypatch)
    app = desk(svc, island.url)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: live(app))
        states = record_states(app)
        await until(pilot, lambda: states[-1] == "live")

        down = time.monotonic()
        await asyncio.to_thread(server.stop)
        try:
            await until(pilot, lambda: states[-1] == "reconnecting")
            await asyncio.sleep(max(0.0, down + LONG_OUTAGE_SECONDS - time.monotonic()))
            tried = len(probe.failed_attempts())
            # The listener's delay between attempts has grown to its cap by now; wait for its
            # next attempt, then bring the server back straight after it: the longest wait the
            # reconnect policy can give (a cap of 5 s once gave 4.5-4.9 s here).
            await until(pilot, lambda: len(probe.failed_attempts()) > tried, within=15)
        finally:
            await asyncio.to_thread(server.start)
        reachable = time.monotonic()
        attempts = [round(t - down, 2) for t in probe.failed_attempts()]
        await asyncio.to_thread(svc.hospital_status, "grace", "UNIV", beds=33)

        await until(pilot, lambda: states[-1] == "live", within=15)
        back_after = time.monotonic() - reachable
        # Whichever way it arrives (resync or notification), the change made right after the
        # server came back is shown without a key.
        await until(pilot, lambda: hospital_beds(app, "UNIV") == 33)

    assert states == ["live", "reconnecting", "live"]
    assert back_after <= RECOVERY_SECONDS, (
        f"the desk went live {back_after:.1f} s after the server was back (allowed "
        f"{RECOVERY_SECONDS} s); the listener's failed attempts, in seconds after the server "
        f"went down: {attempts}"
    )


# -- 3. a transaction killed mid-dispatch ------------------------------------------------------

JOIN_TIMEOUT = 15.0

# Where the dispatch is made to wait before its backend is terminated:
HOLDS = {
    # on the unit row, before it has written anything (it holds the call's row lock);
    "on the unit": ("SELECT id FROM units WHERE code = 'M1' FOR UPDATE", "calls"),
    # on its last statement, the audit row, after it has inserted the assignment and moved the
    # unit and the call: a kill here is the one that could leave half a dispatch behind.
    "after the assignment": ("LOCK TABLE audit_log IN SHARE MODE", "assignments"),
}


def lock_waiter(engine: Engine, blocker: int) -> int | None:
    """The backend waiting for a lock `blocker` holds, if any (exactly one is expected)."""
    found = rows(
        engine,
        """SELECT pid FROM pg_stat_activity
           WHERE datname = current_database() AND wait_event_type = 'Lock'
             AND :blocker = ANY(pg_blocking_pids(pid))""",
        blocker=blocker,
    )
    assert len(found) <= 1, found
    return int(found[0][0]) if found else None


def holds_write_lock_on(engine: Engine, pid: int, table: str) -> bool:
    ((held,),) = rows(
        engine,
        """SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
           WHERE l.pid = :pid AND c.relname = :table AND l.granted
             AND l.mode IN ('RowShareLock', 'RowExclusiveLock')""",
        pid=pid,
        table=table,
    )
    return bool(held)


@pytest.mark.parametrize("where", list(HOLDS))
def test_dispatch_killed_mid_transaction_leaves_nothing(
    world: DispatchService, engine: Engine, where: str
) -> None:
    hold, written = HOLDS[where]
    number = new_call(world)
    outcome: list[Any] = []

    def dispatcher() -> None:
        try:
            outcome.append(world.dispatch("alice", number, ["M1"]))
        except Exception as err:  # kept for the assertions below
            outcome.append(err)

    with engine.connect() as blocker:
        blocker.execute(text(hold))
        blocker_pid = blocker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        thread = threading.Thread(target=dispatcher, name="dispatcher", daemon=True)
        thread.start()
        deadline = time.monotonic() + JOIN_TIMEOUT
        while (victim := lock_waiter(engine, blocker_pid)) is None:
            assert thread.is_alive(), f"the dispatch did not wait for the lock: {outcome}"
            assert time.monotonic() < deadline, "the dispatch never queued on the held lock"
            time.sleep(0.01)
        # It got as far as intended: the call is locked, and in the second variant the
        # assignment row is already written in its (uncommitted) transaction.
        assert holds_write_lock_on(engine, victim, written)

        terminate(engine, victim)
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), "the dispatch hung after its backend was terminated"
        blocker.rollback()

    (err,) = outcome
    assert isinstance(err, Unavailable), repr(err)
    assert "nothing was changed" in str(err)
    assert call_record(engine, number) == ("RECEIVED", None, 0, 0)
    assert unit_row(engine, "M1") == "AVAILABLE"
    ((audit,),) = rows(engine, "SELECT count(*) FROM audit_log WHERE action <> 'call_created'")
    assert audit == 0

    # The service is usable again at once: the killed connection is not handed out again.
    assert world.dispatch("alice", number, ["M1"]).units == ("M1",)
    assert call_record(engine, number)[0::2] == ("DISPATCHED", 1)


# -- a pooled connection that died while idle ----------------------------------------------------


@pytest.mark.parametrize("idle", [True, False], ids=["idle: pinged", "just used: not pinged"])
def test_a_connection_that_died_while_idle_is_replaced_before_use(
    world: DispatchService,
    database_url: str,
    engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
    idle: bool,
) -> None:
    """The pool pings a connection that sat idle (engine.PING_AFTER_IDLE_SECONDS) and replaces
    it if it is dead, so the action succeeds; one used a moment ago is not pinged (a burst of
    actions pays no extra round trip) and its death surfaces once as Unavailable."""
    eng = make_engine(database_url, pool_size=1, application_name="dispatch-tui-faults")
    try:
        svc = DispatchService(make_sessionmaker(eng), desk="test")
        number = new_call(world)
        with eng.connect() as conn:
            pooled = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        terminate(engine, pooled)
        monkeypatch.setattr(engine_module, "PING_AFTER_IDLE_SECONDS", 0.0 if idle else 3600.0)
        if idle:
            assert svc.dispatch("alice", number, ["M1"]).units == ("M1",)
        else:
            with pytest.raises(Unavailable, match="nothing was changed"):
                svc.dispatch("alice", number, ["M1"])
            assert call_record(engine, number)[0] == "RECEIVED"
            assert svc.dispatch("alice", number, ["M1"]).units == ("M1",)  # a fresh connection
    finally:
        eng.dispose()


# -- 4. deadlocks and serialization failures: retried, then a Conflict ---------------------------


@pytest.fixture
def retries(caplog: pytest.LogCaptureFixture) -> Callable[[], int]:
    """How many times `write()` has said it re-ran a transaction."""
    caplog.set_level(logging.INFO, logger=TRANSACTIONS_LOG)

    def count() -> int:
        return sum(
            1 for r in caplog.records if r.name == TRANSACTIONS_LOG and "retried" in r.getMessage()
        )

    return count


@pytest.fixture
def serializable(database_url: str) -> Iterator[Engine]:
    """An engine whose transactions run SERIALIZABLE, where PostgreSQL reports a concurrent
    update of a row the transaction has read as a serialization failure (40001)."""
    eng = make_engine(database_url, pool_size=2, application_name="dispatch-tui-faults")
    try:
        yield eng
    finally:
        eng.dispose()


def serializable_sessions(eng: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(eng.execution_options(isolation_level="SERIALIZABLE"))


def commit_elsewhere(database_url: str, sql: str) -> None:
    """A concurrent writer: its own connection, committed at once."""
    with psycopg.connect(conninfo_from_url(database_url), autocommit=True) as conn:
        conn.execute(sql)


def beds(engine: Engine, code: str) -> int:
    ((value,),) = rows(engine, "SELECT beds_available FROM hospitals WHERE code = :c", c=code)
    return int(value)


@pytest.mark.parametrize("conflicts", ["always", "once"])
def test_serialization_failure_is_retried_then_a_conflict(
    world: DispatchService,
    engine: Engine,
    serializable: Engine,
    database_url: str,
    retries: Callable[[], int],
    monkeypatch: pytest.MonkeyPatch,
    conflicts: str,
) -> None:
    # Not the default, so the test shows the bound is the setting and not a coincidence.
    monkeypatch.setattr(transactions, "RETRIES", 4)
    before = beds(engine, "EAST")
    attempts: list[object] = []  # per attempt: the server's error class, or None

    def work(s: Session) -> int:
        seen = s.execute(
            text("SELECT beds_available FROM hospitals WHERE code = 'EAST'")
        ).scalar_one()
        if conflicts == "always" or not attempts:
            # Another desk changes the row this transaction has read, and commits first.
            commit_elsewhere(
                database_url,
                "UPDATE hospitals SET beds_available = beds_available + 100 WHERE code = 'EAST'",
            )
        try:
            s.execute(
                text("UPDATE hospitals SET beds_available = :b WHERE code = 'EAST'"),
                {"b": seen + 1},
            )
        except DBAPIError as err:
            attempts.append(type(err.orig))
            raise
        attempts.append(None)
        return int(seen) + 1

    sessions = serializable_sessions(serializable)
    if conflicts == "always":
        with pytest.raises(Conflict, match="kept reporting conflicting changes"):
            transactions.write(sessions, work)
        assert attempts == [psycopg.errors.SerializationFailure] * 4
        assert retries() == 4
        # Only the concurrent writer's changes are there; none of the failed attempts'.
        assert beds(engine, "EAST") == before + 4 * 100
    else:
        assert transactions.write(sessions, work) == before + 100 + 1
        assert attempts == [psycopg.errors.SerializationFailure, None]
        assert retries() == 1
        assert beds(engine, "EAST") == before + 101


def test_deadlock_is_retried_and_both_transactions_commit(
    world: DispatchService, engine: Engine, retries: Callable[[], int]
) -> None:
    """Two transactions take two hospital rows in opposite orders: PostgreSQL kills one with a
    real deadlock (40P01), `write()` runs it again, and it then goes through."""
    barrier = threading.Barrier(2)
    attempts: list[tuple[str, object]] = []
    lock = threading.Lock()

    def worker(name: str, first: str, second: str) -> Callable[[Session], str]:
        tries = [0]

        def work(s: Session) -> str:
            tries[0] += 1
            lock_row = "SELECT id FROM hospitals WHERE code = :c FOR UPDATE"
            s.execute(text(lock_row), {"c": first})
            if tries[0] == 1:
                barrier.wait(JOIN_TIMEOUT)  # both hold their first row: now cross over
            try:
                s.execute(text(lock_row), {"c": second})
            except DBAPIError as err:
                with lock:
                    attempts.append((name, type(err.orig)))
                raise
            with lock:
                attempts.append((name, None))
            return name

        return work

    results: dict[str, Any] = {}

    def run(name: str, first: str, second: str) -> None:
        try:
            results[name] = transactions.write(world.sessions, worker(name, first, second))
        except Exception as err:  # kept for the assertions below
            results[name] = err

    threads = [
        threading.Thread(target=run, args=("one", "MERCY", "STJ"), daemon=True),
        threading.Thread(target=run, args=("two", "STJ", "MERCY"), daemon=True),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(JOIN_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a deadlock nobody broke"

    assert results == {"one": "one", "two": "two"}
    errors = [e for _, e in attempts if e is not None]
    assert errors == [psycopg.errors.DeadlockDetected], attempts
    assert len(attempts) == 3  # two first tries, one of them killed, and its retry
    assert retries() == 1


@pytest.mark.parametrize("conflicts", ["always", "once"])
def test_service_action_retries_a_serialization_failure_then_reports_conflict(
    world: DispatchService,
    engine: Engine,
    serializable: Engine,
    database_url: str,
    retries: Callable[[], int],
    conflicts: str,
) -> None:
    """A real service action (a hospital going on diversion), run SERIALIZABLE, while another
    desk keeps changing the same hospital between the action's first read and its row lock:
    each attempt fails on the server with 40001. Retried `RETRIES` times, then a Conflict, and
    none of the failed attempts left its audit row."""
    svc = DispatchService(serializable_sessions(serializable), desk="test")
    before = beds(engine, "MERCY")
    injected = [0]

    def between_read_and_lock(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        locking = "FROM hospitals" in statement and "FOR UPDATE" in statement
        if locking and (conflicts == "always" or injected[0] == 0):
            injected[0] += 1
            commit_elsewhere(
                database_url,
                "UPDATE hospitals SET beds_available = beds_available + 1 WHERE code = 'MERCY'",
            )

    event.listen(serializable, "before_cursor_execute", between_read_and_lock)
    try:
        if conflicts == "always":
            with pytest.raises(Conflict, match="kept reporting conflicting changes"):
                svc.hospital_status("grace", "MERCY", "DIVERSION")
            assert injected[0] == retries() == transactions.RETRIES
            expected_status, audited = "OPEN", 0
        else:
            assert svc.hospital_status("grace", "MERCY", "DIVERSION").status == "DIVERSION"
            assert injected[0] == retries() == 1
            expected_status, audited = "DIVERSION", 1
    finally:
        event.remove(serializable, "before_cursor_execute", between_read_and_lock)

    ((status, now_beds),) = rows(
        engine, "SELECT status, beds_available FROM hospitals WHERE code = 'MERCY'"
    )
    assert (status, now_beds) == (expected_status, before + injected[0])
    ((audit,),) = rows(engine, "SELECT count(*) FROM audit_log WHERE action = 'hospital_status'")
    assert audit == audited
