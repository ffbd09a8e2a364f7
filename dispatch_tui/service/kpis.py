"""Performance against the norms: each interval's fractiles (never means), and the CSV export.

Intervals (DOMAIN.md): call processing = first unit dispatched − call received; turnout = en
route − dispatched; response = on scene − call received; offload = back in service − arrived at
destination. Fractiles are computed by PostgreSQL (`percentile_cont`) over indexed time ranges, so
the cost follows the window, not the history. Cancelled calls are left out of call processing and
response; a missing time is missing (never backfilled), so its interval is simply not counted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from dispatch_tui.rules.norms import NORMS, TIME_COLUMNS, Kpi, time_problems

# One row per interval, grouped for the report by a bound parameter (:by) so the SQL text is
# fixed; goals are bound too. Indexes on calls.received_at and assignments.notified_at bound it.
KPI_QUERY = text("""
WITH windows AS (
    SELECT * FROM unnest(CAST(:names AS text[]), CAST(:sinces AS timestamptz[]),
                         CAST(:untils AS timestamptz[])) AS w(name, since, until)
), calls_in AS (
    SELECT c.id, c.priority, c.received_at, c.first_dispatched_at, c.status,
           CASE :by WHEN 'priority' THEN 'P' || c.priority
                    WHEN 'unit' THEN '(unused)'
                    WHEN 'hospital' THEN coalesce(h.code, '(none)')
                    ELSE 'all' END AS grp
    FROM calls c LEFT JOIN hospitals h ON h.id = c.destination_hospital_id
    WHERE c.received_at >= (SELECT min(since) FROM windows) AND c.received_at < (SELECT max(until) FROM windows)
), assignments_in AS (
    SELECT a.notified_at, a.en_route_at, a.on_scene_at, a.at_destination_at, a.cleared_at,
           c.received_at, c.status AS call_status,
           CASE :by WHEN 'priority' THEN 'P' || c.priority
                    WHEN 'unit' THEN u.code
                    WHEN 'hospital' THEN coalesce(h.code, '(none)')
                    ELSE 'all' END AS grp
    FROM assignments a
    -- Each assignment's call by its primary key: a hash join would scan the whole call history.
    -- (OFFSET 0 keeps it a per-row index lookup instead of being flattened into a hash join).
    CROSS JOIN LATERAL (
        SELECT received_at, status, priority FROM calls WHERE calls.id = a.call_id OFFSET 0
    ) c
    JOIN units u ON u.id = a.unit_id
    LEFT JOIN hospitals h ON h.id = a.hospital_id
    WHERE a.notified_at >= (SELECT min(since) FROM windows) AND a.notified_at < (SELECT max(until) FROM windows)
), intervals AS (
    -- Per call; broken down by unit, each unit's own dispatch and arrival count instead.
    SELECT 'processing' AS kind, grp, received_at AS ts,
           extract(epoch FROM first_dispatched_at - received_at) AS seconds
    FROM calls_in WHERE :by <> 'unit' AND first_dispatched_at IS NOT NULL AND status <> 'CANCELLED'
    UNION ALL
    SELECT 'processing', grp, notified_at, extract(epoch FROM notified_at - received_at)
    FROM assignments_in WHERE :by = 'unit' AND call_status <> 'CANCELLED'
    UNION ALL
    SELECT 'response', ci.grp, ci.received_at,
           extract(epoch FROM arrived.first_on_scene - ci.received_at)
    FROM calls_in ci
    CROSS JOIN LATERAL (
        SELECT min(a.on_scene_at) AS first_on_scene FROM assignments a WHERE a.call_id = ci.id
    ) arrived
    WHERE :by <> 'unit' AND ci.status <> 'CANCELLED' AND arrived.first_on_scene IS NOT NULL
    UNION ALL
    SELECT 'response', grp, notified_at, extract(epoch FROM on_scene_at - received_at)
    FROM assignments_in WHERE :by = 'unit' AND on_scene_at IS NOT NULL AND call_status <> 'CANCELLED'
    UNION ALL
    SELECT 'turnout', grp, notified_at, extract(epoch FROM en_route_at - notified_at)
    FROM assignments_in WHERE en_route_at IS NOT NULL
    UNION ALL
    SELECT 'offload', grp, notified_at, extract(epoch FROM cleared_at - at_destination_at)
    FROM assignments_in WHERE cleared_at IS NOT NULL AND at_destination_at IS NOT NULL
), goals(kind, goal) AS (
    VALUES ('processing', CAST(:goal_processing AS float8)), ('turnout', CAST(:goal_turnout AS float8)),
           ('response', CAST(:goal_response AS float8)), ('offload', CAST(:goal_offload AS float8))
)
-- One pass over the widest window; each interval counts in every window its time falls in.
SELECT w.name AS window, i.grp, i.kind, count(*) AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY i.seconds) AS p50,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY i.seconds) AS p90,
       count(*) FILTER (WHERE i.seconds <= g.goal) AS met
