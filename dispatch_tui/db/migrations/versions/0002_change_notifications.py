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

# The tables whose rows a desk displays. audit_log is left out on purpose: it only grows, and
# every change that writes an audit entry also changes one of these rows.
TABLES = ("calls", "units", "hospitals", "assignments", "staff", "places")

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


def _trigger(table: str) -> str:
    return f"{table}_dispatch_notify"


def upgrade() -> None:
    op.execute(DISPATCH_NOTIFY)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {_trigger(table)} AFTER INSERT OR UPDATE OR DELETE ON {table}"
            " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {_trigger(table)} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS dispatch_notify()")
