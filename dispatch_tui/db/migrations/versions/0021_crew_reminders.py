"""a dispatch the crew has not acknowledged is paged again, once: a reminder alert

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-01

A crew acknowledges its dispatch (NEMSIS eTimes.04), and one not acknowledged within about 30 s
is chased. The desk and the board time it (`NO ACK`); now the alerter also pages the crew again,
once, as a paging system does: a `reminder` alert, written by the alerter when the dispatch alert
went out `DISPATCH_ALERT_REMIND_SECONDS` ago (by default the desk's `DISPATCH_ACK_SECONDS`) and
the crew has neither acknowledged, nor reported en route or on scene, and the unit is still on
the call. One a dispatch at most (the unique (assignment, kind) says so); past it, chasing is the
dispatcher's, on the radio.

- **`dispatch_remind(after_seconds)`** writes the reminders due now and says how many. It runs
  as the database's owner (SECURITY DEFINER), so the alerter's login, which may not write alerts
  itself, writes only these: its search_path is `pg_catalog, pg_temp` and every table in it is
  named with its schema, so no object another login creates can stand in for one it uses; a
  negative wait counts as none. It reads the open assignments (through the partial index of
  active ones), never the history of alerts.
- **No login but the owner creates objects in `public`** (`REVOKE CREATE ON SCHEMA public FROM
  PUBLIC`, PostgreSQL's default since 15, not on a database made before it): an object made
  there could stand in for one a SECURITY DEFINER function of this schema uses.
- A reminder overtaken before it is sent (the crew acknowledged meanwhile, or the unit was stood
  down) is superseded by the alerter, as a dispatch alert is (migration 0020).
"""

from __future__ import annotations

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

REMIND = """
CREATE FUNCTION dispatch_remind(p_after_seconds double precision) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_written integer;
BEGIN
    INSERT INTO public.alerts (assignment_id, call_id, unit_id, kind)
    SELECT s.id, s.call_id, s.unit_id, 'reminder'
    FROM public.assignments s
    JOIN public.alerts d ON d.assignment_id = s.id AND d.kind = 'dispatch'
    WHERE s.cleared_at IS NULL AND s.cancelled_at IS NULL
      AND s.acknowledged_at IS NULL AND s.en_route_at IS NULL AND s.on_scene_at IS NULL
      AND d.state = 'sent'
      AND d.sent_at <= clock_timestamp() - make_interval(secs => greatest(p_after_seconds, 0))
    ON CONFLICT (assignment_id, kind) DO NOTHING;
    GET DIAGNOSTICS v_written = ROW_COUNT;
    RETURN v_written;
END
$$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE alerts DROP CONSTRAINT ck_alerts_kind")
    op.execute(
        "ALTER TABLE alerts ADD CONSTRAINT ck_alerts_kind"
        " CHECK (kind IN ('dispatch', 'stand_down', 'reminder'))"
    )
    op.execute(REMIND)
    op.execute("REVOKE EXECUTE ON FUNCTION dispatch_remind(double precision) FROM PUBLIC")
    op.execute("GRANT EXECUTE ON FUNCTION dispatch_remind(double precision) TO dispatch_alerter")
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS dispatch_remind(double precision)")
    op.execute("DELETE FROM alerts WHERE kind = 'reminder'")
    op.execute("ALTER TABLE alerts DROP CONSTRAINT ck_alerts_kind")
    op.execute(
        "ALTER TABLE alerts ADD CONSTRAINT ck_alerts_kind CHECK (kind IN ('dispatch', 'stand_down'))"
    )
