"""crew alerts: acknowledgement, and an outbox of alerts that are never lost

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

- **`assignments.acknowledged_at`**: the crew's acknowledgement of the dispatch (NEMSIS
  eTimes.04). A BEFORE UPDATE trigger stamps it with the database's clock whatever value the
  writer sent, and keeps the first one: an acknowledgement is never moved or taken back.
  Dispatchers (an acknowledgement by radio) and the crew of the unit may set it (row security
  of 0004 holds a paramedic to the unit they crew).
- **`alerts`**: the outbox. AFTER triggers on assignments write an alert in the transaction
  that made it due: `dispatch` when an assignment starts (a dispatch, a divert, a lined-up call
  promoted as the unit clears), `stand_down` when one is cancelled (a unit cancelled, diverted
  on its way, its call cancelled). So an alert exists exactly when its change committed,
  whoever the writer was (a desk, the CLI, psql). The trigger function is SECURITY DEFINER:
  nobody inserts alerts by hand. What the crew is told (the call, its place, its callback, the
  destination) is read when the alert is sent, so a retry tells what is true then.
  `dispatch-tui alerter` claims pending rows (FOR UPDATE SKIP LOCKED, held while it delivers),
  and records the outcome: sent, or a failed attempt with its reason and the next try, or failed
  for good. A delivery's outcome notifies the desks (with the call and unit), which show each
  assignment's alert and acknowledgement. A new alert needs no notification of its own: the
  assignment's change that made it is one, and it wakes the alerters.
  The row is written on every dispatch, so it is kept lean: `call_id` and `unit_id` are copies
  of its assignment's (written by the trigger alone, no foreign keys of their own), and `uid`
  is a random UUID (no index: nothing looks an alert up by it).
- Role **`dispatch_alerter`** (no login of its own): reads alerts and what they tell (the
  assignment, its call, unit and destination), and records deliveries. A centre grants it to
  the login its alerter runs under.
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# The literal must stay equal to dispatch_tui.db.listener.CHANNEL (see 0002). Alerts name their
# call and unit, as assignments do, so a desk refetches the call whose alert changed.
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
    IF TG_TABLE_NAME IN ('assignments', 'queued', 'alerts') THEN
        payload := payload || jsonb_build_object('call_id', rec.call_id, 'unit_id', rec.unit_id);
    ELSIF TG_TABLE_NAME = 'narrative' THEN
        payload := payload || jsonb_build_object('call_id', rec.call_id);
    END IF;
    PERFORM pg_notify('dispatch_changes', payload::text);
    RETURN NULL;  -- the result of an AFTER trigger is ignored
END
$$
"""

# The alert a change to an assignment owes, its kind the trigger's argument. SECURITY DEFINER:
# its search_path is fixed (pg_catalog first, the caller's temporary schema last), so a caller's
# own objects cannot stand in for anything it uses.
DISPATCH_ALERT = """
CREATE FUNCTION dispatch_alert() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    INSERT INTO public.alerts (assignment_id, call_id, unit_id, kind)
    VALUES (NEW.id, NEW.call_id, NEW.unit_id, TG_ARGV[0]);
    RETURN NULL;
END
$$
"""

# The acknowledgement is the server's time, set once.
ACKNOWLEDGED = """
CREATE FUNCTION assignment_acknowledged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.acknowledged_at IS NOT NULL THEN
        NEW.acknowledged_at := OLD.acknowledged_at;
    ELSIF NEW.acknowledged_at IS NOT NULL THEN
        NEW.acknowledged_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$
"""

CREATE_ALERTER_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dispatch_alerter') THEN
        CREATE ROLE dispatch_alerter NOLOGIN;
    END IF;
