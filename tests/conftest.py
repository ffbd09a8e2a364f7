"""Test fixtures on a real PostgreSQL.

The server comes from DISPATCH_TEST_DATABASE_URL (a URL whose user may create databases, e.g.
`postgresql://postgres@127.0.0.1:5432/postgres`) or, when unset, an embedded server started in a
throwaway directory. Each run creates its own database, migrates it with the real migrations, and
drops it at the end. Each test that asks for `world` starts from the demo reference data (stations,
12 units, 5 hospitals, staff, places) and no calls.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.db.embedded import EmbeddedServer
from dispatch_tui.db.engine import make_engine, make_sessionmaker, normalise_url, upgrade
from dispatch_tui.service import demo
from dispatch_tui.service.dispatch_service import DispatchService

TABLES = (
    "audit_log, narrative, assignments, calls, call_answers, staff, units, stations, hospitals,"
    " places, requests, queued, alerts"
)
# The gazetteer's tables: emptied with the rest, unless a test keeps the demo's (`riverton`).
GAZETTEER = "address_points, street_segments"


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as a plain libpq connection string for psycopg."""
    return normalise_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A URL to a maintenance database on the server the whole run uses."""
    configured = os.environ.get("DISPATCH_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    data_dir = Path(tempfile.mkdtemp(prefix="dtui-test-", dir="/tmp"))
    server = EmbeddedServer(data_dir)
    try:
        server.start()
        yield server.url("postgres")
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_url: str) -> Iterator[str]:
    name = f"dispatch_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = normalise_url(server_url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(_libpq(server_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    # Room for the race tests' 16 concurrent workers plus the test's own connection.
    eng = make_engine(database_url, pool_size=20, application_name="dispatch-tui-tests")
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_sessionmaker(engine)


def reset(engine: Engine, *, gazetteer: bool = True) -> None:
    """Empty every table (but the gazetteer's, if `gazetteer` is false: loading it is slow).

    The audit log's and the narrative's append-only triggers fire even in replica mode (ENABLE
    ALWAYS, migrations 0004 and 0006), so the test's superuser switches them off by name, in
    this transaction only, and back on before it commits; replica mode still keeps the other
    triggers quiet."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        conn.execute(text("ALTER TABLE narrative DISABLE TRIGGER narrative_no_truncate"))
        emptied = f"{TABLES}, {GAZETTEER}" if gazetteer else TABLES
        conn.execute(text(f"TRUNCATE {emptied} RESTART IDENTITY CASCADE"))
        conn.execute(text("ALTER TABLE narrative ENABLE ALWAYS TRIGGER narrative_no_truncate"))
        conn.execute(text("ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_append_only"))
        conn.execute(text("ALTER SEQUENCE call_number_seq RESTART WITH 1001"))
    if gazetteer:  # its streets, as its emptied tables now have them (none)
        with engine.begin() as conn:
            conn.execute(text("REFRESH MATERIALIZED VIEW gazetteer_streets"))


@pytest.fixture
def world(engine: Engine, sessions: sessionmaker[Session]) -> DispatchService:
    """A service on the demo reference data, with no calls yet. Operators: alice and bob
    (dispatchers), carol/dave/erin/frank (paramedics on M1/M3/M4/M5), grace (supervisor), admin."""
    reset(engine)
    with sessions.begin() as s:
        demo._reference(s, None)
    return DispatchService(sessions, desk="test")


@pytest.fixture
def riverton(engine: Engine, sessions: sessionmaker[Session]) -> DispatchService:
    """As `world`, on Riverton's gazetteer (`demo.seed_gazetteer`): loaded once, kept between
    the tests that ask for it (they must not change it), loaded again after any other reset."""
    reset(engine, gazetteer=False)
    with sessions.begin() as s:
        demo._reference(s, None)
    service = DispatchService(sessions, desk="test")
    with engine.connect() as conn:
        loaded = conn.execute(
            text("SELECT count(*) FROM address_points WHERE source = :demo"), {"demo": demo.SOURCE}
        ).scalar_one()
    if loaded != RIVERTON_POINTS:
        reset(engine)
        with sessions.begin() as s:
            demo._reference(s, None)
        demo.seed_gazetteer(service)
    return service


# How many address points Riverton's gazetteer has (`demo.gazetteer_rows`).
RIVERTON_POINTS = 18_207


@pytest.fixture
def count(engine: Engine):  # type: ignore[no-untyped-def]
    """count("calls") -> number of rows, for checking that a refused action wrote nothing."""

    def _count(table: str, where: str = "true") -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one()
            )

    return _count


@pytest.fixture
def db_env(database_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Environment for running the CLI against the test database, in this process (the variables
    are set) or in a subprocess (the returned mapping). The log goes to the test's own tmp_path
    (removed once the test has passed), never to a folder of its own or the user's data directory."""
    settings = {
        "DISPATCH_DATABASE_URL": database_url,
        "DISPATCH_USER": "alice",
        "DISPATCH_LOG_FILE": str(tmp_path / "dispatch-tui.log"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **settings}


def url_database(url: str) -> str | None:
    return make_url(url).database
