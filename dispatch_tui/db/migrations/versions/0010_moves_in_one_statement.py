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
`rules.permissions` and `rules.enums` by `service.sql_functions.RULES`): who may dispatch, the statuses
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
  both calls (each call's timeline says it from those rows), lets the old call follow its
  units, and keeps the request id.
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
    v_unit_status text;
    v_stage text;
    v_rank integer := 0;
BEGIN
    SELECT status, number, reopened_at INTO v_old, v_number, v_reopened
    FROM calls WHERE id = p_call;
    -- The most advanced of its active units (rules: the call status each unit status gives,
    -- and each call status's rank).
    FOR v_unit_status IN
        SELECT u.status FROM assignments a JOIN units u ON u.id = a.unit_id
        WHERE a.call_id = p_call AND a.cleared_at IS NULL AND a.cancelled_at IS NULL
    LOOP
        v_stage := p_rules -> 'call_for_unit' ->> v_unit_status;
        IF v_stage IS NOT NULL AND (p_rules -> 'call_rank' ->> v_stage)::integer > v_rank THEN
            v_rank := (p_rules -> 'call_rank' ->> v_stage)::integer;
            v_new := v_stage;
        END IF;
    END LOOP;
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
    IF v_staff IS NULL THEN
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
    IF v_target IS NULL THEN
        RETURN QUERY SELECT 'no_call', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF v_seen IS NULL THEN
        RETURN QUERY SELECT 'on_no_call', NULL::integer, NULL::timestamptz,
            jsonb_build_object('status', (SELECT status FROM units WHERE id = v_unit));
        RETURN;
    END IF;
    IF v_seen = v_target THEN
        RETURN QUERY SELECT 'already_there', v_target, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    -- The shared order: calls by id, then the unit. A locked row is read as it now is.
    FOR v_call IN
        SELECT id, number, status, first_dispatched_at FROM calls
        WHERE id IN (v_seen, v_target) ORDER BY id FOR UPDATE
    LOOP
        IF v_call.id = v_seen THEN
            v_source := v_call.number;
        ELSE
            v_target_status := v_call.status;
            v_first := v_call.first_dispatched_at;
        END IF;
    END LOOP;
    SELECT status INTO v_status FROM units WHERE id = v_unit FOR UPDATE;
    -- Read again, by a statement that starts once the locks are held.
    SELECT id, call_id, paramedic_id INTO v_assignment, v_on, v_paramedic
    FROM assignments WHERE unit_id = v_unit AND cleared_at IS NULL AND cancelled_at IS NULL;
    IF v_on IS DISTINCT FROM v_seen THEN  -- moved between the first look and the locks
        RETURN QUERY SELECT 'moved', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF NOT (p_rules -> 'divert_from') ? v_status THEN
        RETURN QUERY SELECT 'not_divertible', NULL::integer, NULL::timestamptz,
            jsonb_build_object('status', v_status, 'source', v_source);
        RETURN;
    END IF;
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
    -- (Both audit rows are in each call's timeline, in words: no narrative line repeats them.)
    PERFORM dispatch_follow(v_seen, v_at, v_staff, v_username, p_desk, p_rules);
    IF p_request IS NOT NULL THEN
        INSERT INTO requests (id, fingerprint, call_id)
        VALUES (p_request, p_fingerprint, v_target);
    END IF;
    RETURN QUERY SELECT 'done', v_target, v_at, NULL::jsonb;
END
$$
"""

PROMOTE = """
CREATE FUNCTION dispatch_promote(
    p_unit integer, p_locked integer[], p_at timestamptz, p_staff integer, p_operator text,
    p_desk text, p_rules jsonb
) RETURNS text LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_entry bigint;
    v_next integer;
    v_queued_by integer;
    v_number text;
    v_status text;
    v_why text;
    v_assignment integer;
BEGIN
    SELECT id, call_id, queued_by_id INTO v_entry, v_next, v_queued_by
    FROM queued WHERE unit_id = p_unit AND ended_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF NOT v_next = ANY (p_locked) THEN
        RETURN 'moved';  -- lined up for another call meanwhile: the caller did not lock it
    END IF;
    SELECT number, status INTO v_number, v_status FROM calls WHERE id = v_next;
    IF v_status <> 'RECEIVED' THEN
        v_why := v_number || CASE WHEN (p_rules -> 'open') ? v_status THEN ' had another unit'
                                  ELSE ' is ' || (p_rules -> 'labels' ->> v_status) END;
        UPDATE queued SET ended_at = p_at, end_reason = v_why WHERE id = v_entry;
        INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, unit_id, details)
        VALUES (clock_timestamp(), p_staff, p_operator, p_desk, 'queue_ended', v_next, p_unit,
                jsonb_build_object('reason', v_why));
        RETURN 'ended';
    END IF;
    INSERT INTO assignments (call_id, unit_id, dispatcher_id, notified_at)
    VALUES (v_next, p_unit, v_queued_by, p_at)
    RETURNING id INTO v_assignment;
    UPDATE units SET status = 'EN_ROUTE', status_since = p_at WHERE id = p_unit;
    UPDATE calls SET
        status = 'DISPATCHED',
        first_dispatched_at = coalesce(first_dispatched_at, p_at),
        dispatched_by_id = CASE WHEN first_dispatched_at IS NULL THEN v_queued_by
                                ELSE dispatched_by_id END
    WHERE id = v_next;
    UPDATE queued SET ended_at = p_at, end_reason = 'dispatched', assignment_id = v_assignment
    WHERE id = v_entry;
    INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, unit_id, details)
    VALUES (clock_timestamp(), p_staff, p_operator, p_desk, 'dispatch', v_next, p_unit,
            jsonb_build_object('queued', true));
    RETURN 'dispatched';
END
$$
"""

UNIT_STATUS = """
CREATE FUNCTION dispatch_unit_status(
    p_operator text, p_unit text, p_status text, p_hospital text, p_override boolean,
    p_reason text, p_desk text, p_request text, p_fingerprint text, p_rules jsonb
) RETURNS TABLE (r_outcome text, r_unit integer, r_at timestamptz, r_detail jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_staff integer;
    v_username text;
    v_role text;
    v_crews integer;
    v_unit integer;
    v_seen integer;
    v_next_seen integer;
    v_next integer;
    v_current text;
    v_assignment integer;
    v_on integer;
    v_reported boolean;
    v_a_hospital integer;
    v_number text;
    v_c_hospital integer;
    v_step jsonb;
    v_column text;
    v_dest integer;
    v_dest_code text;
    v_dest_status text;
    v_at timestamptz;
    v_labels jsonb := p_rules -> 'labels';
BEGIN
    SELECT id, username, role, unit_id INTO v_staff, v_username, v_role, v_crews
    FROM staff WHERE lower(username) = lower(p_operator) AND active;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_operator', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    SELECT id INTO v_unit FROM units WHERE code = p_unit;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'no_unit', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF NOT ((p_rules -> 'may') ? v_role
            OR ((p_rules -> 'own_unit') ? v_role AND v_crews = v_unit)) THEN
        RETURN QUERY SELECT 'forbidden', NULL::integer, NULL::timestamptz,
            jsonb_build_object('operator', v_username, 'role', v_role, 'own', v_crews = v_unit);
        RETURN;
    END IF;
    SELECT call_id INTO v_seen FROM assignments
    WHERE unit_id = v_unit AND cleared_at IS NULL AND cancelled_at IS NULL;
    SELECT call_id INTO v_next_seen FROM queued WHERE unit_id = v_unit AND ended_at IS NULL;
    -- The shared order: calls by id (its call, and the one it is lined up for: if this clears
    -- the unit, it goes there), then the unit.
    PERFORM 1 FROM calls WHERE id IN (v_seen, v_next_seen) ORDER BY id FOR UPDATE;
    SELECT status INTO v_current FROM units WHERE id = v_unit FOR UPDATE;
    SELECT id, call_id, en_route_at IS NOT NULL, hospital_id
    INTO v_assignment, v_on, v_reported, v_a_hospital
    FROM assignments WHERE unit_id = v_unit AND cleared_at IS NULL AND cancelled_at IS NULL;
    SELECT call_id INTO v_next FROM queued WHERE unit_id = v_unit AND ended_at IS NULL;
    IF v_on IS DISTINCT FROM v_seen OR v_next IS DISTINCT FROM v_next_seen THEN
        RETURN QUERY SELECT 'moved', NULL::integer, NULL::timestamptz, NULL::jsonb;  -- moved meanwhile
        RETURN;
    END IF;
    v_reported := coalesce(v_reported, false);
    IF v_on IS NOT NULL THEN
        SELECT number, destination_hospital_id INTO v_number, v_c_hospital
        FROM calls WHERE id = v_on;
    END IF;
    -- A busy unit is on a call and any other on none (a direct SQL change can part them).
    IF ((p_rules -> 'busy') ? v_current) <> (v_on IS NOT NULL) THEN
        RETURN QUERY SELECT 'inconsistent', NULL::integer, NULL::timestamptz,
            jsonb_build_object('status', v_current, 'call', v_number);
        RETURN;
    END IF;
    v_step := p_rules -> 'steps' -> (v_current || '>' || p_status);
    IF v_step IS NULL OR (v_current = 'EN_ROUTE' AND p_status = 'EN_ROUTE' AND v_reported) THEN
        RETURN QUERY SELECT 'step_refused', NULL::integer, NULL::timestamptz,
            jsonb_build_object('status', v_current, 'reported', v_reported);
        RETURN;
    END IF;
    IF (v_step ->> 'destination')::boolean THEN
        IF p_hospital IS NOT NULL THEN
            v_dest := (SELECT id FROM hospitals WHERE code = p_hospital);
            v_dest_code := p_hospital;
        ELSE
            v_dest := coalesce(v_a_hospital, v_c_hospital);
        END IF;
        IF v_dest IS NULL AND v_dest_code IS NULL THEN
            RETURN QUERY SELECT 'needs_destination', NULL::integer, NULL::timestamptz, NULL::jsonb;
            RETURN;
        END IF;
        -- Read after the unit's lock, so current as of then (not locked: a crew's login may
        -- not lock a hospital, and a transport is not held up by one changing its status).
        SELECT code, status INTO v_dest_code, v_dest_status FROM hospitals WHERE id = v_dest;
        IF v_dest IS NULL OR (p_rules -> 'hospital_closed') ? v_dest_status
           OR ((p_rules -> 'hospital_override') ? v_dest_status AND NOT p_override) THEN
            RETURN QUERY SELECT 'destination_refused', NULL::integer, NULL::timestamptz,
                jsonb_build_object('code', coalesce(v_dest_code, p_hospital));
            RETURN;
        END IF;
    END IF;
    v_at := clock_timestamp();
    v_column := v_step ->> 'time_column';
    IF v_column IS NOT NULL THEN
        UPDATE assignments SET
            en_route_at = CASE WHEN v_column = 'en_route_at' THEN v_at ELSE en_route_at END,
            on_scene_at = CASE WHEN v_column = 'on_scene_at' THEN v_at ELSE on_scene_at END,
            transporting_at = CASE WHEN v_column = 'transporting_at' THEN v_at
                                   ELSE transporting_at END,
            at_destination_at = CASE WHEN v_column = 'at_destination_at' THEN v_at
                                     ELSE at_destination_at END,
            cleared_at = CASE WHEN v_column = 'cleared_at' THEN v_at ELSE cleared_at END,
            hospital_id = coalesce(v_dest, hospital_id)
        WHERE id = v_assignment;
    END IF;
    IF p_status <> v_current THEN
        UPDATE units SET status = p_status, status_since = v_at WHERE id = v_unit;
    END IF;
    INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, unit_id,
                           hospital_id, details)
    VALUES (clock_timestamp(), v_staff, v_username, p_desk, 'unit_status', v_on, v_unit, v_dest,
            jsonb_build_object(
                'old', v_current,
                'new', p_status,
                -- The crew's en-route report leaves the status EN_ROUTE and reads
                -- "dispatched → en route".
                'change', (v_labels ->> CASE WHEN v_current = 'EN_ROUTE' AND NOT v_reported
                                             THEN 'DISPATCHED' ELSE v_current END)
                          || ' → ' || (v_labels ->> p_status))
            || CASE WHEN p_reason <> '' THEN jsonb_build_object('reason', p_reason)
                    ELSE '{}'::jsonb END);
    IF v_on IS NOT NULL THEN
        IF v_dest IS NOT NULL AND v_c_hospital IS NULL THEN
            UPDATE calls SET destination_hospital_id = v_dest WHERE id = v_on;
        END IF;
        PERFORM dispatch_follow(v_on, v_at, v_staff, v_username, p_desk, p_rules);
    END IF;
    IF (v_step ->> 'ends')::boolean THEN  -- its next call, if one is lined up
        PERFORM dispatch_promote(v_unit, ARRAY[v_next_seen], v_at, v_staff, v_username, p_desk,
                                 p_rules);
    END IF;
    IF p_request IS NOT NULL THEN
        INSERT INTO requests (id, fingerprint, unit_id)
        VALUES (p_request, p_fingerprint, v_unit);
    END IF;
    -- The unit as it is now, for an answer that does not need another read.
    RETURN QUERY
        SELECT 'done', v_unit, v_at,
               jsonb_build_object(
                   'code', u.code, 'capability', u.capability, 'status', u.status,
                   'call', c.number, 'reported', a.en_route_at IS NOT NULL,
                   'next', (SELECT n.number FROM queued q JOIN calls n ON n.id = q.call_id
                            WHERE q.unit_id = v_unit AND q.ended_at IS NULL))
        FROM units u
        LEFT JOIN assignments a
            ON a.unit_id = u.id AND a.cleared_at IS NULL AND a.cancelled_at IS NULL
        LEFT JOIN calls c ON c.id = a.call_id
        WHERE u.id = v_unit;
