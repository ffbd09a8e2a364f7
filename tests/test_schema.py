"""The schema: migrations match the models, upgrades are idempotent, commands refuse an old schema."""

from __future__ import annotations

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from dispatch_tui.db.connect import Database, require_current_schema
from dispatch_tui.db.engine import (
    SCHEMA_HEAD,
    make_engine,
    migrations_head,
    normalise_url,
    schema_state,
    upgrade,
)
from dispatch_tui.db.models import Base
from dispatch_tui.rules.errors import Unavailable


def test_migrations_create_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
        )
    assert diff == []


def test_the_schema_check_knows_the_newest_migration() -> None:
    assert migrations_head() == SCHEMA_HEAD


def test_upgrade_is_idempotent(engine: Engine) -> None:
    before = schema_state(engine)
    after = upgrade(engine)
    assert before.is_current and after == before


def test_commands_refuse_an_empty_or_old_schema(server_url: str) -> None:
    name = "dispatch_test_schema_check"
    admin = (
        normalise_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(normalise_url(server_url).set(database=name))
    try:
        db = Database(engine, "test", embedded=False)
        with pytest.raises(Unavailable, match="db upgrade"):
            require_current_schema(db)
        upgrade(engine)
        require_current_schema(db)  # current now: no error
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0000'")
        with pytest.raises(Unavailable, match="schema is at 0000"):
            require_current_schema(db)
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
