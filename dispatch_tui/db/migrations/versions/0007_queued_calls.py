"""stacked calls: a busy unit's next call, lined up

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

- **`queued`**: a unit's next call, lined up while it is busy. A row is open until it ends
  (`ended_at`, with `end_reason`: dispatched when the unit cleared, the call gone or taken by
  another unit, or taken back). At most one open row per unit (a partial unique index). When the
  unit clears, the same transaction dispatches it to its queued call (`assignment_id` names the
  assignment) or ends the row with the reason. Changes notify the desks with the call and unit.
- Rights: dispatchers line up and take back; whoever clears a unit (a dispatcher, or the crew
  with its own login) ends its row and, when the call still waits, starts the unit's assignment
  to it. For a paramedic that is narrowed by row security to the unit they crew and the call it
  was lined up for (and the call's first dispatch time and dispatcher, for that call only).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# The literal must stay equal to dispatch_tui.db.listener.CHANNEL (see 0002).
DISPATCH_NOTIFY = """
CREATE OR REPLACE FUNCTION dispatch_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    payload jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        rec := OLD;
    ELSE
        rec := NEW;
    END IF;
    payload := jsonb_build_object('table', TG_TABLE_NAME, 'id', rec.id, 'op', TG_OP);
    IF TG_TABLE_NAME IN ('assignments', 'queued') THEN
        payload := payload || jsonb_build_object('call_id', rec.call_id, 'unit_id', rec.unit_id);
    ELSIF TG_TABLE_NAME = 'narrative' THEN
        payload := payload || jsonb_build_object('call_id', rec.call_id);
    END IF;
    PERFORM pg_notify('dispatch_changes', payload::text);
    RETURN NULL;  -- the result of an AFTER trigger is ignored
END
$$
"""

# 0006's, restored by the downgrade.
DISPATCH_NOTIFY_0006 = """
CREATE OR REPLACE FUNCTION dispatch_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    payload jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        rec := OLD;
    ELSE
        rec := NEW;
    END IF;
    payload := jsonb_build_object('table', TG_TABLE_NAME, 'id', rec.id, 'op', TG_OP);
    IF TG_TABLE_NAME = 'assignments' THEN
        payload := payload || jsonb_build_object('call_id', rec.call_id, 'unit_id', rec.unit_id);
    ELSIF TG_TABLE_NAME = 'narrative' THEN
        payload := payload || jsonb_build_object('call_id', rec.call_id);
    END IF;
    PERFORM pg_notify('dispatch_changes', payload::text);
    RETURN NULL;
