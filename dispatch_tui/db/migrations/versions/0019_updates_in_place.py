"""a call's and a unit's status change in place (HOT), with no index to write

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01

PostgreSQL updates a row in place, on its own page and with no new index entries (a HOT
update), when no indexed column changes and the page has room. Every status change of a call
wrote a new entry into all six of its indexes: the open calls' index was on `status`, and its
condition named `status` too. Every status change of a unit wrote into three, for an index on
`status` nothing reads (the gate finds a unit by its code; the desks read every unit). A
dispatch changes one of each, a divert two calls; a busy centre's history of calls grew
index entries for every step of every call, and every one of them went over the wire to the
standbys.

- **The open calls' index** is now on `id`, for the rows whose `closed_at` and `cancelled_at`
  are both empty: the same rows (the `end_times` check ties those columns to the CLOSED and
  CANCELLED statuses), and a column a status change between the open statuses never touches.
  The reads say the same condition (`db.views._OPEN`), so the planner uses it.
- **`ix_units_status` is dropped.**
- **Room on the page**: calls and assignments keep 20 % of each new page free for their rows'
  next versions, units and hospitals half (few rows, changed all day: positions, beds).
  Pages written before keep their rows where they are; they gain room as old versions are
  pruned.
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

FILL = {"calls": 80, "assignments": 80, "units": 50, "hospitals": 50}


def upgrade() -> None:
    op.execute("DROP INDEX ix_calls_open")
    op.execute(
        "CREATE INDEX ix_calls_open ON calls (id) WHERE closed_at IS NULL AND cancelled_at IS NULL"
    )
    op.execute("DROP INDEX ix_units_status")
    for table, percent in FILL.items():
        op.execute(f"ALTER TABLE {table} SET (fillfactor = {percent})")


def downgrade() -> None:
    for table in FILL:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    op.execute("CREATE INDEX ix_units_status ON units (status)")
    op.execute("DROP INDEX ix_calls_open")
    op.execute(
        "CREATE INDEX ix_calls_open ON calls (status)"
        " WHERE status NOT IN ('CLOSED', 'CANCELLED')"
    )
