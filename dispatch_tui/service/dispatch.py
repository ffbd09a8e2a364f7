"""The everyday dispatch in one statement: one round trip, atomic on its own.

Most dispatches are the plain case: a permitted operator sends available units to an open call.
`DISPATCH` does all of it in one SQL statement (so one round trip and an implicit transaction):
the permission, the call's lock, the units' locks in id order, the checks, the assignments, the
units' and the call's new status, and the audit rows. The locks and checks follow the same order
and rules as the step-by-step transaction in `service.py`, which stays the authority: when any
condition here does not hold, this statement writes nothing and returns no row, and the service
runs the step-by-step transaction, which gives the precise refusal.

It always returns one row: `call_id` and `at` when it dispatched (NULL otherwise), and how many
calls and units it locked. A call locked with units short is the common refusal (another desk
took a unit a moment ago), which the service then explains with one short read instead of the
whole transaction.

Why the checks are safe though the statement's snapshot may be older than its locks (READ
COMMITTED): every condition that another desk could change is a condition on a locked row, and
PostgreSQL re-checks a locked row's conditions on its newest version after waiting for it.
- The call is locked first; without `add` it must still be RECEIVED, which (by the lifecycle) means
  it has no active unit. With `add` any open status will do.
- Units are locked in id order, and only once the call is locked (the call's CTE gates the units'
  scan), the same order every action uses. A unit another desk is taking is waited for, then
  skipped when its newest row is no longer AVAILABLE, so the unit count comes up short.
- The destination hospital is share-locked after the units (a status change locks only the
  hospital, so the order cannot deadlock): a diversion or closure committed while this statement
  waited for a lock is seen, and the step-by-step transaction then refuses it.
- A paramedic put on another call a moment ago is caught by the unique index on active
  assignments; the service then leaves the answer to the step-by-step transaction.
- The clock is read once all locks are held, as in `steps.clock`.
- The call row is written only when something on it changes (status, first dispatch,
  destination), as the step-by-step transaction does.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import Boolean, String

from dispatch_tui.rules import permissions
from dispatch_tui.rules.enums import (
    OPEN_CALL_STATUSES,
    CallStatus,
    HospitalStatus,
    Role,
    UnitStatus,
)
from dispatch_tui.service import steps
from dispatch_tui.service.transactions import Retry, constraint_of

DISPATCH = text(
    """
WITH operator AS (
    SELECT id, username FROM staff
    WHERE lower(username) = :operator AND active AND role = ANY(:roles)
), call_row AS (
    SELECT calls.id, calls.status FROM calls
    WHERE number = :number
      AND (status = :received OR (:add AND status = ANY(:open_statuses)))
      AND EXISTS (SELECT 1 FROM operator)
    FOR UPDATE
), unit_rows AS (
    SELECT units.id FROM units
    WHERE code = ANY(:units) AND status = :available AND EXISTS (SELECT 1 FROM call_row)
    ORDER BY units.id
    FOR UPDATE
), medic AS (
    SELECT staff.id, staff.username FROM staff
    WHERE lower(staff.username) = :paramedic AND staff.active AND staff.role = :paramedic_role
      AND NOT EXISTS (
          SELECT 1 FROM assignments a WHERE a.paramedic_id = staff.id
          AND a.cleared_at IS NULL AND a.cancelled_at IS NULL)
), destination AS (
    SELECT id, code FROM hospitals
    WHERE code = :hospital AND (status = :open OR (status = :diversion AND :override))
    FOR SHARE
), go AS (
    SELECT c.id AS call_id, c.status <> :received AS added, o.id AS operator_id,
           o.username AS operator, m.id AS medic_id, m.username AS medic,
           d.id AS hospital_id, d.code AS hospital, clock_timestamp() AS at
    FROM call_row c
    CROSS JOIN operator o
    LEFT JOIN medic m ON true
    LEFT JOIN destination d ON true
    WHERE (SELECT count(*) FROM unit_rows) = cardinality(CAST(:units AS text[]))
      AND (CAST(:paramedic AS text) IS NULL OR m.id IS NOT NULL)
      AND (CAST(:hospital AS text) IS NULL OR d.id IS NOT NULL)
), assigned AS (
    INSERT INTO assignments (call_id, unit_id, paramedic_id, dispatcher_id, hospital_id,
                             notified_at)
    SELECT go.call_id, u.id, go.medic_id, go.operator_id, go.hospital_id, go.at
    FROM go CROSS JOIN unit_rows u
    RETURNING unit_id
), moved AS (
    UPDATE units SET status = :en_route, status_since = go.at
    FROM go WHERE units.id IN (SELECT unit_id FROM assigned)
), linked AS (
    UPDATE calls SET
        status = CASE WHEN calls.status = :received THEN :dispatched ELSE calls.status END,
        first_dispatched_at = coalesce(calls.first_dispatched_at, go.at),
        dispatched_by_id = CASE WHEN calls.first_dispatched_at IS NULL
                                THEN go.operator_id ELSE calls.dispatched_by_id END,
        destination_hospital_id = coalesce(go.hospital_id, calls.destination_hospital_id)
    FROM go WHERE calls.id = go.call_id
      AND (calls.status = :received OR calls.first_dispatched_at IS NULL
           OR go.hospital_id IS NOT NULL)
), audited AS (
    INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, unit_id, details)
    SELECT go.at, go.operator_id, go.operator, :desk, 'dispatch', go.call_id, a.unit_id,
           jsonb_build_object('paramedic', go.medic, 'hospital', go.hospital,
                              'added', go.added)
    FROM go CROSS JOIN assigned a
)
SELECT go.call_id, go.at,
       (SELECT count(*) FROM call_row) AS calls_locked,
       (SELECT count(*) FROM unit_rows) AS units_locked
