"""Engines, sessions and the schema version check.

One Session per user action (the service opens and commits it). The engine checks connections
before use so a desk survives a server restart without a stale-connection traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = "dispatch_tui.db:migrations"


def normalise_url(url: str) -> URL:
    """Accept `postgresql://` and `postgres://` too, and always drive them with psycopg 3."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+psycopg")


def make_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    application_name: str = "dispatch-tui",
    read_only: bool = False,
) -> Engine:
    """An engine; `read_only` makes every session on it read-only in PostgreSQL itself, so a
    supervisor's board cannot write even through a bug (the server refuses, not the app).
    The login must be a member of `dispatch_board` (every login `admin add-operator` makes is)."""
    connect_args: dict[str, object] = {"application_name": application_name, "connect_timeout": 5}
    if read_only:
        # Two locks on the door: every transaction read-only, and the session's rights narrowed
        # to the SELECT-only group role (migration 0003), so turning read-only off still cannot
        # write.
        connect_args["options"] = "-c default_transaction_read_only=on -c role=dispatch_board"
    return create_engine(
        normalise_url(str(url) if isinstance(url, str) else url.render_as_string(False)),
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: the service returns plain data built before commit; nothing lazy
    # should reach back into a closed session.
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config  # imported when needed: it costs a desk ~1 s at start

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if engine is not None:
        config.attributes["engine"] = engine
    return config


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def is_current(self) -> bool:
        return self.current == self.head


# The newest migration. Kept here so that every command's schema check is one small query and
# needs no Alembic import (a test keeps it equal to the migrations' head).
SCHEMA_HEAD = "0003"


def schema_state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        exists = conn.execute(
            text("SELECT to_regclass('alembic_version') IS NOT NULL")
        ).scalar_one()
        current = (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
            if exists
            else None
        )
    return SchemaState(current=current, head=SCHEMA_HEAD)


def migrations_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations directory has no head revision"
    return head


def upgrade(engine: Engine, revision: str = "head") -> SchemaState:
    """Apply migrations up to `revision`; a no-op when the schema is already there."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)
    return schema_state(engine)
