"""lining up a unit's next call, and taking it back, in one statement each

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01

`queue` and `unqueue` were the last moves written as ORM statements from the service: about a
dozen round trips and the unit read back, 7 ms at one desk where a divert takes 1 ms. As SQL
functions (the pattern of migration 0010) each is one statement in autocommit on the driver: it
locks in the shared order (calls by id, then the unit), checks after its locks, writes, audits
and keeps its request id, and answers with the unit as it now is, or a refusal code with its
facts for the service to say in the words every path uses. Nothing is written on a refusal.

- **`dispatch_queue(operator, unit, call, desk, request, fingerprint, rules)`**: locks the call to
  line up and the unit's own call, then the unit; refuses a unit free or out of service (dispatch
  it instead), one already on that call, a call no longer pending, and a unit with a call lined
  up already; else one `queued` row, its audit row (`unit_queued`) and the call's narrative line
  ("M3 lined up to come here when it clears C-1002, by alice").
- **`dispatch_unqueue(operator, unit, desk, request, fingerprint, rules)`**: locks the lined-up
  call, then the unit; ends the entry "taken back by alice", audited (`queue_ended`).

Both run as the calling login (rights, row security and the audit trigger apply); only staff
logins may run them.
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# What both answer with: the unit as it is now (its call and its lined-up call), as
# `dispatch_unit_status` answers (migration 0010), so the service need not read it again.
UNIT_SAID = """
        SELECT 'done', v_unit, v_at,
               jsonb_build_object(
                   'code', u.code, 'capability', u.capability, 'status', u.status,
                   'since', u.status_since, 'call', c.number, 'reported', a.en_route_at IS NOT NULL,
                   'next', (SELECT n.number FROM queued q JOIN calls n ON n.id = q.call_id
                            WHERE q.unit_id = v_unit AND q.ended_at IS NULL))
        FROM units u
        LEFT JOIN assignments a
            ON a.unit_id = u.id AND a.cleared_at IS NULL AND a.cancelled_at IS NULL
        LEFT JOIN calls c ON c.id = a.call_id
        WHERE u.id = v_unit"""

# Both first refuse an operator not on the staff list (or not active), one whose role may not
# dispatch, and a unit not known, in that order, as the divert does (migration 0010).
WHO_MAY = """    IF v_staff IS NULL THEN
        RETURN QUERY SELECT 'no_operator', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF NOT (p_rules -> 'may_dispatch') ? v_role THEN
        RETURN QUERY SELECT 'forbidden', NULL::integer, NULL::timestamptz,
            jsonb_build_object('operator', v_username, 'role', v_role);
        RETURN;
    END IF;
    IF v_unit IS NULL THEN
        RETURN QUERY SELECT 'no_unit', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
"""

QUEUE = (
    """
CREATE FUNCTION dispatch_queue(
    p_operator text, p_unit text, p_call text, p_desk text,
    p_request text, p_fingerprint text, p_rules jsonb
) RETURNS TABLE (r_outcome text, r_unit integer, r_at timestamptz, r_detail jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_staff integer;
    v_username text;
    v_role text;
    v_unit integer;
    v_target integer;
    v_seen integer;
    v_on integer;
    v_status text;
    v_target_status text;
    v_source text;
    v_lined text;
    v_at timestamptz;
    v_call record;
BEGIN
    -- Who, which unit, which call, and the call the unit is on: one look, unlocked.
    SELECT s.id, s.username, s.role, u.id, c.id, a.call_id
    INTO v_staff, v_username, v_role, v_unit, v_target, v_seen
    FROM (SELECT 1) AS one
    LEFT JOIN staff s ON lower(s.username) = lower(p_operator) AND s.active
    LEFT JOIN units u ON u.code = p_unit
    LEFT JOIN calls c ON c.number = p_call
    LEFT JOIN assignments a
        ON a.unit_id = u.id AND a.cleared_at IS NULL AND a.cancelled_at IS NULL;
"""
    + WHO_MAY
    + """    IF v_target IS NULL THEN
        RETURN QUERY SELECT 'no_call', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    -- The shared order: calls by id, then the unit. A locked row is read as it now is.
    FOR v_call IN
        SELECT id, number, status FROM calls
        WHERE id IN (v_seen, v_target) ORDER BY id FOR UPDATE
    LOOP
        IF v_call.id = v_target THEN
            v_target_status := v_call.status;
        END IF;
        IF v_call.id = v_seen THEN
            v_source := v_call.number;
        END IF;
    END LOOP;
    SELECT status INTO v_status FROM units WHERE id = v_unit FOR UPDATE;
    -- Read again, by a statement that starts once the locks are held.
    SELECT call_id INTO v_on
    FROM assignments WHERE unit_id = v_unit AND cleared_at IS NULL AND cancelled_at IS NULL;
    IF v_on IS DISTINCT FROM v_seen THEN  -- moved between the first look and the locks
        RETURN QUERY SELECT 'moved', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF v_status IN ('AVAILABLE', 'OUT_OF_SERVICE') THEN
        RETURN QUERY SELECT 'not_busy', NULL::integer, NULL::timestamptz,
            jsonb_build_object('status', v_status);
        RETURN;
    END IF;
    IF v_seen = v_target THEN
        RETURN QUERY SELECT 'already_there', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF v_target_status IS DISTINCT FROM 'RECEIVED' THEN
        RETURN QUERY SELECT 'not_pending', NULL::integer, NULL::timestamptz,
            jsonb_build_object('status', v_target_status);
        RETURN;
    END IF;
    -- At most one lined-up call a unit (a partial unique index holds it too); the unit's lock
    -- makes a second desk lining it up wait, then read the first one's entry here.
    SELECT n.number INTO v_lined
    FROM queued q JOIN calls n ON n.id = q.call_id
    WHERE q.unit_id = v_unit AND q.ended_at IS NULL;
    IF v_lined IS NOT NULL THEN
        RETURN QUERY SELECT 'lined_up', NULL::integer, NULL::timestamptz,
            jsonb_build_object('call', v_lined);
        RETURN;
    END IF;
    v_at := clock_timestamp();
    INSERT INTO queued (unit_id, call_id, queued_at, queued_by_id)
    VALUES (v_unit, v_target, v_at, v_staff);
    INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, unit_id, details)
    VALUES (clock_timestamp(), v_staff, v_username, p_desk, 'unit_queued', v_target, v_unit,
            '{}'::jsonb);
    INSERT INTO narrative (call_id, operator_id, operator, desk, kind, text)
    VALUES (v_target, v_staff, v_username, p_desk, 'event',
            p_unit || ' lined up to come here when it clears '
            || coalesce(v_source, 'its call') || ', by ' || v_username);
    IF p_request IS NOT NULL THEN
        INSERT INTO requests (id, fingerprint, unit_id)
        VALUES (p_request, p_fingerprint, v_unit);
    END IF;
    RETURN QUERY"""
    + UNIT_SAID
    + """;
