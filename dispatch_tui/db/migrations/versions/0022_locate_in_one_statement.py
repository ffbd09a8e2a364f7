"""a unit's position report in one statement

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-01

A position report (`unit locate`, the simulator, a crew's tablet, in time an AVL feed) is the
write a centre makes most often. It was five round trips from the service (the unit, the staff
row, the position, the audit row, the unit read back): 3.2 ms at one desk. As a SQL function (the
pattern of migration 0010) it is one statement in autocommit on the driver.

- **`dispatch_locate(operator, unit, lat, lon, desk, request, fingerprint, rules)`**: refuses an
  unknown unit, then an operator not on the staff list, then one who may not locate it (the
  rules as data: a dispatcher, or the paramedic crewing it); writes the position's columns
  alone (a stale whole-row save once undid a dispatch), stamped by the server's clock; its audit
  row (`unit_position`); its request id; and answers with the unit as it now is.

It runs as the calling login, so rights and row security apply as before (a paramedic's login
changes only the unit it crews).
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

ARGS = "text, text, double precision, double precision, text, text, text, jsonb"

LOCATE = """
CREATE FUNCTION dispatch_locate(
    p_operator text, p_unit text, p_lat double precision, p_lon double precision, p_desk text,
    p_request text, p_fingerprint text, p_rules jsonb
) RETURNS TABLE (r_outcome text, r_unit integer, r_at timestamptz, r_detail jsonb)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_unit integer;
    v_staff integer;
    v_username text;
    v_role text;
    v_crews integer;
    v_at timestamptz;
BEGIN
    SELECT u.id, s.id, s.username, s.role, s.unit_id
    INTO v_unit, v_staff, v_username, v_role, v_crews
    FROM (SELECT 1) AS one
    LEFT JOIN units u ON u.code = p_unit
    LEFT JOIN staff s ON lower(s.username) = lower(p_operator) AND s.active;
    IF v_unit IS NULL THEN
        RETURN QUERY SELECT 'no_unit', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF v_staff IS NULL THEN
        RETURN QUERY SELECT 'no_operator', NULL::integer, NULL::timestamptz, NULL::jsonb;
        RETURN;
    END IF;
    IF NOT ((p_rules -> 'may_locate') ? v_role
            OR ((p_rules -> 'own_locate') ? v_role AND v_crews = v_unit)) THEN
        RETURN QUERY SELECT 'forbidden', NULL::integer, NULL::timestamptz,
            jsonb_build_object('operator', v_username, 'role', v_role);
        RETURN;
    END IF;
    v_at := clock_timestamp();
    UPDATE units SET lat = p_lat, lon = p_lon, position_at = v_at WHERE id = v_unit;
    INSERT INTO audit_log (at, operator_id, operator, desk, action, unit_id, details)
    VALUES (clock_timestamp(), v_staff, v_username, p_desk, 'unit_position', v_unit,
            jsonb_build_object('lat', p_lat, 'lon', p_lon));
    IF p_request IS NOT NULL THEN
        INSERT INTO requests (id, fingerprint, unit_id)
        VALUES (p_request, p_fingerprint, v_unit);
    END IF;
    RETURN QUERY
        SELECT 'done', v_unit, v_at,
               jsonb_build_object(
                   'code', u.code, 'capability', u.capability, 'status', u.status,
                   'since', u.status_since, 'call', c.number,
                   'reported', a.en_route_at IS NOT NULL,
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


def upgrade() -> None:
    op.execute(LOCATE)
    op.execute(f"REVOKE EXECUTE ON FUNCTION dispatch_locate({ARGS}) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION dispatch_locate({ARGS}) TO dispatch_operator")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION IF EXISTS dispatch_locate({ARGS})")