END
$$
"""

FUNCTIONS = (END_LINED_UP, FOLLOW, DIVERT, PROMOTE, UNIT_STATUS)
# Run as the caller, whose rights decide what they may change; only staff logins run them.
RIGHTS = (
    "REVOKE EXECUTE ON FUNCTION dispatch_end_lined_up(integer, timestamptz, integer, text, text, text) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION dispatch_end_lined_up(integer, timestamptz, integer, text, text, text) TO dispatch_operator",
    "REVOKE EXECUTE ON FUNCTION dispatch_follow(integer, timestamptz, integer, text, text, jsonb) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION dispatch_follow(integer, timestamptz, integer, text, text, jsonb) TO dispatch_operator",
    "REVOKE EXECUTE ON FUNCTION dispatch_divert(text, text, text, text, text, text, text, jsonb) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION dispatch_divert(text, text, text, text, text, text, text, jsonb) TO dispatch_operator",
    "REVOKE EXECUTE ON FUNCTION dispatch_promote(integer, integer[], timestamptz, integer, text, text, jsonb) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION dispatch_promote(integer, integer[], timestamptz, integer, text, text, jsonb) TO dispatch_operator",
    "REVOKE EXECUTE ON FUNCTION dispatch_unit_status(text, text, text, text, boolean, text, text, text, text, jsonb) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION dispatch_unit_status(text, text, text, text, boolean, text, text, text, text, jsonb) TO dispatch_operator",
)
DROPS = (
    "DROP FUNCTION IF EXISTS dispatch_unit_status(text, text, text, text, boolean, text, text, text, text, jsonb)",
    "DROP FUNCTION IF EXISTS dispatch_promote(integer, integer[], timestamptz, integer, text, text, jsonb)",
    "DROP FUNCTION IF EXISTS dispatch_divert(text, text, text, text, text, text, text, jsonb)",
    "DROP FUNCTION IF EXISTS dispatch_follow(integer, timestamptz, integer, text, text, jsonb)",
    "DROP FUNCTION IF EXISTS dispatch_end_lined_up(integer, timestamptz, integer, text, text, text)",
)


def upgrade() -> None:
    for body in FUNCTIONS:
        op.execute(body)
    for statement in RIGHTS:
        op.execute(statement)


def downgrade() -> None:
    for statement in DROPS:
        op.execute(statement)
