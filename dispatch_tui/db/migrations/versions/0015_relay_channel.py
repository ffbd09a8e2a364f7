"""the relay's channel: changed rows sent once to every desk, on a channel only desks can name

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01

Desks stop reading every changed row themselves: one of them (or `dispatch-tui relay`) reads it
once and notifies the rows as they now are (`service.relay`). Anyone connected may LISTEN or
NOTIFY on any channel, so the channel carrying rows is named by a secret kept here, readable
only by the logins that may see and change everything (dispatchers, supervisors, admins): a
paramedic's login (row security narrows what it reads) or a wall board's cannot hear the rows
nor forge them. Those logins keep refetching what the plain change notifications name.

- **`relay_channel`**: one row, `name`, random at migration time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_channel",
        sa.Column("one", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.CheckConstraint("one", name=op.f("ck_relay_channel_one_row")),
        sa.CheckConstraint(
            "name ~ '^dispatch_rows_[0-9a-f]{32}$'", name=op.f("ck_relay_channel_name")
        ),
        sa.PrimaryKeyConstraint("one", name=op.f("pk_relay_channel")),
    )
    op.execute(
        "INSERT INTO relay_channel (name)"
        " VALUES ('dispatch_rows_' || replace(CAST(gen_random_uuid() AS text), '-', ''))"
    )
    op.execute(
        "GRANT SELECT ON relay_channel TO dispatch_dispatcher, dispatch_supervisor, dispatch_admin"
    )


def downgrade() -> None:
    op.drop_table("relay_channel")
