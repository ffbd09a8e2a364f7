"""calls found by their address: a premise's history

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01

- **`calls.address_key`**: the call's location as compared (`rules.duplicates.normalise_address`:
  lower case, words only, the usual abbreviations in one form), written with the location by
  the service, and filled here for the calls there already. Indexed with the time received, so
  the prior calls at an address in the last 12 months are one index range.
- Dispatchers write it with the location (intake and edits).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dispatch_tui.rules.duplicates import normalise_address

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("calls", sa.Column("address_key", sa.Text(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, location_text FROM calls")).all()
    keys = [{"id": row.id, "key": normalise_address(row.location_text) or None} for row in rows]
    if keys:
        conn.execute(sa.text("UPDATE calls SET address_key = :key WHERE id = :id"), keys)
    op.create_index("ix_calls_address_key", "calls", ["address_key", "received_at"])
    op.execute("GRANT INSERT (address_key), UPDATE (address_key) ON calls TO dispatch_dispatcher")


def downgrade() -> None:
    op.execute("REVOKE INSERT (address_key), UPDATE (address_key) ON calls FROM dispatch_dispatcher")
    op.drop_index("ix_calls_address_key", table_name="calls")
    op.drop_column("calls", "address_key")