END
$$
"""

# The unit the session's paramedic crews (as 0004 writes it).
CREWED = (
    "(SELECT s.unit_id FROM staff s"
    " WHERE lower(s.username) = lower(session_user::text) AND s.active)"
)
QUEUED_FOR_THE_CREW = (
    "EXISTS (SELECT 1 FROM queued q WHERE q.unit_id = assignments.unit_id"
    " AND q.call_id = assignments.call_id AND q.ended_at IS NULL)"
)
GRANTS = (
    "GRANT SELECT ON queued TO dispatch_operator, dispatch_board",
    "GRANT INSERT (unit_id, call_id, queued_by_id) ON queued TO dispatch_dispatcher",
    "GRANT USAGE ON SEQUENCE queued_id_seq TO dispatch_dispatcher",
    "GRANT UPDATE (ended_at, end_reason, assignment_id) ON queued"
    " TO dispatch_dispatcher, dispatch_paramedic",
    # A crew clearing its unit starts the assignment to the call it was lined up for.
    "GRANT INSERT (call_id, unit_id, dispatcher_id, notified_at) ON assignments"
    " TO dispatch_paramedic",
    "GRANT USAGE ON SEQUENCE assignments_id_seq TO dispatch_paramedic",
    "GRANT UPDATE (first_dispatched_at, dispatched_by_id) ON calls TO dispatch_paramedic",
    "ALTER TABLE queued ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY queued_every_row ON queued TO dispatch_operator, dispatch_board"
    " USING (true) WITH CHECK (true)",
    "CREATE POLICY queued_crewed_only ON queued AS RESTRICTIVE FOR UPDATE TO dispatch_paramedic"
    f" USING (unit_id = {CREWED})",
    "CREATE POLICY assignments_queued_for_the_crew ON assignments AS RESTRICTIVE FOR INSERT"
    f" TO dispatch_paramedic WITH CHECK (unit_id = {CREWED} AND {QUEUED_FOR_THE_CREW})",
)
# 0004's policy on calls for a paramedic, and this one's: also the open call its unit is lined
# up for (locked, and dispatched to, when the crew clears the unit).
OPEN_CALL_OF_THE_CREW = (
    f"EXISTS (SELECT 1 FROM assignments a WHERE a.call_id = calls.id AND a.unit_id = {CREWED})"
)
NEXT_CALL_OF_THE_CREW = (
    "EXISTS (SELECT 1 FROM queued q WHERE q.call_id = calls.id"
    f" AND q.unit_id = {CREWED} AND q.ended_at IS NULL)"
)
CALLS_POLICY = (
    "ALTER POLICY calls_crewed_only ON calls"
    " USING (status NOT IN ('CLOSED', 'CANCELLED')"
    f" AND ({OPEN_CALL_OF_THE_CREW} OR {NEXT_CALL_OF_THE_CREW}))"
    f" WITH CHECK ({OPEN_CALL_OF_THE_CREW})"
)
CALLS_POLICY_0004 = (
    "ALTER POLICY calls_crewed_only ON calls"
    f" USING (status NOT IN ('CLOSED', 'CANCELLED') AND {OPEN_CALL_OF_THE_CREW})"
    f" WITH CHECK ({OPEN_CALL_OF_THE_CREW})"
)
UNDO_GRANTS = (
    "DROP POLICY IF EXISTS assignments_queued_for_the_crew ON assignments",
    "REVOKE USAGE ON SEQUENCE assignments_id_seq FROM dispatch_paramedic",
    "REVOKE UPDATE (first_dispatched_at, dispatched_by_id) ON calls FROM dispatch_paramedic",
    "REVOKE INSERT (call_id, unit_id, dispatcher_id, notified_at) ON assignments"
    " FROM dispatch_paramedic",
)


def upgrade() -> None:
    op.create_table(
        "queued",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column(
            "queued_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("queued_by_id", sa.Integer(), nullable=True),
        sa.Column("ended_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
        sa.Column("assignment_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "(ended_at IS NULL) = (end_reason IS NULL)", name=op.f("ck_queued_ended")
        ),
        sa.CheckConstraint(
            "ended_at IS NULL OR ended_at >= queued_at", name=op.f("ck_queued_end_order")
        ),
        sa.ForeignKeyConstraint(
            ["assignment_id"], ["assignments.id"], name=op.f("fk_queued_assignment_id_assignments")
        ),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_queued_call_id_calls")),
        sa.ForeignKeyConstraint(
            ["queued_by_id"], ["staff.id"], name=op.f("fk_queued_queued_by_id_staff")
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_queued_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queued")),
    )
    op.create_index(
        "uq_queued_open_unit",
        "queued",
        ["unit_id"],
        unique=True,
        postgresql_where=sa.text("ended_at IS NULL"),
    )
    op.create_index(
        "ix_queued_open_call", "queued", ["call_id"], postgresql_where=sa.text("ended_at IS NULL")
    )
    op.execute(DISPATCH_NOTIFY)
    op.execute(
        "CREATE TRIGGER queued_dispatch_notify AFTER INSERT OR UPDATE OR DELETE ON queued"
        " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()"
    )
    for statement in GRANTS:
        op.execute(statement)
    op.execute(CALLS_POLICY)


def downgrade() -> None:
    op.execute(CALLS_POLICY_0004)
    for statement in UNDO_GRANTS:
        op.execute(statement)
    op.drop_table("queued")
    op.execute(DISPATCH_NOTIFY_0006)