END
$$
"""

DELIVERY_COLUMNS = "state, attempts, next_attempt_at, last_attempt_at, sent_at, last_error"
GRANTS = (
    "GRANT UPDATE (acknowledged_at) ON assignments TO dispatch_dispatcher, dispatch_paramedic",
    "GRANT SELECT ON alerts TO dispatch_operator, dispatch_board, dispatch_alerter",
    f"GRANT UPDATE ({DELIVERY_COLUMNS}) ON alerts TO dispatch_alerter",
    "GRANT SELECT ON assignments, calls, units, hospitals TO dispatch_alerter",
    "GRANT SELECT ON alembic_version TO dispatch_alerter",  # the schema check at its start
    # Row security (0004) shows rows only to the roles its policies name: the alerter reads all.
    "CREATE POLICY assignments_alerter ON assignments FOR SELECT TO dispatch_alerter USING (true)",
    "CREATE POLICY calls_alerter ON calls FOR SELECT TO dispatch_alerter USING (true)",
    "CREATE POLICY units_alerter ON units FOR SELECT TO dispatch_alerter USING (true)",
)
UNDO_GRANTS = (
    "DROP POLICY IF EXISTS units_alerter ON units",
    "DROP POLICY IF EXISTS calls_alerter ON calls",
    "DROP POLICY IF EXISTS assignments_alerter ON assignments",
    "REVOKE UPDATE (acknowledged_at) ON assignments FROM dispatch_dispatcher, dispatch_paramedic",
    "REVOKE SELECT ON assignments, calls, units, hospitals, alembic_version FROM dispatch_alerter",
)


def upgrade() -> None:
    op.add_column(
        "assignments",
        sa.Column("acknowledged_at", sa.TIMESTAMP(timezone=True), nullable=True),
    )
    op.create_check_constraint(
        op.f("ck_assignments_acknowledged_order"),
        "assignments",
        "acknowledged_at IS NULL OR acknowledged_at >= notified_at",
    )
    op.execute(ACKNOWLEDGED)
    op.execute(
        "CREATE TRIGGER assignments_acknowledged BEFORE UPDATE OF acknowledged_at ON assignments"
        " FOR EACH ROW EXECUTE FUNCTION assignment_acknowledged()"
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "uid", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False
        ),
        sa.Column("assignment_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("state", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("last_attempt_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("sent_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('dispatch', 'stand_down')", name=op.f("ck_alerts_kind")
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'sent', 'failed')", name=op.f("ck_alerts_state")
        ),
        sa.CheckConstraint(
            "(state = 'sent') = (sent_at IS NOT NULL)", name=op.f("ck_alerts_sent")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_alerts_attempts")),
        sa.ForeignKeyConstraint(
            ["assignment_id"],
            ["assignments.id"],
            name=op.f("fk_alerts_assignment_id_assignments"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("assignment_id", "kind", name="uq_alerts_assignment_kind"),
    )
    op.create_index(
        "ix_alerts_due",
        "alerts",
        ["next_attempt_at", "id"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.execute(DISPATCH_ALERT)
    op.execute(
        "CREATE TRIGGER assignments_alert_dispatch AFTER INSERT ON assignments"
        " FOR EACH ROW EXECUTE FUNCTION dispatch_alert('dispatch')"
    )
    op.execute(
        "CREATE TRIGGER assignments_alert_stand_down AFTER UPDATE OF cancelled_at ON assignments"
        " FOR EACH ROW WHEN (OLD.cancelled_at IS NULL AND NEW.cancelled_at IS NOT NULL)"
        " EXECUTE FUNCTION dispatch_alert('stand_down')"
    )
    op.execute(DISPATCH_NOTIFY)
    op.execute(
        "CREATE TRIGGER alerts_dispatch_notify AFTER UPDATE ON alerts"
        " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()"
    )
    op.execute("REVOKE EXECUTE ON FUNCTION dispatch_alert() FROM PUBLIC")
    op.execute(CREATE_ALERTER_ROLE)
    for statement in GRANTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS assignments_alert_stand_down ON assignments")
    op.execute("DROP TRIGGER IF EXISTS assignments_alert_dispatch ON assignments")
    op.drop_table("alerts")
    op.execute("DROP FUNCTION IF EXISTS dispatch_alert()")
    for statement in UNDO_GRANTS:
        op.execute(statement)
    op.execute("DROP TRIGGER IF EXISTS assignments_acknowledged ON assignments")
    op.execute("DROP FUNCTION IF EXISTS assignment_acknowledged()")
    op.drop_column("assignments", "acknowledged_at")  # (its CHECK goes with it)
    # 0007's notification function, as it was.
    previous = importlib.import_module("dispatch_tui.db.migrations.versions.0007_queued_calls")
    op.execute(previous.DISPATCH_NOTIFY)
