"""moves in one statement: a divert, and a call following its units, as SQL functions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

A divert took some 25 statements from the service, each a round trip and SQLAlchemy's work: at
8 desks its p99 was 14× a dispatch's. These functions do the same work in one call, so a divert
is one statement in autocommit, as a dispatch is. Each runs as the calling login (rights, row
security and the audit trigger apply as before), in READ COMMITTED: every statement in them sees
what committed before it started, so what they read after taking their locks is current.

The rules stay in Python and come in as data (`p_rules`, built from `rules.lifecycle`,
`rules.permissions` and `rules.enums` by `service.moves.RULES`): who may dispatch, the statuses
a unit may be diverted from, the open call statuses, and the call status each unit status
gives, in order. A refusal is returned as a code with its facts, and the service says it in the
words the other paths use; nothing is written then.

- **`dispatch_end_lined_up(call, at, staff, operator, desk, why)`**: a call that ended ends the
  queue entries lining units up for it, each with an audit row. Used by a close, a cancel, and
  a call that closes as its last unit clears.
- **`dispatch_follow(call, at, staff, operator, desk, rules)`**: the call follows its most
  advanced active unit; with none left it closes ("all units cleared") when a unit cleared since
  it was last re-opened, else it is pending again. Audited; returns the new status, or NULL when
  it did not change. Every path that moves a unit off or along a call calls it.
- **`dispatch_divert(operator, unit, call, reason, desk, request, fingerprint, rules)`**: locks
  both calls in id order, then the unit; ends the unit's assignment (cancelled on its way,
  cleared at the hospital), starts one on the other call with its own notified time, moves the
  unit EN_ROUTE, ends a queue entry lining it up for that call, dispatches that call, audits
  both calls, lets the old call follow its units, narrates both, and keeps the request id.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

END_LINED_UP = """
CREATE FUNCTION dispatch_end_lined_up(
    p_call integer, p_at timestamptz, p_staff integer, p_operator text, p_desk text, p_why text
) RETURNS integer LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_unit integer;
    v_ended integer := 0;
BEGIN
    FOR v_unit IN
        UPDATE queued SET ended_at = p_at, end_reason = p_why
        WHERE call_id = p_call AND ended_at IS NULL
        RETURNING unit_id
    LOOP
        INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, unit_id, details)
        VALUES (clock_timestamp(), p_staff, p_operator, p_desk, 'queue_ended', p_call, v_unit,
                jsonb_build_object('reason', p_why));
        v_ended := v_ended + 1;
    END LOOP;
    RETURN v_ended;
END
$$
"""

FOLLOW = """
CREATE FUNCTION dispatch_follow(
    p_call integer, p_at timestamptz, p_staff integer, p_operator text, p_desk text,
    p_rules jsonb
) RETURNS text LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_old text;
    v_new text;
    v_number text;
    v_reopened timestamptz;
BEGIN
    SELECT status, number, reopened_at INTO v_old, v_number, v_reopened
    FROM calls WHERE id = p_call;
    SELECT o.status INTO v_new
    FROM assignments a
    JOIN units u ON u.id = a.unit_id
    JOIN jsonb_array_elements_text(p_rules -> 'call_order') WITH ORDINALITY AS o (status, n)
        ON o.status = p_rules -> 'call_for_unit' ->> u.status
    WHERE a.call_id = p_call AND a.cleared_at IS NULL AND a.cancelled_at IS NULL
    ORDER BY o.n DESC
    LIMIT 1;
    IF v_new IS NULL THEN
        -- No unit left: closed when one cleared since the call was last re-opened (before
        -- that, the call had ended), else pending again (every unit was cancelled).
        IF EXISTS (
            SELECT 1 FROM assignments
            WHERE call_id = p_call AND cleared_at IS NOT NULL
              AND (v_reopened IS NULL OR cleared_at > v_reopened)
        ) THEN
            v_new := 'CLOSED';
        ELSE
            v_new := 'RECEIVED';
        END IF;
    END IF;
    IF v_new = v_old THEN
        RETURN NULL;
    END IF;
    IF v_new = 'CLOSED' THEN
        UPDATE calls SET status = v_new, closed_at = p_at, disposition = 'all units cleared'
        WHERE id = p_call;
    ELSE
        UPDATE calls SET status = v_new WHERE id = p_call;
    END IF;
    INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, details)
    VALUES (clock_timestamp(), p_staff, p_operator, p_desk, 'call_status', p_call,
            jsonb_build_object('old', v_old, 'new', v_new));
    IF v_new = 'CLOSED' THEN
        PERFORM dispatch_end_lined_up(p_call, p_at, p_staff, p_operator, p_desk,
                                      v_number || ' was closed');
    END IF;
    RETURN v_new;
END
$$
"""

DIVERT = """
CREATE FUNCTION dispatch_divert(
    p_operator text, p_unit text, p_call text, p_reason text, p_desk text,
    p_request text, p_fingerprint text, p_rules jsonb
) RETURNS TABLE (r_outcome text, r_call integer, r_at timestamptz, r_detail jsonb)
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
    v_assignment integer;
    v_paramedic integer;
    v_source text;
    v_target_status text;
    v_first timestamptz;
    v_at timestamptz;
    v_words text;
