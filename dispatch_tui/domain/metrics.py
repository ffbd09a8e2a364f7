"""Performance against the norms: intervals as fractiles (never means), and overdue timers.

Intervals (DOMAIN.md): call processing = first unit dispatched − call received; turnout = en
route − dispatched; response = on scene − call received; offload = back in service − arrived at
destination. Fractiles are computed by PostgreSQL (`percentile_cont`) over indexed time ranges, so
the cost follows the window, not the history. Cancelled calls are left out of call processing and
response; a missing time is missing (never backfilled), so its interval is simply not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from dispatch_tui.domain.dto import CallView


def clock(seconds: float) -> str:
    """Seconds as a running clock: 4:05, or 1:02:09 past an hour."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass(frozen=True, slots=True)
class Norm:
    key: str
    label: str
    goal_seconds: int
    source: str


NORMS = (
    Norm("processing", "Call processing", 60, "NFPA 1225: 90% ≤ 60 s"),
    Norm("turnout", "Turnout", 60, "NFPA 1710: 60 s"),
    Norm("response", "Response", 539, "urban contract: 8:59 at the 90th percentile"),
    Norm("offload", "Offload", 1800, "90% ≤ 30 min"),
)


@dataclass(frozen=True, slots=True)
class Kpi:
    norm: Norm
    count: int
    p50: float | None
    p90: float | None
    met: int  # how many intervals were within the goal

    @property
    def share(self) -> float | None:
        return self.met / self.count if self.count else None

    @property
    def ok(self) -> bool | None:
        """Whether the 90th percentile meets the goal (None: nothing to measure)."""
        return None if self.p90 is None else self.p90 <= self.norm.goal_seconds


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


# -- overdue timers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimerRule:
    key: str
    label: str
    seconds: int


DEFAULT_TIMERS = (
    TimerRule("p1_pending", "P1 pending", 60),
    TimerRule("not_en_route", "not en route", 60),
    TimerRule("on_scene", "on scene", 1800),
    TimerRule("at_hospital", "at hospital", 1800),
)


@dataclass(frozen=True, slots=True)
class Timer:
    """One running clock the supervisor watches. `key` identifies it across refreshes."""

    key: str
    rule: TimerRule
    call_number: str
    unit_code: str | None
    since: datetime
    elapsed: float

    @property
    def overdue(self) -> bool:
        return self.elapsed > self.rule.seconds


def timers(
    calls: Iterable[CallView], now: datetime, rules: Sequence[TimerRule] = DEFAULT_TIMERS
) -> list[Timer]:
    """Every watched clock of the open calls, most overdue first. Pure: tests pass their own `now`."""
    by_key = {r.key: r for r in rules}
    found: list[Timer] = []

    def add(rule_key: str, call: CallView, unit: str | None, since: datetime) -> None:
        rule = by_key.get(rule_key)
        if rule is not None:
            key = f"{rule_key}:{call.number}:{unit or ''}"
            found.append(Timer(key, rule, call.number, unit, since, (now - since).total_seconds()))

    for call in calls:
        if call.status == "RECEIVED" and call.priority == 1:
            add("p1_pending", call, None, call.received_at)
        for a in call.assignments:
            if not a.active:
                continue
            if a.unit_status == "EN_ROUTE" and a.en_route_at is None:
                add("not_en_route", call, a.unit_code, a.notified_at)
            elif a.unit_status == "ON_SCENE" and a.on_scene_at is not None:
                add("on_scene", call, a.unit_code, a.on_scene_at)
            elif a.unit_status == "AT_HOSPITAL" and a.at_destination_at is not None:
                add("at_hospital", call, a.unit_code, a.at_destination_at)
    return sorted(found, key=lambda t: t.elapsed / t.rule.seconds, reverse=True)


def shift_start(now: datetime, starts: Sequence[int] = (7, 19)) -> datetime:
    """The start of the current shift (shifts change at the given local hours)."""
    local = now.astimezone()
    candidates = [
        local.replace(hour=h, minute=0, second=0, microsecond=0) - timedelta(days=d)
        for d in (0, 1)
        for h in starts
    ]
    return max(c for c in candidates if c <= local)


# -- the per-assignment export ---------------------------------------------------------------

# (column, NEMSIS element, assignment/call attribute) in the order times should occur.
TIME_COLUMNS = (
    ("psap_call_received", "eTimes.01", "received_at"),
    ("unit_notified", "eTimes.03", "notified_at"),
    ("unit_en_route", "eTimes.05", "en_route_at"),
    ("unit_on_scene", "eTimes.06", "on_scene_at"),
    ("unit_left_scene", "eTimes.09", "transporting_at"),
    ("arrived_at_destination", "eTimes.11", "at_destination_at"),
    ("unit_back_in_service", "eTimes.13", "cleared_at"),
)

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


def time_problems(row: Any) -> list[str]:
    """Missing or out-of-order times of one assignment, named; nothing is ever filled in."""
    problems: list[str] = []
    stamped = [(name, getattr(row, attr)) for name, _, attr in TIME_COLUMNS]
    last_name, last_time = None, None
    for name, value in stamped:
        if value is None:
            continue
        if last_time is not None and value < last_time:
            problems.append(f"{name} before {last_name}")
        last_name, last_time = name, value
    finished = row.cleared_at is not None
    if row.cancelled_at is None:
        if row.on_scene_at is not None and row.en_route_at is None:
            problems.append("missing unit_en_route")
        if finished and row.transporting_at is not None and row.at_destination_at is None:
            problems.append("missing arrived_at_destination")
        if finished and row.on_scene_at is None:
            problems.append("missing unit_on_scene")
    return problems


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
