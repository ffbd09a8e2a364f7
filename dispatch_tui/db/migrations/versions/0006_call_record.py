"""the call record: narrative, answer time, re-open

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

- **`narrative`**: a call's timestamped, attributed entries, append-only. A person's note is
  `kind = 'note'`; what the service writes of a change (an edit's old → new, a re-open's reason)
  is `kind = 'event'`. A correction is a new entry naming the one it corrects (`corrects_id`).
  The audit log's BEFORE INSERT trigger function stamps `at` and binds `operator` to the login,
  as for the audit log; UPDATE, DELETE and TRUNCATE are refused to everyone, always. A change
  notifies the desks with the call's id, so an open record follows live.
- **`call_answers`**: the moment a dispatcher opened the intake form, by the database's clock.
  A call taken from that form names its answer (`calls.answer_id`, once only), and a BEFORE
  INSERT trigger on calls sets the call's `received_at` (NEMSIS eTimes.01) from it: the
  call-processing clock starts when the call was answered, not when it was saved, and no client
  writes the time.
- **`calls.reopened_at`**: when a closed or cancelled call was last re-opened (it is then
  pending again, its history intact).

Rights: every staff login reads both tables; dispatchers, supervisors and admins write notes;
dispatchers open answers and name them on new calls, and write `reopened_at`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The literal must stay equal to dispatch_tui.db.listener.CHANNEL (see 0002).
DISPATCH_NOTIFY = """
CREATE OR REPLACE FUNCTION dispatch_notify() RETURNS trigger LANGUAGE plpgsql AS $$
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
    ELSIF TG_TABLE_NAME = 'narrative' THEN
        payload := payload || jsonb_build_object('call_id', rec.call_id);
    END IF;
    PERFORM pg_notify('dispatch_changes', payload::text);
    RETURN NULL;  -- the result of an AFTER trigger is ignored
END
$$
"""

# 0002's, restored by the downgrade.
DISPATCH_NOTIFY_0002 = """
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
    END IF;
    PERFORM pg_notify('dispatch_changes', payload::text);
    RETURN NULL;
END
$$
"""

NARRATIVE_NEVER_CHANGES = """
CREATE FUNCTION narrative_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the narrative is append-only: correct an entry with a new one (% refused)',
        TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$
"""

# A call taken from the intake form is received when it was answered: the answer's time, read
# by the database, never the client's. An answer names one call, by the operator who opened it.
RECEIVED_AT_ANSWER = """
CREATE FUNCTION calls_received_at_answer() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    answer record;
BEGIN
    IF NEW.answer_id IS NULL THEN
        RETURN NEW;
    END IF;
    SELECT at, operator_id INTO answer FROM call_answers WHERE id = NEW.answer_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no call answer %', NEW.answer_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    IF answer.operator_id IS DISTINCT FROM NEW.created_by_id THEN
        RAISE EXCEPTION 'call answer % was opened by someone else', NEW.answer_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.received_at := answer.at;
    RETURN NEW;
END
$$
"""

NOTE_COLUMNS = "call_id, operator_id, operator, desk, kind, text, corrects_id"
GRANTS = (
    "GRANT SELECT ON narrative, call_answers TO dispatch_operator",
    f"GRANT INSERT ({NOTE_COLUMNS}) ON narrative"
    " TO dispatch_dispatcher, dispatch_supervisor, dispatch_admin",
    "GRANT USAGE ON SEQUENCE narrative_id_seq"
    " TO dispatch_dispatcher, dispatch_supervisor, dispatch_admin",
    "GRANT INSERT (operator_id, desk) ON call_answers TO dispatch_dispatcher",
    "GRANT USAGE ON SEQUENCE call_answers_id_seq TO dispatch_dispatcher",
    "GRANT INSERT (answer_id) ON calls TO dispatch_dispatcher",
    "GRANT UPDATE (reopened_at) ON calls TO dispatch_dispatcher",
)


def upgrade() -> None:
    op.create_table(
        "call_answers",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("desk", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["staff.id"], name=op.f("fk_call_answers_operator_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_answers")),
    )
    op.add_column("calls", sa.Column("answer_id", sa.BigInteger(), nullable=True))
    op.add_column("calls", sa.Column("reopened_at", sa.TIMESTAMP(timezone=True), nullable=True))
    op.create_foreign_key(
        op.f("fk_calls_answer_id_call_answers"), "calls", "call_answers", ["answer_id"], ["id"]
    )
    op.create_index("uq_calls_answer_id", "calls", ["answer_id"], unique=True)
    op.create_table(
        "narrative",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column(
            "at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("desk", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=8), server_default=sa.text("'note'"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("corrects_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("kind IN ('note', 'event')", name=op.f("ck_narrative_kind")),
        sa.CheckConstraint(
            "char_length(text) BETWEEN 1 AND 2000", name=op.f("ck_narrative_text_len")
        ),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_narrative_call_id_calls")),
        sa.ForeignKeyConstraint(
            ["corrects_id"], ["narrative.id"], name=op.f("fk_narrative_corrects_id_narrative")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["staff.id"], name=op.f("fk_narrative_operator_id_staff")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_narrative")),
    )
    op.create_index("ix_narrative_call_id", "narrative", ["call_id", "id"])
    op.execute(NARRATIVE_NEVER_CHANGES)
    op.execute(
        "CREATE TRIGGER narrative_append_only BEFORE UPDATE OR DELETE ON narrative"
        " FOR EACH ROW EXECUTE FUNCTION narrative_refuse_change()"
    )
    op.execute(
        "CREATE TRIGGER narrative_no_truncate BEFORE TRUNCATE ON narrative"
        " FOR EACH STATEMENT EXECUTE FUNCTION narrative_refuse_change()"
    )
    # The audit log's stamp: `at` from the clock, operator bound to the login (0004).
    op.execute(
        "CREATE TRIGGER narrative_who_and_when BEFORE INSERT ON narrative"
        " FOR EACH ROW EXECUTE FUNCTION audit_log_who_and_when()"
    )
    op.execute("ALTER TABLE narrative ENABLE ALWAYS TRIGGER narrative_append_only")
    op.execute("ALTER TABLE narrative ENABLE ALWAYS TRIGGER narrative_no_truncate")
    op.execute("ALTER TABLE narrative ENABLE ALWAYS TRIGGER narrative_who_and_when")
    op.execute(DISPATCH_NOTIFY)
    op.execute(
        "CREATE TRIGGER narrative_dispatch_notify AFTER INSERT ON narrative"
        " FOR EACH ROW EXECUTE FUNCTION dispatch_notify()"
    )
    op.execute(RECEIVED_AT_ANSWER)
    op.execute(
        "CREATE TRIGGER calls_received_at_answer BEFORE INSERT ON calls"
        " FOR EACH ROW EXECUTE FUNCTION calls_received_at_answer()"
    )
    for statement in GRANTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER calls_received_at_answer ON calls")
    op.execute("DROP FUNCTION calls_received_at_answer()")
    op.drop_table("narrative")
    op.execute("DROP FUNCTION narrative_refuse_change()")
    op.execute(DISPATCH_NOTIFY_0002)
    op.drop_index("uq_calls_answer_id", table_name="calls")
    op.drop_constraint("fk_calls_answer_id_call_answers", "calls", type_="foreignkey")
    op.drop_column("calls", "reopened_at")
    op.drop_column("calls", "answer_id")
    op.drop_table("call_answers")
