"""The relay: a change read once and sent to every desk, which applies it without reading.

Listeners on the test database, as desks run them (`relay=`): the first takes the relay, the
others follow. A change made through the service reaches every follower as the rows the relay
read (exactly what the follower would have read itself), and no follower reads. When the relay
stops, a follower takes its place, reloading first. A paramedic's login cannot name the rows
channel: it stays out of the relay and reads what it is told, as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine

from dispatch_tui.cli.main import main
from dispatch_tui.db import listener as listener_module
from dispatch_tui.db.engine import make_engine, make_sessionmaker
from dispatch_tui.db.listener import ConnectionState, Listener, RelayRole
from dispatch_tui.rules import wire
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.service.relay import Relay
from tests.helpers import new_call
from tests.test_listener import Recorder, wait_for
from tests.test_roles import Login, libpq, logins  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("world")


class CountingReads(ReadService):
    """A read service that counts the changed rows it was asked to read."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(make_sessionmaker(engine), desk="relay-test")
        self.reads = 0

    def changed(self, **ids: Any) -> Any:
        self.reads += 1
        return super().changed(**ids)


class Desk:
    """A listener as a desk runs it, recording what it applies and what it reads."""

    def __init__(self, url: str, engine: Engine) -> None:
        self.recorder = Recorder()
        self.service = CountingReads(engine)
        self.applied: list[wire.Relayed] = []
        self._lock = threading.Lock()
        self.listener = Listener(
            url,
            on_changes=self.recorder.on_changes,
            on_state=self.recorder.on_state,
            on_resync=self.recorder.on_resync,
            relay=Relay(self.service, self._apply),
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.listener.run, args=(self.stop,), daemon=True)

    def _apply(self, change: wire.Relayed) -> None:
        with self._lock:
            self.applied.append(change)

    def calls_applied(self) -> list[str]:
        with self._lock:
            return [c.number for change in self.applied for c in change.snapshot.calls]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2.0)
        assert not self.thread.is_alive()


@contextmanager
def desks(url: str, engine: Engine, n: int) -> Iterator[list[Desk]]:
    with ExitStack() as stack:
        made = []
        for _ in range(n):
            desk = Desk(url, engine)
            desk.thread.start()
            stack.callback(desk.close)
            wait_for(lambda d=desk: d.listener.role is not RelayRole.NONE, "the desk in the relay")
            wait_for(lambda d=desk: d.recorder.resyncs >= 1, "the desk loaded")
            made.append(desk)
        yield made


