"""crew notes: a paramedic adds notes to the narrative of the call their unit is on

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

The crew terminal (`dispatch-tui crew M12`) lets the crew write what it finds into the call's
narrative, as a desk does. The service allows it (`rules.permissions`: a note is an own-unit
action of a paramedic); here the database holds a paramedic's login to the same:

- `dispatch_paramedic` may INSERT the note's columns into `narrative` (the trigger of 0006 still
  stamps the time and binds the operator to the login).
- Row security on `narrative`: every row for every login that reads (as before), and, for a
  paramedic, only a `note` (never an `event`, which the service writes of a change) on a call
  the unit they crew is on now (an open assignment).
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# As 0004 spells it: the unit the session's paramedic crews (NULL for anyone else).
CREWED = (
    "(SELECT s.unit_id FROM staff s"
    " WHERE lower(s.username) = lower(session_user::text) AND s.active)"
)
ON_THE_CALL = (
    "EXISTS (SELECT 1 FROM assignments a WHERE a.call_id = narrative.call_id"
    f" AND a.unit_id = {CREWED} AND a.cleared_at IS NULL AND a.cancelled_at IS NULL)"
)
NOTE_COLUMNS = "call_id, operator_id, operator, desk, kind, text, corrects_id"

UPGRADE = (
    f"GRANT INSERT ({NOTE_COLUMNS}) ON narrative TO dispatch_paramedic",
    "GRANT USAGE ON SEQUENCE narrative_id_seq TO dispatch_paramedic",
    "ALTER TABLE narrative ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY narrative_every_row ON narrative TO dispatch_operator, dispatch_board"
    " USING (true) WITH CHECK (true)",
    "CREATE POLICY narrative_crew_notes ON narrative AS RESTRICTIVE FOR INSERT"
    f" TO dispatch_paramedic WITH CHECK (kind = 'note' AND {ON_THE_CALL})",
)
DOWNGRADE = (
    "DROP POLICY IF EXISTS narrative_crew_notes ON narrative",
    "DROP POLICY IF EXISTS narrative_every_row ON narrative",
    "ALTER TABLE narrative DISABLE ROW LEVEL SECURITY",
    "REVOKE USAGE ON SEQUENCE narrative_id_seq FROM dispatch_paramedic",
    f"REVOKE INSERT ({NOTE_COLUMNS}) ON narrative FROM dispatch_paramedic",
)


def upgrade() -> None:
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in DOWNGRADE:
        op.execute(statement)