END
$$
"""
)

UNQUEUE = (
    """
CREATE FUNCTION dispatch_unqueue(
    p_operator text, p_unit text, p_desk text,
    p_request text, p_fingerprint text, p_rules jsonb
) RETURNS TABLE (r_outcome text, r_unit integer, r_at timestamptz, r_detail jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_staff integer;
    v_username text;
    v_role text;
    v_unit integer;
    v_seen integer;
    v_entry bigint;
    v_next integer;
    v_why text;
    v_at timestamptz;
BEGIN
    SELECT s.id, s.username, s.role, u.id, q.call_id
    INTO v_staff, v_username, v_role, v_unit, v_seen
    FROM (SELECT 1) AS one
    LEFT JOIN staff s ON lower(s.username) = lower(p_operator) AND s.active
    LEFT JOIN units u ON u.code = p_unit
    LEFT JOIN queued q ON q.unit_id = u.id AND q.ended_at IS NULL;
"""
    + WHO_MAY
    + """    -- The shared order: the lined-up call, then the unit.
    PERFORM 1 FROM calls WHERE id = v_seen FOR UPDATE;
    PERFORM 1 FROM units WHERE id = v_unit FOR UPDATE;
    -- The entry as it now is, read before it is locked: it is locked only once its call is
    -- known to be the one locked above (every writer of an entry holds its call), so a close or
    -- cancel of another call, ending an entry it lined up meanwhile, is never waited for while
    -- holding the unit (migration 0016's order, for the same reason).
    SELECT id, call_id INTO v_entry, v_next
    FROM queued WHERE unit_id = v_unit AND ended_at IS NULL;
    IF v_entry IS NULL THEN
        RETURN QUERY SELECT 'nothing_lined', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF v_next IS DISTINCT FROM v_seen THEN  -- lined up for another call meanwhile
        RETURN QUERY SELECT 'moved', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    PERFORM 1 FROM queued WHERE id = v_entry AND ended_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN  -- ended meanwhile
        RETURN QUERY SELECT 'moved', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    v_at := clock_timestamp();
    v_why := 'taken back by ' || v_username;
    UPDATE queued SET ended_at = v_at, end_reason = v_why WHERE id = v_entry;
    INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, unit_id, details)
    VALUES (clock_timestamp(), v_staff, v_username, p_desk, 'queue_ended', v_next, v_unit,
            jsonb_build_object('reason', v_why));
    IF p_request IS NOT NULL THEN
        INSERT INTO requests (id, fingerprint, unit_id)
        VALUES (p_request, p_fingerprint, v_unit);
    END IF;
    RETURN QUERY"""
    + UNIT_SAID
    + """;
END
$$
"""
)

QUEUE_ARGS = "text, text, text, text, text, text, jsonb"
UNQUEUE_ARGS = "text, text, text, text, text, jsonb"


def upgrade() -> None:
    op.execute(QUEUE)
    op.execute(UNQUEUE)
    for name, args in (("dispatch_queue", QUEUE_ARGS), ("dispatch_unqueue", UNQUEUE_ARGS)):
        op.execute(f"REVOKE EXECUTE ON FUNCTION {name}({args}) FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {name}({args}) TO dispatch_operator")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS dispatch_unqueue({UNQUEUE_ARGS})")
    op.execute(f"DROP FUNCTION IF EXISTS dispatch_queue({QUEUE_ARGS})")
