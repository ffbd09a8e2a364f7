"""a unit's next call promoted without a deadlock against that call's close

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01

`dispatch_promote` (migration 0010) locked the unit's queue entry first and only then checked
that the entry's call was one its caller had locked. A close or cancel of that very call holds
the call, ends the entry (its row lock), and writes an audit row naming the unit, whose foreign
key waits for the unit's lock, held by the transaction promoting it, which waits for the entry:
a deadlock (seen once in the soak: `dispatch_end_lined_up` against `dispatch_promote`).

Now it reads the entry, returns 'moved' when its call is not among the caller's locked calls
(as before), and locks the entry only then: every writer of a call's entries holds that call,
so the entry's lock is free or about to be.
"""

from __future__ import annotations

import importlib

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_0010 = importlib.import_module("dispatch_tui.db.migrations.versions.0010_moves_in_one_statement")

LOCKED_FIRST = """
    SELECT id, call_id, queued_by_id INTO v_entry, v_next, v_queued_by
    FROM queued WHERE unit_id = p_unit AND ended_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NOT v_next = ANY (p_locked) THEN
        RETURN 'moved';  -- lined up for another call meanwhile: the caller did not lock it
    END IF;
"""
CHECKED_FIRST = """
    SELECT id, call_id, queued_by_id INTO v_entry, v_next, v_queued_by
    FROM queued WHERE unit_id = p_unit AND ended_at IS NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NOT v_next = ANY (p_locked) THEN
        RETURN 'moved';  -- lined up for another call meanwhile: the caller did not lock it
    END IF;
    -- Its call is locked by the caller, and every writer of a call's entries holds the call.
    PERFORM 1 FROM queued WHERE id = v_entry AND ended_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'moved';
    END IF;
"""


def _promote(body: str) -> str:
    before: str = _0010.PROMOTE
    assert before.count(LOCKED_FIRST) == 1, "migration 0010's dispatch_promote changed"
    return before.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1).replace(
        LOCKED_FIRST, body, 1
    )


def upgrade() -> None:
    op.execute(_promote(CHECKED_FIRST))


def downgrade() -> None:
    op.execute(_promote(LOCKED_FIRST))
