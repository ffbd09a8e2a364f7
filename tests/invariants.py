"""The invariants of the whole database, each checked in SQL; shared by the tests that write a lot.

The race tests (`test_races.py`), the soak (`test_soak.py`) and the drill simulator's tests
(`test_simulate.py`) each end by asserting `violations(engine) == ""`. Every query returns one
human-readable line per violation, naming the rows and the values that break it, so a failure
says exactly what is wrong; an empty result means the invariant holds.

These hold for any state the service can leave behind, whatever ran before: calls, units and
hospitals changed only through `DispatchService` (units the tests add with a bare INSERT start
AVAILABLE, with no assignment and no audit rows, which is consistent). A check that holds only
in one test's scenario belongs in that test's module, not here.

This is a plain helper module, not a test module; the tests import it as
`from tests.invariants import violations` (`tests/` is a package).
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine, text

# An assignment still in force: neither cleared (the unit finished) nor cancelled.
ACTIVE = "a.cleared_at IS NULL AND a.cancelled_at IS NULL"

INVARIANTS: dict[str, str] = {
    # -- a unit's next call --
    # Clearing a unit dispatches it to its next call or ends the entry, in the same transaction:
    # no free unit keeps one, none is lined up for the call it is on, and a dispatched entry
    # names the assignment it became (the same unit and call).
    "a free unit still has a next call lined up": """
        SELECT u.code || ' is ' || u.status || ' with ' || c.number || ' lined up'
        FROM queued q JOIN units u ON u.id = q.unit_id JOIN calls c ON c.id = q.call_id
        WHERE q.ended_at IS NULL AND u.status IN ('AVAILABLE', 'OUT_OF_SERVICE')
    """,
    "a unit is lined up for the call it is on": f"""
        SELECT u.code || ' is on ' || c.number || ' and lined up for it'
        FROM queued q JOIN units u ON u.id = q.unit_id JOIN calls c ON c.id = q.call_id
        JOIN assignments a ON a.unit_id = q.unit_id AND a.call_id = q.call_id AND {ACTIVE}
        WHERE q.ended_at IS NULL
    """,
    "a unit is lined up for an ended call": """
        SELECT u.code || ' is lined up for ' || c.number || ', which is ' || c.status
        FROM queued q JOIN units u ON u.id = q.unit_id JOIN calls c ON c.id = q.call_id
        WHERE q.ended_at IS NULL AND c.status IN ('CLOSED', 'CANCELLED')
    """,
    "a next call marked dispatched without its assignment": """
        SELECT 'entry #' || q.id || ' of unit ' || q.unit_id || ' for call ' || q.call_id
        FROM queued q LEFT JOIN assignments a ON a.id = q.assignment_id
        WHERE q.end_reason = 'dispatched'
          AND (a.id IS NULL OR a.unit_id <> q.unit_id OR a.call_id <> q.call_id)
    """,
    # -- units and their assignments --
    "a unit has more than one active assignment": f"""
        SELECT u.code || ' on ' || string_agg(c.number, ', ' ORDER BY c.number)
        FROM assignments a JOIN units u ON u.id = a.unit_id JOIN calls c ON c.id = a.call_id
        WHERE {ACTIVE}
        GROUP BY u.code HAVING count(*) > 1
    """,
    # AVAILABLE / OUT_OF_SERVICE exactly when the unit has no active assignment: neither a free
    # unit still assigned (the call it is on is named) nor a busy unit with no assignment.
    "a unit's status disagrees with its assignments": f"""
        SELECT u.code || ' is ' || u.status || ' with ' || count(a.id) || ' active assignment(s)'
               || coalesce(' (on ' || string_agg(c.number, ', ' ORDER BY c.number) || ')', '')
        FROM units u LEFT JOIN assignments a ON a.unit_id = u.id AND {ACTIVE}
        LEFT JOIN calls c ON c.id = a.call_id
        GROUP BY u.id, u.code, u.status
        HAVING (u.status IN ('AVAILABLE', 'OUT_OF_SERVICE')) = (count(a.id) > 0)
    """,
    # A busy unit's status is the last step its active assignment recorded, and a unit
    # transporting or at hospital has a destination.
    "a unit's status disagrees with its assignment's steps": f"""
        SELECT u.code || ' is ' || u.status || ' on ' || c.number || ' whose last recorded step'
               || ' says ' || s.expected
               || CASE WHEN u.status IN ('TRANSPORTING', 'AT_HOSPITAL') AND a.hospital_id IS NULL
                       THEN ' (and it has no destination)' ELSE '' END
        FROM units u JOIN assignments a ON a.unit_id = u.id AND {ACTIVE}
        JOIN calls c ON c.id = a.call_id
        CROSS JOIN LATERAL (SELECT CASE
            WHEN a.at_destination_at IS NOT NULL THEN 'AT_HOSPITAL'
            WHEN a.transporting_at IS NOT NULL THEN 'TRANSPORTING'
            WHEN a.on_scene_at IS NOT NULL THEN 'ON_SCENE'
            ELSE 'EN_ROUTE' END AS expected) s
        WHERE u.status <> s.expected
           OR (u.status IN ('TRANSPORTING', 'AT_HOSPITAL') AND a.hospital_id IS NULL)
    """,
    # -- calls and their units --
    # An ended call has no active unit; an open one follows its most advanced active unit; with
    # none, it is CLOSED if a unit was cleared from it since it was last re-opened (the last
    # one to clear closes it) and
    # RECEIVED (pending again) if every unit was cancelled. A CANCELLED call stays cancelled.
    "a call's status disagrees with its units": f"""
        SELECT c.number || ' is ' || c.status || '; active units: '
               || coalesce(string_agg(u.code || ' ' || u.status, ', ' ORDER BY u.code), 'none')
               || CASE WHEN cleared.any THEN '; a unit was cleared' ELSE '' END
        FROM calls c
        LEFT JOIN assignments a ON a.call_id = c.id AND {ACTIVE}
        LEFT JOIN units u ON u.id = a.unit_id
        CROSS JOIN LATERAL (SELECT EXISTS (
            SELECT 1 FROM assignments x WHERE x.call_id = c.id AND x.cleared_at IS NOT NULL
              AND x.cleared_at > coalesce(c.reopened_at, '-infinity')
        ) AS any) cleared
        GROUP BY c.id, c.number, c.status, cleared.any
        HAVING c.status IS DISTINCT FROM CASE
            WHEN count(a.id) = 0 AND c.status = 'CANCELLED' THEN 'CANCELLED'
            WHEN count(a.id) = 0 AND cleared.any THEN 'CLOSED'
            WHEN count(a.id) = 0 THEN 'RECEIVED'
            ELSE (ARRAY['DISPATCHED', 'ON_SCENE', 'TRANSPORTING', 'AT_HOSPITAL'])[max(
                array_position(ARRAY['EN_ROUTE', 'ON_SCENE', 'TRANSPORTING', 'AT_HOSPITAL'],
                               u.status::text))]
        END
    """,
    # -- times --
    # NEMSIS: every recorded step at or after the one before it (and none skipped: no transport
    # without arriving, no arrival at hospital without a transport), and the end (cleared or
    # cancelled, never both) after all of them: a time that goes backwards is a record nobody
    # can trust. Under races this is what catches a transaction that queued for a lock and then
    # stamped a time from before the change it waited for.
    "an assignment's times are out of order": """
        SELECT u.code || ' on ' || c.number || ': notified ' || a.notified_at
               || ', en route ' || coalesce(a.en_route_at::text, '-')
               || ', on scene ' || coalesce(a.on_scene_at::text, '-')
               || ', transporting ' || coalesce(a.transporting_at::text, '-')
               || ', at hospital ' || coalesce(a.at_destination_at::text, '-')
               || ', cleared ' || coalesce(a.cleared_at::text, '-')
               || ', cancelled ' || coalesce(a.cancelled_at::text, '-')
        FROM assignments a JOIN units u ON u.id = a.unit_id JOIN calls c ON c.id = a.call_id
        WHERE NOT (
            coalesce(a.en_route_at >= a.notified_at, true)
            AND coalesce(a.on_scene_at >= coalesce(a.en_route_at, a.notified_at), true)
            AND coalesce(a.transporting_at >= a.on_scene_at, true)
            AND coalesce(a.at_destination_at >= a.transporting_at, true)
            AND coalesce(coalesce(a.cleared_at, a.cancelled_at) >= greatest(a.notified_at,
                a.en_route_at, a.on_scene_at, a.transporting_at, a.at_destination_at), true)
            AND (a.cleared_at IS NULL OR a.cancelled_at IS NULL)
            AND (a.transporting_at IS NULL OR a.on_scene_at IS NOT NULL)
            AND (a.at_destination_at IS NULL OR a.transporting_at IS NOT NULL)
        )
    """,
    # The call's own times bracket its assignments': received no later than first dispatched,
    # first dispatched no later than any unit was notified, ended no earlier than any unit's
    # last step.
    "a call's times disagree with its assignments": """
        SELECT c.number || ': received ' || c.received_at
               || ', first dispatched ' || coalesce(c.first_dispatched_at::text, '-')
               || ', ended ' || coalesce(coalesce(c.closed_at, c.cancelled_at)::text, '-')
               || '; units notified ' || min(a.notified_at) || ' .. last step '
               || max(greatest(a.notified_at, a.en_route_at, a.on_scene_at, a.transporting_at,
                               a.at_destination_at, a.cleared_at, a.cancelled_at))
        FROM calls c JOIN assignments a ON a.call_id = c.id
        GROUP BY c.id, c.number, c.received_at, c.first_dispatched_at, c.closed_at,
                 c.cancelled_at
        HAVING NOT (
            coalesce(c.first_dispatched_at <= min(a.notified_at), false)
            AND c.first_dispatched_at >= c.received_at
            AND coalesce(coalesce(c.closed_at, c.cancelled_at) >= max(greatest(a.notified_at,
                a.en_route_at, a.on_scene_at, a.transporting_at, a.at_destination_at,
                a.cleared_at, a.cancelled_at)), true)
        )
    """,
    # -- every change has its audit row --
    "a call without exactly one call_created row": """
        SELECT c.number || ': ' || count(l.id) || ' call_created row(s)'
        FROM calls c LEFT JOIN audit_log l ON l.call_id = c.id AND l.action = 'call_created'
        GROUP BY c.id, c.number HAVING count(l.id) <> 1
    """,
    # Per unit and call, as many dispatch rows as assignments (so none without its row).
    "assignments and dispatch audit rows do not match": """
        WITH a AS (SELECT call_id, unit_id, count(*) AS n FROM assignments GROUP BY 1, 2),
             l AS (SELECT call_id, unit_id, count(*) AS n FROM audit_log
                   WHERE action = 'dispatch' GROUP BY 1, 2)
        SELECT u.code || ' on ' || c.number || ': ' || coalesce(a.n, 0) || ' assignment(s), '
               || coalesce(l.n, 0) || ' dispatch row(s)'
        FROM a FULL JOIN l USING (call_id, unit_id)
        JOIN calls c ON c.id = call_id JOIN units u ON u.id = unit_id
        WHERE coalesce(a.n, 0) <> coalesce(l.n, 0)
    """,
    # Per unit and call: each recorded step, and each end of an assignment, has its audit row.
    "an assignment's steps and their audit rows do not match": """
        WITH a AS (
            SELECT call_id, unit_id, count(en_route_at) AS en, count(on_scene_at) AS os,
                   count(transporting_at) AS tx, count(at_destination_at) AS ah,
                   count(cleared_at) + count(cancelled_at) AS ended
            FROM assignments GROUP BY 1, 2),
        l AS (
            SELECT call_id, unit_id,
                   count(*) FILTER (WHERE action = 'unit_status'
                                    AND details->>'new' = 'EN_ROUTE') AS en,
                   count(*) FILTER (WHERE action = 'unit_status'
                                    AND details->>'new' = 'ON_SCENE') AS os,
                   count(*) FILTER (WHERE action = 'unit_status'
                                    AND details->>'new' = 'TRANSPORTING') AS tx,
                   count(*) FILTER (WHERE action = 'unit_status'
                                    AND details->>'new' = 'AT_HOSPITAL') AS ah,
                   count(*) FILTER (WHERE action IN ('unit_cancelled', 'unit_released', 'unit_diverted')
                                    OR (action = 'unit_status'
                                        AND details->>'new' = 'AVAILABLE')) AS ended
            FROM audit_log WHERE call_id IS NOT NULL AND unit_id IS NOT NULL GROUP BY 1, 2)
        SELECT u.code || ' on ' || c.number || ': recorded (en route, on scene, transporting, '
               || 'at hospital, ended) ' || row(a.en, a.os, a.tx, a.ah, a.ended)::text
               || ', audited ' || row(l.en, l.os, l.tx, l.ah, l.ended)::text
        FROM a FULL JOIN l USING (call_id, unit_id)
        JOIN calls c ON c.id = call_id JOIN units u ON u.id = unit_id
        WHERE row(coalesce(a.en, 0), coalesce(a.os, 0), coalesce(a.tx, 0), coalesce(a.ah, 0),
                  coalesce(a.ended, 0))
              IS DISTINCT FROM
              row(coalesce(l.en, 0), coalesce(l.os, 0), coalesce(l.tx, 0), coalesce(l.ah, 0),
                  coalesce(l.ended, 0))
    """,
    "an ended call without its audit row": """
        SELECT c.number || ' is ' || c.status || ' with ' || count(l.id) || ' matching row(s)'
        FROM calls c LEFT JOIN audit_log l ON l.call_id = c.id
            AND l.at > coalesce(c.reopened_at, '-infinity') AND (
            (c.status = 'CANCELLED' AND l.action = 'call_cancelled')
            OR (c.status = 'CLOSED' AND (l.action = 'call_closed'
                OR (l.action = 'call_status' AND l.details->>'new' = 'CLOSED'))))
        WHERE c.status IN ('CLOSED', 'CANCELLED')
        GROUP BY c.id, c.number, c.status HAVING count(l.id) <> 1
    """,
    # Every writer holds the unit's row lock when it writes the audit row, so the last row by id
    # is the last change: it must say what the unit is now (no lost or unaudited status change).
    "a unit's status disagrees with its last audit row": """
        WITH last AS (
            SELECT DISTINCT ON (unit_id) unit_id, id, action, details->>'new' AS new
            FROM audit_log
            WHERE unit_id IS NOT NULL
              AND action IN ('dispatch', 'unit_status', 'unit_cancelled', 'unit_released')
            ORDER BY unit_id, id DESC)
        SELECT u.code || ' is ' || u.status || '; its last audit row #' || coalesce(last.id, 0)
               || ' is ' || coalesce(last.action || ' ' || coalesce(last.new, ''), 'none')
        FROM units u LEFT JOIN last ON last.unit_id = u.id
        WHERE u.status IS DISTINCT FROM CASE
            WHEN last.action IS NULL THEN 'AVAILABLE'
            WHEN last.action = 'dispatch' THEN 'EN_ROUTE'
            WHEN last.action = 'unit_status' THEN last.new
            ELSE 'AVAILABLE' END
    """,
    "a hospital's status disagrees with its last audit row": """
        WITH last AS (
            SELECT DISTINCT ON (hospital_id) hospital_id, id, details->>'new' AS new
            FROM audit_log WHERE action = 'hospital_status' ORDER BY hospital_id, id DESC)
        SELECT h.code || ' is ' || h.status || '; its last audit row says '
               || coalesce(last.new, 'nothing')
        FROM hospitals h LEFT JOIN last ON last.hospital_id = h.id
        WHERE h.status IS DISTINCT FROM coalesce(last.new, 'OPEN')
    """,
    "a unit's position disagrees with its last position audit row": """
        WITH last AS (
            SELECT DISTINCT ON (unit_id) unit_id, (details->>'lat')::float8 AS lat,
                   (details->>'lon')::float8 AS lon
            FROM audit_log WHERE action = 'unit_position' ORDER BY unit_id, id DESC)
        SELECT u.code || ' is at ' || u.lat || ', ' || u.lon || '; last fix ' || last.lat
               || ', ' || last.lon
        FROM units u JOIN last ON last.unit_id = u.id
        WHERE (u.lat, u.lon) IS DISTINCT FROM (last.lat, last.lon)
    """,
    # Actions on one call are serialised by its row lock and audited after it, so its audit
    # rows (numbered as they are written) must not go back in time: the log is what an incident
    # review reads, in that order.
    "a call's audit log goes back in time": """
        SELECT c.number || ': #' || l.id || ' ' || l.action || ' by ' || l.operator || ' at '
               || l.at || ' follows #' || l.prev_id || ' at ' || l.prev_at
        FROM (SELECT *, lag(id) OVER w AS prev_id, lag(at) OVER w AS prev_at FROM audit_log
              WHERE call_id IS NOT NULL WINDOW w AS (PARTITION BY call_id ORDER BY id)) l
        JOIN calls c ON c.id = l.call_id
        WHERE l.at < l.prev_at
    """,
}


def violations(engine: Engine, invariants: Mapping[str, str] = INVARIANTS) -> str:
    """Every broken invariant with the rows that break it, one per line ("" when consistent).

    A test with checks of its own (true only in its scenario) passes `{**INVARIANTS, **mine}`.
    """
    found = []
    with engine.connect() as conn:
        for name, sql in invariants.items():
            found += [f"{name}: {line}" for line in conn.execute(text(sql)).scalars()]
    return "\n".join(found)