FROM intervals i
JOIN windows w ON i.ts >= w.since AND i.ts < w.until
JOIN goals g USING (kind)
GROUP BY w.name, i.grp, i.kind
ORDER BY w.name, i.grp
""")
BREAKDOWNS = ("priority", "unit", "hospital")


def kpis(
    session: Session, since: datetime, until: datetime, *, by: str | None = None
) -> dict[str, list[Kpi]]:
    """Fractiles of each interval in [since, until), per group (`by`: priority, unit, hospital)."""
    return kpis_windows(session, {"window": (since, until)}, by=by)["window"]


def kpis_windows(
    session: Session, windows: dict[str, tuple[datetime, datetime]], *, by: str | None = None
) -> dict[str, dict[str, list[Kpi]]]:
    """Several windows (last hour, shift, 24 h) in one query: {window: {group: [Kpi per norm]}}."""
    names = list(windows)
    params: dict[str, Any] = {
        "names": names,
        "sinces": [windows[n][0] for n in names],
        "untils": [windows[n][1] for n in names],
        "by": by or "all",
    }
    params.update({f"goal_{n.key}": n.goal_seconds for n in NORMS})
    rows = session.execute(KPI_QUERY, params).all()
    result: dict[str, dict[str, list[Kpi]]] = {}
    for name in names:
        mine = [r for r in rows if r.window == name]
        found: dict[tuple[str, str], Any] = {(r.grp, r.kind): r for r in mine}
        groups = sorted({r.grp for r in mine}) or ["all"]
        result[name] = {
            group: [
                Kpi(norm, 0, None, None, 0)
                if (row := found.get((group, norm.key))) is None
                else Kpi(norm, row.n, float(row.p50), float(row.p90), row.met)
                for norm in NORMS
            ]
            for group in groups
        }
    return result


# -- the per-assignment export ---------------------------------------------------------------

EXPORT_QUERY = text("""
SELECT c.number AS call_number, c.priority, c.determinant, c.status AS call_status, c.nature,
       u.code AS unit, u.capability, h.code AS hospital,
       c.received_at, a.notified_at, a.en_route_at, a.on_scene_at, a.transporting_at,
       a.at_destination_at, a.cleared_at, a.cancelled_at
FROM assignments a
JOIN calls c ON c.id = a.call_id
JOIN units u ON u.id = a.unit_id
LEFT JOIN hospitals h ON h.id = a.hospital_id
WHERE a.notified_at >= :since AND a.notified_at < :until
ORDER BY a.notified_at, a.id
""")


def export_rows(session: Session, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """One row per assignment with NEMSIS-style time columns, intervals and a problems column."""
    out: list[dict[str, Any]] = []
    for row in session.execute(EXPORT_QUERY, {"since": since, "until": until}):
        record: dict[str, Any] = {
            "call_number": row.call_number,
            "priority": row.priority,
            "determinant": row.determinant or "",
            "call_status": row.call_status,
            "unit": row.unit,
            "capability": row.capability,
            "destination": row.hospital or "",
        }
        for name, _, attr in TIME_COLUMNS:
            value = getattr(row, attr)
            record[name] = value.isoformat() if value else ""
        record["unit_cancelled"] = row.cancelled_at.isoformat() if row.cancelled_at else ""

        def seconds(a: datetime | None, b: datetime | None) -> str:
            return f"{(b - a).total_seconds():.0f}" if a is not None and b is not None else ""

        record["turnout_s"] = seconds(row.notified_at, row.en_route_at)
        record["travel_s"] = seconds(row.en_route_at, row.on_scene_at)
        record["offload_s"] = seconds(row.at_destination_at, row.cleared_at)
        record["time_problems"] = "; ".join(time_problems(row))
        out.append(record)
    return out
