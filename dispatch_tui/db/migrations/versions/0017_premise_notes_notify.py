"""a hazard note wakes the desks showing calls at its address, whoever writes it

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01

A call's line says HAZARD while a note is in force at its address. The service used to send
the calls' change notifications itself when a supervisor added or retired a note, so a note
written in psql showed only when the call next changed. Now a trigger on `premise_notes` sends,
for every open call at the note's address, what the calls' own trigger sends (`{table, id, op}`,
migration 0002), in the writer's transaction: delivered at its commit, whoever the writer is.
A note that lapses by its date (`until`) still shows until the call changes or the desk reloads.
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# The channel's literal must stay equal to dispatch_tui.db.listener.CHANNEL, and the open
# statuses to rules.enums.OPEN_CALL_STATUSES (migrations never import application code).
FUNCTION = """
CREATE FUNCTION dispatch_premise_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_keys text[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_keys := ARRAY[OLD.address_key];
    ELSIF TG_OP = 'UPDATE' THEN
        v_keys := ARRAY[OLD.address_key, NEW.address_key];
    ELSE
        v_keys := ARRAY[NEW.address_key];
    END IF;
    PERFORM pg_notify('dispatch_changes',
                      json_build_object('table', 'calls', 'id', c.id, 'op', 'UPDATE')::text)
    FROM calls c
    WHERE c.address_key = ANY (v_keys)
      AND c.status IN ('RECEIVED', 'DISPATCHED', 'ON_SCENE', 'TRANSPORTING', 'AT_HOSPITAL');
    RETURN NULL;  -- the result of an AFTER trigger is ignored
END
$$
"""
TRIGGER = (
    "CREATE TRIGGER premise_notes_dispatch_notify AFTER INSERT OR UPDATE OR DELETE"
    " ON premise_notes FOR EACH ROW EXECUTE FUNCTION dispatch_premise_notify()"
)


def upgrade() -> None:
    op.execute(FUNCTION)
    op.execute(TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER premise_notes_dispatch_notify ON premise_notes")
    op.execute("DROP FUNCTION dispatch_premise_notify()")
