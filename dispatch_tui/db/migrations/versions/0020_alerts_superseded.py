"""a crew alert overtaken before it was sent is not sent: superseded

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01

A dispatch alert waits while the gateway is down (tried again, 2 s, 4 s, 8 s …). If the unit is
stood down (cancelled, diverted) or clears meanwhile, sending it once the gateway is back pages the
crew to a call it no longer has; the stand-down follows, but the first page was wrong.

The alerter now marks such a dispatch alert `superseded` (never sent, with why) when it claims
it. Its stand-down is still sent: an attempt cut short (an alerter killed mid-send) may have
paged the crew without a trace. A superseded alert is an outcome, not a failure: it is kept,
shown in the call's record, and never tried again.
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE alerts DROP CONSTRAINT ck_alerts_state")
    op.execute(
        "ALTER TABLE alerts ADD CONSTRAINT ck_alerts_state"
        " CHECK (state IN ('pending', 'sent', 'failed', 'superseded'))"
    )


def downgrade() -> None:
    # A superseded alert was not sent, and the older schema has no word for it: failed, saying
    # it was superseded, with why.
    op.execute(
        "UPDATE alerts SET state = 'failed',"
        " last_error = 'superseded, not sent: ' || coalesce(last_error, '')"
        " WHERE state = 'superseded'"
    )
    op.execute("ALTER TABLE alerts DROP CONSTRAINT ck_alerts_state")
    op.execute(
        "ALTER TABLE alerts ADD CONSTRAINT ck_alerts_state"
        " CHECK (state IN ('pending', 'sent', 'failed'))"
    )
