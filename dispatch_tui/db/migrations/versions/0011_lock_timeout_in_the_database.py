"""the lock timeout kept by the database itself, for sessions behind a pooler

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01

A row another desk holds is reported as busy after 5 s, never a frozen desk: every engine asks
for `lock_timeout` in its startup options. Behind a pooler (PgBouncer) those options are refused
or dropped, and a write would wait for ever. The database's own default (`ALTER DATABASE … SET`)
reaches every session on it, pooled or not, whoever connects (psql included).
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The literal must stay equal to dispatch_tui.db.engine.LOCK_TIMEOUT.
SET = """
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET lock_timeout = %L', current_database(), '5s');
END
$$
"""
RESET = """
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I RESET lock_timeout', current_database());
END
$$
"""


def upgrade() -> None:
    op.execute(SET)


def downgrade() -> None:
    op.execute(RESET)
