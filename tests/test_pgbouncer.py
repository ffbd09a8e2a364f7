"""Through PgBouncer, in transaction and in session mode (Debian's `pgbouncer`, started here on a
port of its own in front of the test server; CI installs it).

The URL says what sits in front of the server (`?pooler=transaction`): no startup options (a
pooler refuses or drops them; the lock timeout is the database's own, migration 0011), nothing
prepared in transaction mode (a statement prepared on one server connection is not on the next),
and every transaction of a board `READ ONLY`. Writes go through, a held row is reported busy
instead of waiting for ever, a board cannot write, and a listener that hears nothing through the
pooler says so and polls.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from dispatch_tui.cli.main import main
from dispatch_tui.db.embedded import _server_user
from dispatch_tui.db.engine import libpq_params, make_engine, make_sessionmaker, normalise_url
from dispatch_tui.db.listener import ConnectionState
from dispatch_tui.rules.errors import Conflict
from dispatch_tui.rules.validation import CallChanges
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.read_service import ReadService
from tests.helpers import new_call
from tests.test_listener import Recorder, running, wait_for
from tests.test_roles import libpq

# Debian puts it in /usr/sbin, which a plain user's PATH may not hold.
PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
# Skipped where it is not installed, except in CI, which installs it (`.ci/run`).
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None and not os.environ.get("DISPATCH_REQUIRE_PGBOUNCER"),
    reason="pgbouncer is not installed",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bouncer(database_url: str, mode: str) -> Iterator[str]:
    """A PgBouncer in `mode` in front of the test server; its URL for the test database."""
    params = libpq_params(normalise_url(database_url))
    folder = Path(tempfile.mkdtemp(prefix="dtui-pgbouncer-", dir="/tmp"))
    folder.chmod(0o755)
    port = _free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={params['host']} port={params.get('port') or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
        f"pool_mode = {mode}\nignore_startup_parameters = options\n"
        "max_client_conn = 200\ndefault_pool_size = 4\n"
        f"logfile = {folder / 'pgbouncer.log'}\npidfile = {folder / 'pgbouncer.pid'}\n"
    )
    assert PGBOUNCER is not None, "pgbouncer is not installed (apt-get install pgbouncer)"
    user = _server_user()  # pgbouncer will not run as root
    command = [PGBOUNCER]
    if user is not None:
        for path in folder.iterdir():
            os.chown(path, user.pw_uid, user.pw_gid)
        os.chown(folder, user.pw_uid, user.pw_gid)
        command += ["-u", user.pw_name]
    process = subprocess.Popen(
        [*command, str(folder / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        database = normalise_url(database_url).database
        yield f"postgresql://postgres@127.0.0.1:{port}/{database}?pooler={mode}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(params=["transaction", "session"])
def pooled(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    yield from _bouncer(database_url, request.param)


def test_writes_go_through_the_pooler(world: DispatchService, pooled: str) -> None:
    engine = make_engine(pooled, pool_size=2)
    try:
        service = DispatchService(make_sessionmaker(engine), desk="pooled")
        # More of each than psycopg's prepare threshold (5): nothing prepared collides.
        for k in range(7):
            first = new_call(service, place="", location=f"{k} Quarry Rd", priority=3)
            service.dispatch("alice", first, ["M1"])
            second = new_call(service, place="", location=f"{k} Elm Rd", priority=1)
            service.divert("alice", "M1", second)
            service.unit_status("alice", "M1", "ON_SCENE")
            service.unit_status("alice", "M1", "AVAILABLE")
            service.cancel_call("alice", first, "drill")
        assert {u.code: u.status for u in world.units()}["M1"] == "AVAILABLE"
        assert len(world.calls(open_only=False)) == 14
    finally:
        engine.dispose()


def test_the_cli_works_through_the_pooler(
    world: DispatchService, pooled: str, db_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DISPATCH_DATABASE_URL", pooled)
    assert main(["call", "new", "Fall", "-l", "9 Birch Rd", "-p", "3"]) == 0
    (call,) = world.calls()
    assert main(["dispatch", call.number, "M2"]) == 0
    assert main(["unit", "ack", "M2"]) == 0
    assert main(["call", "show", call.number, "--json"]) == 0


def test_a_held_row_is_busy_through_the_pooler_not_a_wait_for_ever(
    world: DispatchService, pooled: str, database_url: str
) -> None:
    """The lock timeout no longer rides on the startup options the pooler drops: the database
    keeps it (migration 0011)."""
    number = new_call(world, place="", location="3 Ash Rd", priority=2)
    engine = make_engine(pooled, pool_size=1)
    try:
        service = DispatchService(make_sessionmaker(engine), desk="pooled")
        with psycopg.connect(libpq(database_url)) as holder:
            holder.execute("SELECT 1 FROM calls WHERE number = %s FOR UPDATE", (number,))
            with pytest.raises(Conflict, match=r"holding that record|changed at another desk"):
                service.update_call("alice", number, CallChanges(priority=1))
    finally:
        engine.dispose()


def test_a_board_through_the_pooler_cannot_write(world: DispatchService, pooled: str) -> None:
    engine = make_engine(pooled, pool_size=1, read_only=True)
    try:
        board = ReadService(make_sessionmaker(engine))
        assert len(board.units()) == 12
        with engine.connect() as conn, pytest.raises(Exception, match="read-only transaction"):
            conn.execute(text("UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M1'"))
    finally:
        engine.dispose()


def _another_desk(url: str, done: threading.Event) -> None:
    """Short transactions through the pooler until `done`, as other desks' reads are."""
    conninfo = libpq(url.split("?")[0])
    with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as conn:
        while not done.is_set():
            conn.execute("SELECT pg_sleep(0.01)")


def test_a_listener_behind_a_transaction_pooler_says_it_polls(
    world: DispatchService, database_url: str
) -> None:
    """LISTEN is accepted on a server connection that is this client's only for that one
    statement: while other desks use the pool, what is notified to it goes to whichever client
    holds it then, and the listener's own notification does not come back, so it polls."""
    rec, busy = Recorder(), threading.Event()
    with contextmanager(_bouncer)(database_url, "transaction") as url:
        desks = [threading.Thread(target=_another_desk, args=(url, busy)) for _ in range(3)]
        for desk in desks:
            desk.start()
        try:
            with running(url, rec, heartbeat_seconds=0.1, poll_seconds=0.2):
                wait_for(lambda: ConnectionState.POLLING in rec.states, "POLLING", timeout=20)
        finally:
            busy.set()
            for desk in desks:
                desk.join()
