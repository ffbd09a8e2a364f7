"""Live refresh: the triggers of migration 0002 and the Listener that waits for them.

Every test runs a real Listener in a thread against real PostgreSQL and waits for conditions with
a deadline (never a fixed sleep). The restart test uses a throwaway embedded server, never the
shared one.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text

from dispatch_tui.db import listener as listening
from dispatch_tui.db.embedded import EmbeddedServer
from dispatch_tui.db.listener import (
    APPLICATION_NAME,
    CHANNEL,
    Change,
    ConnectionState,
    Listener,
    conninfo_from_url,
    parse_payload,
)
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.service.dispatch_service import DispatchService

LIVE = ConnectionState.LIVE
RECONNECTING = ConnectionState.RECONNECTING
POLLING = ConnectionState.POLLING
CONNECTING = ConnectionState.CONNECTING


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Poll `predicate` every 10 ms until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Recorder:
    """The listener's callbacks, recorded in order (they run on the listener's thread)."""

    def __init__(self, on_state: Callable[[ConnectionState], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._hook = on_state
        self.events: list[tuple[str, Any]] = []

    def on_changes(self, batch: list[Change]) -> None:
        with self._lock:
            self.events.append(("changes", batch))

    def on_state(self, state: ConnectionState) -> None:
        with self._lock:
            self.events.append(("state", state))
        if self._hook is not None:
            self._hook(state)

    def on_resync(self) -> None:
        with self._lock:
            self.events.append(("resync", None))

    def snapshot(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self.events)

    @property
    def states(self) -> list[ConnectionState]:
        return [v for k, v in self.snapshot() if k == "state"]

    @property
    def state(self) -> ConnectionState | None:
        states = self.states
        return states[-1] if states else None

    @property
    def resyncs(self) -> int:
        return sum(1 for k, _ in self.snapshot() if k == "resync")

    @property
    def batches(self) -> list[list[Change]]:
        return [v for k, v in self.snapshot() if k == "changes"]

    @property
    def changes(self) -> list[Change]:
        return [c for batch in self.batches for c in batch]

    def live(self) -> bool:
        """LIVE, and the resync that follows it has been asked for."""
        events = self.snapshot()
        return bool(events) and events[-1] == ("resync", None) and self.state is LIVE


@contextmanager
def running(url: str, recorder: Recorder, **options: Any) -> Iterator[threading.Event]:
    """Run a Listener in a thread; on exit, stop it and check that `run` returns within 1 s."""
    listener = Listener(
        url,
        on_changes=recorder.on_changes,
        on_state=recorder.on_state,
        on_resync=recorder.on_resync,
        **options,
    )
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,), name="listener", daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=1.0)
        assert not thread.is_alive(), "Listener.run did not return within 1 s of stop"


def execute(url: str, statement: str) -> None:
    """Run one statement on a separate autocommit connection, as psql would."""
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
        conn.execute(statement)


def row_id(engine: Engine, table: str, code: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text(f"SELECT id FROM {table} WHERE code = :c"), {"c": code}).scalar_one()
        )


def listener_pid(url: str) -> int | None:
    """The backend of the listener on this database (the shared server runs other test DBs)."""
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            (APPLICATION_NAME,),
        ).fetchone()
    return None if row is None else int(row[0])


# -- payloads and URLs, no database ------------------------------------------------------------


def test_payloads_are_parsed_strictly() -> None:
    assert parse_payload('{"table": "units", "id": 3, "op": "UPDATE"}') == Change(
        "units", 3, "UPDATE"
    )
    assert parse_payload(
        '{"table": "assignments", "id": 1, "op": "DELETE", "call_id": 7, "unit_id": 2}'
    ) == Change("assignments", 1, "DELETE", call_id=7, unit_id=2)
    for bad in (
        "",
        "units",
        "[]",
        '{"table": "units", "id": "3", "op": "UPDATE"}',
        '{"table": "units", "id": true, "op": "UPDATE"}',
        '{"table": "units", "id": 3, "op": "TRUNCATE"}',
        '{"table": "", "id": 3, "op": "INSERT"}',
        '{"table": "assignments", "id": 1, "op": "INSERT", "call_id": "x"}',
    ):
        assert parse_payload(bad) is None, bad


def test_socket_directory_urls_become_libpq_conninfo() -> None:
    conninfo = conninfo_from_url("postgresql+psycopg://postgres@/dispatch?host=/srv/dtui%20x/run")
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
        "host": "/srv/dtui x/run",  # a re-rendered URL would say /srv/dtui+x/run
        "user": "postgres",
        "dbname": "dispatch",
    }
    conninfo = conninfo_from_url("postgres://u:p%40ss@db.example:5433/d?sslmode=require")
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
        "host": "db.example",
        "port": "5433",
        "user": "u",
        "password": "p@ss",
        "dbname": "d",
        "sslmode": "require",
    }


# -- against the test database -----------------------------------------------------------------


def test_starts_live_then_resyncs_once(database_url: str, world: DispatchService) -> None:
    rec = Recorder()
    with running(database_url, rec, heartbeat_seconds=0.1):
        wait_for(rec.live, "LIVE and a resync")
        # The heartbeat (its proof of hearing) runs between waits without disturbing delivery.
        wait_for(
            lambda: (listener_query(database_url) or "").startswith("SELECT pg_notify("),
            "a heartbeat",
        )
        execute(database_url, "UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M2'")
        wait_for(lambda: any(c.table == "units" for c in rec.changes), "the unit change")
    assert rec.snapshot()[:3] == [("state", CONNECTING), ("state", LIVE), ("resync", None)]
    assert rec.resyncs == 1
    assert rec.states == [CONNECTING, LIVE]


def listener_query(url: str) -> str | None:
    with psycopg.connect(conninfo_from_url(url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            (APPLICATION_NAME,),
        ).fetchone()
    return None if row is None else str(row[0])


def test_a_dispatch_arrives_as_one_coalesced_batch(
    database_url: str, engine: Engine, world: DispatchService
) -> None:
    m1 = row_id(engine, "units", "M1")
    rec = Recorder()
    with running(database_url, rec):
        wait_for(rec.live, "LIVE")
        call = world.create_call("alice", CallIntake(nature="x", place="Riverton Mall", priority=1))
        wait_for(lambda: Change("calls", call.id, "INSERT") in rec.changes, "the new call")
        before = len(rec.batches)

        world.dispatch("alice", call.number, ["M1"])

        def dispatched() -> bool:
            return any(c.table == "assignments" for c in rec.changes)

        wait_for(dispatched, "the assignment")
        wait_for(lambda: Change("units", m1, "UPDATE") in rec.changes, "the unit change")
        after = rec.batches[before:]

    assert 1 <= len(after) <= 2, after  # one transaction: normally exactly one batch
    changes = [c for batch in after for c in batch]
    assert len(changes) == len(set(changes)), "a batch repeats a change"
    assert Change("calls", call.id, "UPDATE") in changes
    assert Change("units", m1, "UPDATE") in changes
    (assignment,) = [c for c in changes if c.table == "assignments"]
    assert (assignment.op, assignment.call_id, assignment.unit_id) == ("INSERT", call.id, m1)
    assert all(c.call_id is None and c.unit_id is None for c in changes if c.table != "assignments")


def test_raw_sql_writes_arrive_and_rolled_back_ones_do_not(
    database_url: str, engine: Engine, world: DispatchService
) -> None:
    mercy, m2 = row_id(engine, "hospitals", "MERCY"), row_id(engine, "units", "M2")
    rec = Recorder()
    with running(database_url, rec):
        wait_for(rec.live, "LIVE")
        execute(database_url, "UPDATE hospitals SET beds_available = 3 WHERE code = 'MERCY'")
        wait_for(lambda: Change("hospitals", mercy, "UPDATE") in rec.changes, "the psql write")

        with psycopg.connect(conninfo_from_url(database_url)) as conn:
            conn.execute("UPDATE hospitals SET beds_available = 4 WHERE code = 'MERCY'")
            conn.execute("DELETE FROM places WHERE name = 'Riverton Mall'")
            conn.rollback()
        # Someone else's NOTIFY on our channel that is not ours: logged and skipped.
        execute(database_url, f"NOTIFY {CHANNEL}, 'not json'")
        # Notifications arrive in commit order: once this one is here, a notification from
        # the rolled-back transaction would have arrived before it.
        execute(database_url, "UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M2'")
        wait_for(lambda: Change("units", m2, "UPDATE") in rec.changes, "the marker write")

    assert [c for c in rec.changes if c.table in ("hospitals", "places")] == [
        Change("hospitals", mercy, "UPDATE")
    ]


def test_a_failing_callback_does_not_stop_the_listener(
    database_url: str, engine: Engine, world: DispatchService
) -> None:
    m2 = row_id(engine, "units", "M2")
    delivered: list[list[Change]] = []

    def on_changes(batch: list[Change]) -> None:
        delivered.append(batch)
        if len(delivered) == 1:
            raise RuntimeError("a bug in the desk's refresh")

    rec = Recorder()
    rec.on_changes = on_changes  # type: ignore[method-assign]
    with running(database_url, rec):
        wait_for(rec.live, "LIVE")
        execute(database_url, "UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M2'")
        wait_for(lambda: len(delivered) == 1, "the first batch")
        execute(database_url, "UPDATE units SET status = 'AVAILABLE' WHERE code = 'M2'")
        wait_for(lambda: len(delivered) == 2, "the second batch")
    assert delivered == [[Change("units", m2, "UPDATE")]] * 2


def test_a_failed_resync_is_tried_again_until_it_succeeds(
    database_url: str, engine: Engine, world: DispatchService
) -> None:
    # The desk's first load is the listener's first resync: if it fails, nothing else would
    # ever fill the desk (no notification names the rows it missed).
    attempts: list[None] = []

    def on_resync() -> None:
        attempts.append(None)
        if len(attempts) < 3:
            raise RuntimeError("the snapshot could not be read")

    m2 = row_id(engine, "units", "M2")
    rec = Recorder()
    rec.on_resync = on_resync  # type: ignore[method-assign]
    with running(database_url, rec):
        wait_for(lambda: len(attempts) == 3, "a third resync", timeout=10)
        # It listens all along, and asks for nothing more once a resync succeeded.
        execute(database_url, "UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M2'")
        wait_for(lambda: Change("units", m2, "UPDATE") in rec.changes, "a change")
    assert len(attempts) == 3
    assert rec.states == [CONNECTING, LIVE]


def test_reconnects_and_resyncs_after_its_backend_is_terminated(
    database_url: str, engine: Engine, world: DispatchService
) -> None:
    mercy, m2 = row_id(engine, "hospitals", "MERCY"), row_id(engine, "units", "M2")

    def while_disconnected(state: ConnectionState) -> None:
        # Runs on the listener's thread before it reconnects: nobody hears this notification.
        if state is RECONNECTING:
            execute(database_url, "UPDATE hospitals SET beds_available = 9 WHERE code = 'MERCY'")
            rec.events.append(("wrote", None))

    rec = Recorder(on_state=while_disconnected)
    with running(database_url, rec, max_backoff_seconds=0.5):
        wait_for(rec.live, "LIVE")
        pid = listener_pid(database_url)
        assert pid is not None
        execute(database_url, f"SELECT pg_terminate_backend({pid})")
        wait_for(lambda: rec.resyncs == 2 and rec.live(), "LIVE again and a second resync")
        wait_for(lambda: listener_pid(database_url) not in (None, pid), "a new backend")

        execute(database_url, "UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M2'")
        wait_for(lambda: Change("units", m2, "UPDATE") in rec.changes, "a change after reconnect")

    events = rec.snapshot()
    assert [k for k, _ in events[:3]] == ["state", "state", "resync"]
    tail = [e for e in events[3:] if e[0] != "changes"]
    assert tail == [
        ("state", RECONNECTING),
        ("wrote", None),
        ("state", LIVE),
        ("resync", None),  # this resync is what shows the desk the write made while away
    ]
    assert Change("hospitals", mercy, "UPDATE") not in rec.changes


def test_polls_without_listen(database_url: str, world: DispatchService) -> None:
    rec = Recorder()
    with running(database_url, rec, listen=False, poll_seconds=0.1):
        wait_for(lambda: rec.resyncs >= 4, "repeated resyncs")
        execute(database_url, "UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M2'")
        resyncs = rec.resyncs
        wait_for(lambda: rec.resyncs > resyncs, "a resync after the write")
    assert rec.states == [CONNECTING, POLLING]
    assert rec.changes == []


def test_falls_back_to_polling_when_listen_is_refused(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As a connection pooler that does not support LISTEN would answer.
    real_execute = psycopg.Connection.execute

    def execute_refusing_listen(
        self: psycopg.Connection[Any], query: Any, *args: Any, **kw: Any
    ) -> Any:
        if isinstance(query, psycopg.sql.Composable) and "LISTEN" in query.as_string(self):
            raise psycopg.errors.FeatureNotSupported("LISTEN is not supported here")
        return real_execute(self, query, *args, **kw)

    monkeypatch.setattr(psycopg.Connection, "execute", execute_refusing_listen)
    rec = Recorder()
    with running(database_url, rec, poll_seconds=0.1):
        wait_for(lambda: rec.resyncs >= 3, "repeated resyncs")
    assert rec.states == [CONNECTING, POLLING]


def test_stops_promptly_even_while_waiting_to_reconnect() -> None:
    # Nothing listens on port 1: every attempt is refused at once, then the backoff waits.
    rec = Recorder()
    started = time.monotonic()
    with running("postgresql://postgres@127.0.0.1:1/dispatch", rec, max_backoff_seconds=5.0):
        wait_for(lambda: rec.state is RECONNECTING, "RECONNECTING")
        # Let the backoff grow past the 1 s that `running` allows for the stop.
        wait_for(lambda: time.monotonic() - started > 2.0, "a long backoff", timeout=3)
    assert rec.states == [CONNECTING, RECONNECTING]
    assert rec.resyncs == 0


def test_stop_returns_within_a_second_when_live(database_url: str) -> None:
    rec = Recorder()
    with running(database_url, rec, heartbeat_seconds=60) as stop:
        wait_for(rec.live, "LIVE")
        stopped = time.monotonic()
        stop.set()
    assert time.monotonic() - stopped < 1.0
    wait_for(lambda: listener_pid(database_url) is None, "the listener's connection to close")


# -- a server restart, on a throwaway embedded server ------------------------------------------


@pytest.fixture
def throwaway_server() -> Iterator[EmbeddedServer]:
    data_dir = Path(tempfile.mkdtemp(prefix="dtui-", dir="/tmp"))
    server = EmbeddedServer(data_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_survives_a_server_restart(throwaway_server: EmbeddedServer) -> None:
    url = throwaway_server.url()
    notify = f"""SELECT pg_notify('{CHANNEL}', '{{"table":"units","id":1,"op":"UPDATE"}}')"""
    change = Change("units", 1, "UPDATE")
    rec = Recorder()
    with running(url, rec, max_backoff_seconds=0.5):
        wait_for(rec.live, "LIVE")
        execute(url, notify)
        wait_for(lambda: rec.changes == [change], "a notification")

        throwaway_server.stop()
        wait_for(lambda: rec.state is RECONNECTING, "RECONNECTING")
        throwaway_server.start()
        wait_for(lambda: rec.resyncs == 2 and rec.live(), "LIVE again and a resync", timeout=10)

        execute(url, notify)
        wait_for(lambda: rec.changes == [change, change], "a notification after the restart")
    assert rec.states == [CONNECTING, LIVE, RECONNECTING, LIVE]


def test_a_listener_that_hears_nothing_says_so_and_polls(
    database_url: str, world: DispatchService
) -> None:
    """Behind something that swallows notifications (a transaction pooler), LISTEN succeeds
    and nothing arrives: the listener's own notification does not come back, so it says
    POLLING and polls, and changes still reach the desk."""
    from tests.fault_proxy import notification_dropper

    with notification_dropper(database_url) as proxy:
        rec = Recorder()
        with running(proxy.url, rec, heartbeat_seconds=0.1, poll_seconds=0.2):
            wait_for(lambda: POLLING in rec.states, "POLLING", timeout=listening.PROOF_SECONDS + 5)
            assert rec.states[:2] == [CONNECTING, LIVE]  # it accepted LISTEN, then proved deaf
            assert proxy.notifications_dropped >= 1
            before = rec.resyncs
            execute(database_url, "UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M2'")
            wait_for(lambda: rec.resyncs > before, "a poll's resync")
