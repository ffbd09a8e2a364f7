"""request ids: a write retried after its answer was lost is carried out once

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Every write a desk or the CLI sends carries a request id. The write inserts a row here, in its
own transaction, with what it made (the call, unit or hospital), so the row exists exactly when
the write committed. A retry with the same id finds it and answers with the first outcome
instead of acting twice; an id given again for another action (its fingerprint differs) is
refused. A desk that lost the answer to a write checks after reconnecting by inserting the id
itself, `void`: if that insert wins, the write never committed and now never can.

Every staff login reads and inserts here (it is how its own writes are kept once); the wall
display's login has no rights on it. Nothing updates or deletes a row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requests",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column(
            "at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("void", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("hospital_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("id ~ '^[A-Za-z0-9._:-]{1,64}$'", name=op.f("ck_requests_id_format")),
        sa.CheckConstraint(
            "fingerprint ~ '^[0-9a-f]{64}$'", name=op.f("ck_requests_fingerprint_format")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_requests")),
    )
    op.execute("GRANT SELECT, INSERT ON requests TO dispatch_operator")


def downgrade() -> None:
    op.drop_table("requests")
