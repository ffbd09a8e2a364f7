"""change notifications

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Row triggers on the tables a desk shows send a small JSON notification on the `dispatch_changes`
channel (`dispatch_tui.db.listener.CHANNEL`) in the writing transaction, so every writer (a desk,
the CLI, psql) wakes every desk. PostgreSQL delivers a NOTIFY only when its transaction commits
and folds identical payloads within one transaction; a rolled-back write sends nothing.

Payload: `{"table": ..., "id": ..., "op": "INSERT" | "UPDATE" | "DELETE"}`, plus `call_id` and
`unit_id` for `assignments` so a desk can refresh the call and unit rows an assignment touches
without a lookup. The desk refetches rows by id; the payload never carries row data (NOTIFY
payloads are limited to 8000 bytes and must not leak into logs).
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The literal must stay equal to dispatch_tui.db.listener.CHANNEL; migrations never import
# application code, so that a later change to the module cannot rewrite history.
DISPATCH_NOTIFY = """
CREATE FUNCTION dispatch_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rec record;
    payload jsonb;
BEGIN
    -- OLD is the only row a DELETE has; INSERT and UPDATE report the row as it now is.
    IF TG_OP = 'DELETE' THEN
        rec := OLD;
    ELSE
        rec := NEW;
    END IF;
    payload := jsonb_build_object('table', TG_TABLE_NAME, 'id', rec.id, 'op', TG_OP);
    IF TG_TABLE_NAME = 'assignments' THEN
        payload := payload || jsonb_build_object('call_id', rec.call_id, 'unit_id', rec.unit_id);
    END IF;
    PERFORM pg_notify('dispatch_changes', payload::text);
    RETURN NULL;  -- the result of an AFTER trigger is ignored
END
$$
"""


# One trigger per table whose rows a desk displays, written out (DDL cannot take names as bound
# parameters). audit_log is left out on purpose: it only grows, and every change that writes an
# audit entry also changes one of these rows.
CREATE_TRIGGERS = (
    "CREATE TRIGGER calls_dispatch_notify AFTER INSERT OR UPDATE OR DELETE ON calls"
    " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()",
    "CREATE TRIGGER units_dispatch_notify AFTER INSERT OR UPDATE OR DELETE ON units"
    " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()",
    "CREATE TRIGGER hospitals_dispatch_notify AFTER INSERT OR UPDATE OR DELETE ON hospitals"
    " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()",
    "CREATE TRIGGER assignments_dispatch_notify AFTER INSERT OR UPDATE OR DELETE ON assignments"
    " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()",
    "CREATE TRIGGER staff_dispatch_notify AFTER INSERT OR UPDATE OR DELETE ON staff"
    " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()",
    "CREATE TRIGGER places_dispatch_notify AFTER INSERT OR UPDATE OR DELETE ON places"
    " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()",
)
DROP_TRIGGERS = (
    "DROP TRIGGER IF EXISTS calls_dispatch_notify ON calls",
    "DROP TRIGGER IF EXISTS units_dispatch_notify ON units",
    "DROP TRIGGER IF EXISTS hospitals_dispatch_notify ON hospitals",
    "DROP TRIGGER IF EXISTS assignments_dispatch_notify ON assignments",
    "DROP TRIGGER IF EXISTS staff_dispatch_notify ON staff",
    "DROP TRIGGER IF EXISTS places_dispatch_notify ON places",
)


def upgrade() -> None:
    op.execute(DISPATCH_NOTIFY)
    for statement in CREATE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROP_TRIGGERS:
        op.execute(statement)
    op.execute("DROP FUNCTION IF EXISTS dispatch_notify()")