BEGIN
    SELECT id, username, role INTO v_staff, v_username, v_role
    FROM staff WHERE lower(username) = lower(p_operator) AND active;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_operator', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF NOT (p_rules -> 'may_dispatch') ? v_role THEN
        RETURN QUERY SELECT 'forbidden', NULL::integer, NULL::timestamptz,
            jsonb_build_object('operator', v_username, 'role', v_role);
        RETURN;
    END IF;
    SELECT id INTO v_unit FROM units WHERE code = p_unit;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_unit', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    SELECT id INTO v_target FROM calls WHERE number = p_call;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_call', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    SELECT call_id INTO v_seen FROM assignments
    WHERE unit_id = v_unit AND cleared_at IS NULL AND cancelled_at IS NULL;
    IF v_seen IS NULL THEN
        RETURN QUERY SELECT 'on_no_call', NULL::integer, NULL::timestamptz,
            jsonb_build_object('status', (SELECT status FROM units WHERE id = v_unit));
        RETURN;
    END IF;
    IF v_seen = v_target THEN
        RETURN QUERY SELECT 'already_there', v_target, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    -- The shared order: calls by id, then the unit.
    PERFORM 1 FROM calls WHERE id IN (v_seen, v_target) ORDER BY id FOR UPDATE;
    SELECT status INTO v_status FROM units WHERE id = v_unit FOR UPDATE;
    SELECT id, call_id, paramedic_id INTO v_assignment, v_on, v_paramedic
    FROM assignments WHERE unit_id = v_unit AND cleared_at IS NULL AND cancelled_at IS NULL;
    IF v_on IS DISTINCT FROM v_seen THEN  -- moved between the first look and the locks
        RETURN QUERY SELECT 'moved', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    SELECT number INTO v_source FROM calls WHERE id = v_seen;
    IF NOT (p_rules -> 'divert_from') ? v_status THEN
        RETURN QUERY SELECT 'not_divertible', NULL::integer, NULL::timestamptz,
            jsonb_build_object('status', v_status, 'source', v_source);
        RETURN;
    END IF;
    SELECT status, first_dispatched_at INTO v_target_status, v_first
    FROM calls WHERE id = v_target;
    IF NOT (p_rules -> 'open') ? v_target_status THEN
        RETURN QUERY SELECT 'target_ended', NULL::integer, NULL::timestamptz,
            jsonb_build_object('status', v_target_status);
        RETURN;
    END IF;
    v_at := clock_timestamp();
    -- On its way: the assignment is cancelled. At the hospital (the patient handed over): the
    -- unit is back in service for that call, which is its clear time.
    IF v_status = 'EN_ROUTE' THEN
        UPDATE assignments SET cancelled_at = v_at WHERE id = v_assignment;
    ELSE
        UPDATE assignments SET cleared_at = v_at WHERE id = v_assignment;
    END IF;
    INSERT INTO assignments (call_id, unit_id, dispatcher_id, notified_at, paramedic_id)
    VALUES (v_target, v_unit, v_staff, v_at, v_paramedic);
    UPDATE units SET status = 'EN_ROUTE', status_since = v_at WHERE id = v_unit;
    -- Lined up to come here next: it comes now, and the entry ends.
    UPDATE queued SET ended_at = v_at, end_reason = 'diverted here'
    WHERE unit_id = v_unit AND call_id = v_target AND ended_at IS NULL;
    UPDATE calls SET
        status = CASE WHEN status = 'RECEIVED' THEN 'DISPATCHED' ELSE status END,
        first_dispatched_at = coalesce(first_dispatched_at, v_at),
        dispatched_by_id = CASE WHEN first_dispatched_at IS NULL THEN v_staff
                                ELSE dispatched_by_id END
    WHERE id = v_target;
    v_words := 'diverted to ' || p_call
        || CASE WHEN p_reason <> '' THEN ': ' || p_reason ELSE '' END;
    INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, unit_id, details)
    VALUES
        (clock_timestamp(), v_staff, v_username, p_desk, 'unit_diverted', v_seen, v_unit,
         jsonb_build_object('reason', v_words, 'old', v_status, 'to', p_call)),
        (clock_timestamp(), v_staff, v_username, p_desk, 'dispatch', v_target, v_unit,
         jsonb_build_object('diverted_from', v_source, 'added', v_first IS NOT NULL));
    PERFORM dispatch_follow(v_seen, v_at, v_staff, v_username, p_desk, p_rules);
    INSERT INTO narrative (call_id, operator_id, operator, desk, kind, text)
    VALUES
        (v_seen, v_staff, v_username, p_desk, 'event',
         p_unit || ' ' || v_words || ' by ' || v_username),
        (v_target, v_staff, v_username, p_desk, 'event',
         p_unit || ' diverted here from ' || v_source);
    IF p_request IS NOT NULL THEN
        INSERT INTO requests (id, fingerprint, call_id)
        VALUES (p_request, p_fingerprint, v_target);
    END IF;
    RETURN QUERY SELECT 'done', v_target, v_at, NULL::jsonb;
END
$$
"""

FUNCTIONS = (
    ("dispatch_end_lined_up(integer, timestamptz, integer, text, text, text)", END_LINED_UP),
    ("dispatch_follow(integer, timestamptz, integer, text, text, jsonb)", FOLLOW),
    ("dispatch_divert(text, text, text, text, text, text, text, jsonb)", DIVERT),
)


def upgrade() -> None:
    for signature, body in FUNCTIONS:
        op.execute(body)
        # Run as the caller, whose rights decide what they may change; only staff logins run it.
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {signature} TO dispatch_operator")


def downgrade() -> None:
    for signature, _ in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS {signature}")
