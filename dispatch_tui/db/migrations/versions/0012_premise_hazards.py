"""premise hazards: what a crew must know about an address before it arrives

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

- **`premise_notes`**: a supervisor's note on an address ("dog on premises", "oxygen in use",
  "violent patient — police first"), kept by the address as compared (`address_key`: lower case,
  words only, the usual abbreviations in one form; `rules.duplicates.normalise_address`), with
  the address as typed, an optional end date (`until`), who added it and when, and who retired
  it and when. Never deleted: a note retired stays in the history.
- Rights: every staff login and board reads them; supervisors and admins add and retire them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

GRANTS = (
    "GRANT SELECT ON premise_notes TO dispatch_operator, dispatch_board",
    "GRANT INSERT (address_key, address, note, until, added_by_id) ON premise_notes"
    " TO dispatch_supervisor, dispatch_admin",
    "GRANT UPDATE (retired_at, retired_by_id) ON premise_notes"
    " TO dispatch_supervisor, dispatch_admin",
    "GRANT USAGE ON SEQUENCE premise_notes_id_seq TO dispatch_supervisor, dispatch_admin",
)


def upgrade() -> None:
    op.create_table(
        "premise_notes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("address_key", sa.Text(), nullable=False),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("until", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column(
            "added_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("added_by_id", sa.Integer(), nullable=True),
        sa.Column("retired_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("retired_by_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("address_key <> ''", name=op.f("ck_premise_notes_key")),
        sa.CheckConstraint(
            "char_length(note) BETWEEN 1 AND 500", name=op.f("ck_premise_notes_note_len")
        ),
        sa.ForeignKeyConstraint(
            ["added_by_id"], ["staff.id"], name=op.f("fk_premise_notes_added_by_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["retired_by_id"], ["staff.id"], name=op.f("fk_premise_notes_retired_by_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_premise_notes")),
    )
    op.create_index(
        "ix_premise_notes_in_force",
        "premise_notes",
        ["address_key"],
        postgresql_where=sa.text("retired_at IS NULL"),
    )
    for statement in GRANTS:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("premise_notes")
