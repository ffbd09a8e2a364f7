"""Alembic environment: runs migrations on the engine the app hands over in the config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from dispatch_tui.db.models import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError(
        "run migrations through `dispatch-tui db upgrade`, which supplies the engine"
    )

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        # Serialise concurrent upgrades from several desks starting at once.
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7265401)")
        context.run_migrations()