FROM (SELECT 1) AS one LEFT JOIN go ON true
"""
).bindparams(
    bindparam("roles", type_=ARRAY(String)),
    bindparam("open_statuses", type_=ARRAY(String)),
    bindparam("units", type_=ARRAY(String)),
    bindparam("add", type_=Boolean),
    bindparam("override", type_=Boolean),
)

CONSTANTS = {
    "received": CallStatus.RECEIVED.value,
    "dispatched": CallStatus.DISPATCHED.value,
    "open_statuses": [s.value for s in OPEN_CALL_STATUSES],
    "available": UnitStatus.AVAILABLE.value,
    "en_route": UnitStatus.EN_ROUTE.value,
    "open": HospitalStatus.OPEN.value,
    "diversion": HospitalStatus.DIVERSION.value,
}


# The partial unique indexes that allow one active assignment per unit and per paramedic.
ACTIVE_ASSIGNMENT_INDEXES = ("uq_assignments_active_unit", "uq_assignments_active_paramedic")


def run(
    autocommit: Callable[[], AbstractContextManager[Connection]],
    desk: str,
    username: str,
    number: str,
    codes: list[str],
    *,
    paramedic: str | None,
    hospital: str | None,
    override_diversion: bool,
    add: bool,
) -> tuple[int, datetime] | None:
    """Run DISPATCH (inputs already validated): the call's id and the dispatch time when it was
    done. When a unit was missing or taken it raises the refusal; otherwise None: nothing was
    written, and the step-by-step transaction decides."""
    params = {
        **CONSTANTS,
        "operator": username.lower(),
        "roles": [r.value for r in permissions.PERMISSIONS["dispatch"]],
        "number": number,
        "units": codes,
        "add": add,
        "paramedic": paramedic.lower() if paramedic else None,
        "paramedic_role": Role.PARAMEDIC.value,
        "hospital": hospital,
        "override": override_diversion,
        "desk": desk,
    }
    try:
        with autocommit() as conn:
            try:
                row = conn.execute(DISPATCH, params).one()
            except IntegrityError as err:
                if constraint_of(err) in ACTIVE_ASSIGNMENT_INDEXES:
                    return None  # taken a moment ago: the transaction says by whom
                raise
            if row.call_id is not None:
                return int(row.call_id), row.at
            if row.calls_locked and row.units_locked < len(codes):
                # Permitted, the call open, a unit missing or taken: the refusal the
                # step-by-step transaction would give (its first failing check is the
                # same), from one short read.
                units = conn.execute(steps.UNITS_WITH_CALLS, {"codes": codes}).all()
                steps.refuse_unavailable(units, codes)
    except Retry:
        pass  # a deadlock: the step-by-step transaction retries and explains
    return None  # something else, or it changed meanwhile: the transaction decides
