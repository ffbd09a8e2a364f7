"""A cluster's URL names several servers, and a standby takes no writes.

Both multi-host forms (libpq's `h1:5432,h2:5432` and SQLAlchemy's `?host=h1:5432&host=h2:5432`)
reach the first server that answers, for the CLI and for the desk's listener alike; a write sent
where it cannot be taken (a standby, a read-only login) is refused in one line, exit 6, nothing
changed, never "unexpected error".
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text

from dispatch_tui.cli.main import main
from dispatch_tui.db.connect import Database, open_database, require_read_only
from dispatch_tui.db.engine import libpq_params, make_engine, normalise_url
from dispatch_tui.db.listener import conninfo_from_url
from dispatch_tui.rules.errors import Forbidden
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call
from tests.test_listener import Recorder, running, wait_for
from tests.test_roles import as_login, libpq

# A port nothing listens on: libpq is refused at once and tries the next host.
DEAD = "127.0.0.1:1"


def test_libpqs_multi_host_form_becomes_the_drivers_lists() -> None:
    url = "postgresql://alice:s%40cret@db1:5432,db2:5433/dispatch?target_session_attrs=read-write"
    params = libpq_params(normalise_url(url))
    assert (params["host"], params["port"]) == ("db1,db2", "5432,5433")
    assert (params["user"], params["password"], params["dbname"]) == ("alice", "s@cret", "dispatch")
    assert params["target_session_attrs"] == "read-write"
    sqlalchemy_form = "postgresql://alice@/dispatch?host=db1:5432&host=db2:5433"
    assert "host=db1,db2" in conninfo_from_url(sqlalchemy_form)
    assert "port=5432,5433" in conninfo_from_url(sqlalchemy_form)


def _live_host(database_url: str) -> str:
    """The test server as one `host:port` entry of a multi-host URL (a socket directory too)."""
    params = libpq_params(normalise_url(database_url))
    return f"{params['host']}:{params.get('port') or 5432}"


def _through_a_dead_host(database_url: str) -> str:
    parsed = normalise_url(database_url)
    user = parsed.username or "postgres"
    password = f":{parsed.password}" if parsed.password else ""
    return (
        f"postgresql://{user}{password}@/{parsed.database}"
        f"?host={DEAD}&host={_live_host(database_url)}"
    )


def test_the_cli_reaches_the_server_that_answers(
    world: DispatchService,
    database_url: str,
    db_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    number = new_call(world)
    monkeypatch.setenv("DISPATCH_DATABASE_URL", _through_a_dead_host(database_url))
    assert main(["call", "show", number]) == 0
    assert main(["dispatch", number, "M1"]) == 0
    assert world.call(number).active_units == ("M1",)


def test_the_listener_hears_through_a_multi_host_url(
    world: DispatchService, database_url: str
) -> None:
    rec = Recorder()
    with running(_through_a_dead_host(database_url), rec):
        wait_for(rec.live, "LIVE", timeout=15)
        new_call(world)
        wait_for(lambda: any(c.table == "calls" for c in rec.changes), "the new call")


def test_a_write_to_a_read_only_server_is_refused_in_one_line(
    world: DispatchService,
    database_url: str,
    db_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    engine: Engine,
) -> None:
    """As a hot standby answers (and a login set read-only): exit 6, nothing changed."""
    name = f"t{uuid.uuid4().hex[:8]}_ro"
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                sql.Identifier(name)
            )
        )
    try:
        number = new_call(world)
        monkeypatch.setenv("DISPATCH_DATABASE_URL", as_login(database_url, name))
        capsys.readouterr()
        for argv in (
            ["dispatch", number, "M1"],
            ["unit", "status", "M2", "oos"],
            ["call", "new", "x", "-l", "1 Elm St", "-p", "3"],
        ):
            assert main(["--as", "alice", *argv]) == 6, argv
            err = capsys.readouterr().err
            assert err.startswith("error: this server is read-only") and err.count("\n") == 1, err
            assert "nothing was changed" in err
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM assignments")).scalar_one() == 0
            assert conn.execute(text("SELECT count(*) FROM calls")).scalar_one() == 1
    finally:
        with psycopg.connect(libpq(database_url), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


async def test_the_desk_names_the_server_it_is_on(
    world: DispatchService, database_url: str
) -> None:
    from dispatch_tui.widgets.status_line import StatusLine
    from tests.desk_helpers import desk, screen_of, until

    url = _through_a_dead_host(database_url)
    app = desk(world, url)
    async with app.run_test(size=(160, 48)) as pilot:
        line = screen_of(app).query_one(StatusLine)
        # As `open_database` labels a cluster's URL (the test desk is labelled "test").
        line.database = f"{DEAD},{_live_host(database_url)}/{normalise_url(url).database}"
        await until(pilot, lambda: line.state == "live")
        live = _live_host(database_url)
        expected = "local socket" if live.startswith("/") else live
        await until(pilot, lambda: f"via {expected}" in line.text().plain)


def test_a_board_runs_only_on_a_session_that_cannot_write(
    database_url: str, tmp_path: Path
) -> None:
    """Read-only per transaction too (`BEGIN READ ONLY`, which no pooler drops), and checked
    before the board shows anything: a session that could write is refused."""
    board = open_database(database_url, tmp_path, read_only=True)
    with board.engine.connect() as conn:  # even with the startup options gone
        conn.execute(text("RESET default_transaction_read_only"))
        conn.commit()
        with pytest.raises(Exception, match="read-only transaction"):
            conn.execute(text("CREATE TEMP TABLE written (a int)"))
    writable = Database(make_engine(database_url, pool_size=1), "test", embedded=False)
    try:
        with pytest.raises(Forbidden, match="the board does not run on it"):
            require_read_only(writable)
    finally:
        writable.engine.dispose()
