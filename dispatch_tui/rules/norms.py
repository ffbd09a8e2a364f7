"""The norms a centre is measured against, and the clocks a supervisor watches. Pure rules.

Intervals (DOMAIN.md): call processing = first unit dispatched − call received; turnout = en
route − dispatched; response = on scene − call received; offload = back in service − arrived at
destination. Goals are 90th percentiles (fractiles, never means). The fractiles themselves are
computed by PostgreSQL (`service/kpis.py`); what they are measured against lives here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dispatch_tui.rules.lifecycle import DISPATCHED, label, unit_state
from dispatch_tui.rules.views import AssignmentView, CallView

# NFPA 1225: answer -> first unit dispatched, 90% within 60 s (the desk's call-processing clock).
PROCESSING_GOAL_SECONDS = 60


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


# -- overdue timers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimerRule:
    key: str
    label: str
    seconds: int


# A dispatch the crew has not acknowledged (nor reported en route) this long is watched.
ACK_SECONDS = 30

DEFAULT_TIMERS = (
    TimerRule("p1_pending", "P1 pending", 60),
    # A dispatch whose crew has neither acknowledged it nor reported en route.
    TimerRule("not_acknowledged", "not acknowledged", ACK_SECONDS),
    # A unit dispatched whose crew has not reported en route: named as the desk names it.
    TimerRule("not_en_route", label(DISPATCHED), 60),
    TimerRule("on_scene", "on scene", 1800),
    TimerRule("at_hospital", "at hospital", 1800),
    # The crew's alert could not be delivered: overdue at once, until someone reaches the crew.
    TimerRule("alert_failed", "ALERT FAILED", 0),
)


def timer_rules(ack_seconds: int = ACK_SECONDS) -> tuple[TimerRule, ...]:
    """The watched clocks, with the centre's time for an acknowledgement."""
    return tuple(
        TimerRule(r.key, r.label, ack_seconds) if r.key == "not_acknowledged" else r
        for r in DEFAULT_TIMERS
    )


def unacknowledged(a: AssignmentView) -> bool:
    """An active dispatch the crew has not acknowledged, nor answered by reporting en route."""
    return (
        a.active
        and a.acknowledged_at is None
        and unit_state(a.unit_status, a.en_route_at is not None) == DISPATCHED
    )


def alert_words(a: AssignmentView, now: datetime | None, ack_seconds: int = ACK_SECONDS) -> str:
    """What a unit's line on a call adds about its crew alert, in capitals when something is
    wrong: `ALERT FAILED`, or `NO ACK` once the acknowledgement is overdue; else nothing."""
    if not a.active:
        return ""
    if a.alert_state == "failed" and a.acknowledged_at is None:
        return "ALERT FAILED"
    late = now is not None and (now - a.notified_at).total_seconds() > ack_seconds
    return "NO ACK" if late and unacknowledged(a) else ""


# -- positions ------------------------------------------------------------------------------

# A unit's reported position older than this is stale: drawn and listed as such, and the
# recommendation says how old it is (DISPATCH_STALE_POSITION_MINUTES).
STALE_POSITION_SECONDS = 600


def position_age(position_at: datetime | None, now: datetime | None) -> float | None:
    """Seconds since a position was reported (None: no position, or no clock to compare)."""
    if position_at is None or now is None:
        return None
    return max(0.0, (now - position_at).total_seconds())


def position_stale(
    position_at: datetime | None, now: datetime | None, stale_seconds: int = STALE_POSITION_SECONDS
) -> bool:
    """Whether a reported position is too old to trust."""
    return age_stale(position_age(position_at, now), stale_seconds)


def age_stale(age: float | None, stale_seconds: int = STALE_POSITION_SECONDS) -> bool:
    """Whether a position `age` seconds old (None: no position) is too old to trust: for a
    reader that has the age already (the database's, in `UnitView.position_age`)."""
    return age is not None and age > stale_seconds


def position_age_words(seconds: float) -> str:
    """A position's age as a dispatcher says it: `position 23 min old`, `position 2 h 05 min old`."""
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"position {minutes} min old"
    return f"position {minutes // 60} h {minutes % 60:02d} min old"


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
            if a.alert_state == "failed" and a.acknowledged_at is None:
                add("alert_failed", call, a.unit_code, a.alert_at or a.notified_at)
            if unacknowledged(a):
                add("not_acknowledged", call, a.unit_code, a.notified_at)
            if unit_state(a.unit_status, a.en_route_at is not None) == DISPATCHED:
                add("not_en_route", call, a.unit_code, a.notified_at)
            elif a.unit_status == "ON_SCENE" and a.on_scene_at is not None:
                add("on_scene", call, a.unit_code, a.on_scene_at)
            elif a.unit_status == "AT_HOSPITAL" and a.at_destination_at is not None:
                add("at_hospital", call, a.unit_code, a.at_destination_at)
    # (A clock overdue at once, such as a failed alert, counts each second as a whole period.)
    return sorted(found, key=lambda t: t.elapsed / max(t.rule.seconds, 1), reverse=True)


def shift_start(now: datetime, starts: Sequence[int] = (7, 19)) -> datetime:
    """The start of the current shift (shifts change at the given local hours)."""
    local = now.astimezone()
    candidates = [
        local.replace(hour=h, minute=0, second=0, microsecond=0) - timedelta(days=d)
        for d in (0, 1)
        for h in starts
    ]
    return max(c for c in candidates if c <= local)


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