def test_one_desk_reads_a_change_and_every_other_applies_it_without_reading(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    with desks(database_url, engine, 3) as (relay, *followers):
        assert relay.listener.role is RelayRole.RELAY
        assert [f.listener.role for f in followers] == [RelayRole.FOLLOWER] * 2
        number = new_call(world)
        for desk in (relay, *followers):
            wait_for(lambda d=desk: number in d.calls_applied(), f"{number} applied")
        assert relay.service.reads >= 1
        assert [f.service.reads for f in followers] == [0, 0]
        assert all(f.recorder.batches == [] for f in followers)  # nothing to read for themselves
        # What a follower applied is what it would have read.
        (change,) = [
            c for c in followers[0].applied if number in {x.number for x in c.snapshot.calls}
        ]
        (call,) = [c for c in change.snapshot.calls if c.number == number]
        assert call == world.call(number)


def test_when_the_relay_stops_a_follower_takes_its_place_and_reloads_first(
    world: DispatchService, database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listener_module, "RELAY_SILENCE_SECONDS", 0.5)
    with desks(database_url, engine, 2) as (relay, follower):
        reloads = follower.recorder.resyncs
        relay.close()
        wait_for(lambda: follower.listener.role is RelayRole.RELAY, "the follower as the relay")
        # (It takes the role, then reloads: wait for the reload rather than race it.)
        wait_for(lambda: follower.recorder.resyncs > reloads, "the new relay reloaded")
        number = new_call(world)
        wait_for(lambda: number in follower.calls_applied(), f"{number} applied")


def test_a_silent_relay_leaves_its_followers_reading_for_themselves_until_it_speaks(
    world: DispatchService, database_url: str, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay that holds the lock but sends nothing (hung): the follower reads for itself."""
    monkeypatch.setattr(listener_module, "RELAY_SILENCE_SECONDS", 0.5)
    with psycopg.connect(libpq(database_url), autocommit=True) as hung:
        hung.execute("SELECT pg_advisory_lock(%s)", (listener_module.RELAY_LOCK,))
        with desks(database_url, engine, 1) as (desk,):
            assert desk.listener.role is RelayRole.FOLLOWER
            wait_for(lambda: desk.listener.role is RelayRole.ALONE, "the desk alone")
            number = new_call(world)
            wait_for(
                lambda: any(c.table == "calls" for batch in desk.recorder.batches for c in batch),
                "the change heard plainly",
            )
            assert desk.listener.role is RelayRole.ALONE
            assert number not in desk.calls_applied()  # nobody relays: it read the change itself


def test_a_paramedics_login_cannot_name_the_rows_channel_and_reads_for_itself(
    world: DispatchService,
    database_url: str,
    engine: Engine,
    logins: Callable[..., Login],  # noqa: F811
) -> None:
    _, url = logins("paramedic", unit="M2")
    own = make_engine(url, pool_size=1)
    try:
        with desks(database_url, engine, 1) as (relay,):
            desk = Desk(url, own)
            desk.thread.start()
            try:
                wait_for(lambda: desk.recorder.resyncs >= 1, "the paramedic's desk loaded")
                assert desk.listener.role is RelayRole.NONE
                new_call(world)
                wait_for(lambda: desk.recorder.batches != [], "a plain change heard")
                assert desk.applied == []
            finally:
                desk.close()
            assert relay.listener.role is RelayRole.RELAY
    finally:
        own.dispose()


def test_a_malformed_relayed_change_makes_the_follower_reload(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    with desks(database_url, engine, 2) as (_relay, follower):
        with psycopg.connect(libpq(database_url), autocommit=True) as conn:
            (channel,) = conn.execute("SELECT name FROM relay_channel").fetchone() or ("",)
            reloads = follower.recorder.resyncs
            conn.execute(
                "SELECT pg_notify(%s, %s)",
                (channel, '{"v":1,"seq":1,"part":0,"parts":1,"units":[{"id":"x"}]}'),
            )
        wait_for(lambda: follower.recorder.resyncs > reloads, "the follower reloaded")


def _relay_backend(database_url: str) -> int:
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()"
            " AND (l.classid::bigint << 32) + l.objid::bigint = %s",
            (listener_module.RELAY_LOCK,),
        ).fetchone()
    assert row is not None, "no relay holds the lock"
    return int(row[0])


def test_a_relay_back_after_a_gap_makes_every_follower_reload(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    """The relay's connection dies; a change commits while no relay listens; the relay is back
    before the followers' silence runs out. Its first word is: reload."""
    with desks(database_url, engine, 3) as (relay, *followers):
        gate = threading.Event()
        connect = relay.listener._connect

        def held_connect() -> Any:
            gate.wait(10)
            return connect()

        relay.listener._connect = held_connect  # type: ignore[method-assign]
        with psycopg.connect(libpq(database_url), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (_relay_backend(database_url),))
        wait_for(lambda: relay.recorder.state is ConnectionState.RECONNECTING, "the relay lost")
        reloads = [f.recorder.resyncs for f in followers]
        new_call(world)  # sent to nobody in the relay
        gate.set()
        for follower, before in zip(followers, reloads, strict=True):
            wait_for(lambda f=follower, n=before: f.recorder.resyncs > n, "the follower reloaded")


def test_a_flood_of_plain_notifications_does_not_cost_the_followers_a_change(
    world: DispatchService, database_url: str, engine: Engine
) -> None:
    """Anyone may NOTIFY the plain channel: 1,500 made-up rows and one real change, in one
    transaction. The relay reads what exists, and the change reaches the follower."""
    with desks(database_url, engine, 2) as (_relay, follower):
        with psycopg.connect(libpq(database_url), autocommit=True) as conn:
            row = conn.execute("SELECT id FROM units WHERE code = 'M1'").fetchone()
            assert row is not None
            with conn.transaction():
                for i in range(1500):
                    fake = 2_000_000_000 + i
                    conn.execute(
                        "SELECT pg_notify('dispatch_changes', %s)",
                        (
                            f'{{"table":"assignments","id":{fake},"op":"UPDATE",'
                            f'"call_id":{fake},"unit_id":{fake}}}',
                        ),
                    )
                conn.execute("UPDATE units SET status = 'OUT_OF_SERVICE' WHERE id = %s", row)

        def applied() -> bool:
            with follower._lock:
                changes = list(follower.applied)
            return any(
                u.code == "M1" and u.status == "OUT_OF_SERVICE"
                for c in changes
                for u in c.snapshot.units
            )

        wait_for(applied, "M1 out of service on the follower", timeout=10)


def test_an_idle_desk_keeps_no_server_connection_but_its_listeners(
    world: DispatchService, database_url: str
) -> None:
    """A desk's engine closes what it keeps once unused; its next action opens one again."""
    name = f"relay-idle-{uuid.uuid4().hex[:8]}"
    engine = make_engine(database_url, application_name=name, release_idle_seconds=0.3)

    def held() -> int:
        with psycopg.connect(libpq(database_url), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchone()
        return int(row[0]) if row else 0

    try:
        desk = DispatchService(make_sessionmaker(engine), desk="idle-test")
        number = new_call(desk)
        desk.dispatch("alice", number, ["M5"])  # the dispatch's own kept connection too
        assert held() >= 1
        wait_for(lambda: held() == 0, "the idle desk's connections closed", timeout=10)
        assert desk.call(number).active_units == ("M5",)  # and it works on
    finally:
        engine.dispose()


def test_the_relay_runs_as_a_service_of_its_own_and_stops_on_sigterm(
    world: DispatchService, database_url: str, engine: Engine, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "DISPATCH_DATABASE_URL": database_url,
        "DISPATCH_LOG_FILE": str(tmp_path / "relay.log"),
    }
    relay = subprocess.Popen(
        [sys.executable, "-m", "dispatch_tui", "relay"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def relay_holds_the_lock() -> bool:
            with psycopg.connect(libpq(database_url), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                    " WHERE l.locktype = 'advisory' AND l.granted"
                    " AND a.application_name = 'dispatch-tui listener'"
                    " AND a.datname = current_database()"
                    " AND (l.classid::bigint << 32) + l.objid::bigint = %s",
                    (listener_module.RELAY_LOCK,),
                ).fetchone()
            return bool(row and row[0])

        wait_for(relay_holds_the_lock, "the relay service holding the relay", timeout=20)
        with desks(database_url, engine, 1) as (desk,):
            assert desk.listener.role is RelayRole.FOLLOWER
            number = new_call(world)
            wait_for(lambda: number in desk.calls_applied(), f"{number} relayed by the service")
            assert desk.service.reads == 0
    finally:
        relay.send_signal(signal.SIGTERM)
        out, err = relay.communicate(timeout=10)
    assert relay.returncode == 0, err
    assert out.startswith("relaying changes from ")
    assert "relaying: every desk gets each change's rows from here" in out


def test_a_login_that_may_not_hear_the_rows_is_refused_the_relay_in_one_line(
    world: DispatchService,
    database_url: str,
    logins: Callable[..., Login],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, url = logins("paramedic", unit="M3")
    monkeypatch.setenv("DISPATCH_DATABASE_URL", url)
    monkeypatch.setenv("DISPATCH_LOG_FILE", str(tmp_path / "relay.log"))
    capsys.readouterr()
    assert main(["relay"]) == 5
    err = capsys.readouterr().err
    assert err.startswith("error: this login may not relay") and err.count("\n") == 1, err
