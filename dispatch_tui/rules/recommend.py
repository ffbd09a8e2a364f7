"""Which unit to send, and where it takes the patient: both ranked here, once.

Units: the available ones ranked by estimated travel time, capability matched to priority.
Destinations: the call's chosen hospital first, then open hospitals nearest the scene, those on
diversion after them (marked), closed ones never.

Distances are great-circle from the unit's last known position (or its home station), turned into
minutes with a road factor and an average speed under lights. Good enough to rank a handful of
units across a service area; a routing engine can replace `estimate_seconds` later.

Every reason says where a unit was measured from (`Origin`): its last position, its station when
it never reported one, or a stale position, whose age it says (`position 23 min old`) and whose
ETA it gives as a guess (`~`): a unit that has not reported for a while may be anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from dispatch_tui.rules import norms
from dispatch_tui.rules.enums import CallStatus, HospitalStatus, UnitStatus
from dispatch_tui.rules.lifecycle import unit_label
from dispatch_tui.rules.views import CallView, HospitalView, Recommendation, UnitView

NO_UNIT_AVAILABLE = "no unit is available"
# Said with every unit ranked for a call whose position the gazetteer did not verify: the
# distances may be from the wrong place, or there are none (`CallView.location_verified`).
UNVERIFIED_LOCATION = "unverified location"
EARTH_KM = 6371.0
ROAD_FACTOR = 1.35  # streets are longer than the straight line
SPEED_KMH = 55.0  # urban average under lights and sirens
TURNOUT_SECONDS = 60  # NFPA 1710 EMS turnout
# For P1/P2 a BLS unit ranks above an ALS one only when it arrives this much sooner: first care
# minutes earlier beats the wrong capability (the dispatcher can then add the ALS unit).
BLS_PENALTY_SECONDS = 240


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_KM * math.asin(math.sqrt(h))


def estimate_seconds(distance_km: float) -> int:
    return TURNOUT_SECONDS + round(distance_km * ROAD_FACTOR / SPEED_KMH * 3600)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a unit's travel is measured from, and how far that can be trusted."""

    position: tuple[float, float] | None
    from_station: bool  # no live position: measured from the home station
    # Seconds since the live position was reported, when it is stale (None: fresh, or none).
    stale_age: float | None = None

    def words(self, station_code: str | None) -> str:
        """`from last position`, `from station S2`, or `from a stale position`."""
        if self.from_station:
            return f"from station {station_code}"
        return "from a stale position" if self.stale_age is not None else "from last position"

    def age_words(self) -> str:
        """`position 23 min old` for a stale position ("" otherwise)."""
        return "" if self.stale_age is None else norms.position_age_words(self.stale_age)


def origin(
    unit: UnitView,
    now: datetime | None = None,
    stale_seconds: int = norms.STALE_POSITION_SECONDS,
) -> Origin:
    """Where `unit` is measured from: its reported position (stale past `stale_seconds` by
    `now`; without a clock, never), else its home station."""
    if unit.lat is None or unit.lon is None:
        return Origin(unit.station_position, from_station=True)
    stale = norms.position_stale(unit.position_at, now, stale_seconds)
    age = norms.position_age(unit.position_at, now) if stale else None
    return Origin((unit.lat, unit.lon), from_station=False, stale_age=age)


@dataclass(frozen=True, slots=True)
class Candidate:
    unit: UnitView
    position: tuple[float, float] | None
    from_station: bool  # no live position: measured from the home station
    # Seconds since its live position was reported, when that is stale (None: fresh, or none).
    stale_age: float | None = None

    @property
    def origin(self) -> Origin:
        return Origin(self.position, self.from_station, self.stale_age)


def for_call(
    call: CallView,
    units: Iterable[UnitView],
    limit: int,
    now: datetime | None = None,
    stale_seconds: int = norms.STALE_POSITION_SECONDS,
) -> list[Recommendation]:
    """Rank the available ones of `units` for `call` (the CLI reads them; a desk has them).
    With `now`, a position older than `stale_seconds` is said to be stale."""
    candidates = []
    for u in units:
        if u.status != UnitStatus.AVAILABLE:
            continue
        where = origin(u, now, stale_seconds)
        candidates.append(Candidate(u, where.position, where.from_station, where.stale_age))
    position = (call.lat, call.lon) if call.lat is not None and call.lon is not None else None
    ranked = rank(call.priority, position, candidates, limit)
    if call.location_verified:
        return ranked
    return [replace(r, reason=f"{r.reason} · {UNVERIFIED_LOCATION}") for r in ranked]


def _minutes(seconds: int) -> str:
    return f"{max(1, round(seconds / 60))} min"


def _guess(where: Origin) -> str:
    """What an ETA from `where` is prefixed with: `~` when the unit may no longer be there."""
    return "~" if where.stale_age is not None else ""


def _unless_live(where: Origin, station_code: str | None) -> str:
    """What a rough time (`~12 min`) adds about where it was measured from when that was not a
    fresh position: ` from station S2`, ` from a stale position (position 23 min old)`."""
    if where.from_station:
        return f" {where.words(station_code)}"
    if where.stale_age is not None:
        return f" {where.words(station_code)} ({where.age_words()})"
    return ""


def rank(
    priority: int,
    call_position: tuple[float, float] | None,
    candidates: list[Candidate],
    limit: int,
) -> list[Recommendation]:
    """Rank available units for a call. P1/P2 prefer ALS unless a BLS unit is much closer;
    P3/P4 take the nearest unit, BLS before ALS at equal distance."""
    wants_als = priority <= 2
    scored: list[tuple[tuple[float, int, int, str], Recommendation]] = []
    for c in candidates:
        distance = haversine_km(c.position, call_position) if c.position and call_position else None
        eta = estimate_seconds(distance) if distance is not None else None
        mismatch = 1 if wants_als and c.unit.capability != "ALS" else 0
        parts = [c.unit.capability]
        where = c.origin
        if distance is not None and eta is not None:
            words = where.words(c.unit.station_code)
            parts.append(f"{distance:.1f} km, ETA {_guess(where)}{_minutes(eta)} {words}")
        elif call_position is None:
            parts.append("call has no coordinates: distance unknown")
        else:
            parts.append("unit position unknown")
        if where.stale_age is not None:
            parts.append(where.age_words())
        if mismatch:
            parts.append(f"ALS preferred for P{priority}")
        elif wants_als:
            parts.append(f"ALS for P{priority}")
        elif c.unit.capability == "BLS":
            parts.append(f"BLS suffices for P{priority}")
        # At equal ETA a low-acuity call takes the BLS unit and keeps the ALS one free.
        spare_als = 1 if not wants_als and c.unit.capability == "ALS" else 0
        score = float(eta + mismatch * BLS_PENALTY_SECONDS) if eta is not None else math.inf
        key = (score, mismatch, spare_als, c.unit.code)
        stale = where.stale_age is not None
        scored.append((key, Recommendation(0, c.unit, distance, eta, " · ".join(parts), stale)))
    scored.sort(key=lambda pair: pair[0])
    return [
        Recommendation(i + 1, r.unit, r.distance_km, r.eta_seconds, r.reason, r.stale_position)
        for i, (_, r) in enumerate(scored[:limit])
    ]


@dataclass(frozen=True, slots=True)
class Destination:
    hospital: HospitalView
    distance_km: float | None  # from the scene; None when the call has no coordinates
    chosen: bool  # the call's own destination (chosen at dispatch)

    @property
    def on_diversion(self) -> bool:
        return self.hospital.status == HospitalStatus.DIVERSION


def destinations(call: CallView | None, hospitals: Iterable[HospitalView]) -> list[Destination]:
    """Where a unit on `call` may transport, best first: the call's chosen destination, then
    open hospitals nearest the scene, then those on diversion; closed hospitals are left out."""
    chosen = call.destination_code if call else None
    scene = (call.lat, call.lon) if call and call.lat is not None and call.lon is not None else None
    found = [
        Destination(h, haversine_km(scene, (h.lat, h.lon)) if scene else None, h.code == chosen)
        for h in hospitals
        if h.status != HospitalStatus.CLOSED
    ]
    found.sort(
        key=lambda d: (
            not d.chosen,
            d.hospital.status != HospitalStatus.OPEN,
            d.distance_km or 0.0,
            d.hospital.code,
        )
    )
    return found


# -- next to clear ----------------------------------------------------------------------------------

# How long each step still ahead of a busy unit typically takes, in seconds: on the way, on
# scene, transporting, at the hospital (offload). Estimates to rank by, not promises: a unit on
# scene is assumed to transport (the longer way), and a step overrunning its typical time is
# taken to end now.
TYPICAL_STEP_SECONDS = {
    UnitStatus.EN_ROUTE: 8 * 60,
    UnitStatus.ON_SCENE: 20 * 60,
    UnitStatus.TRANSPORTING: 15 * 60,
    UnitStatus.AT_HOSPITAL: 20 * 60,
}
_STEPS = list(TYPICAL_STEP_SECONDS)


@dataclass(frozen=True, slots=True)
class Clearing:
    """A busy unit that will be free: in about `free_in` seconds, then `eta` to reach the call."""

    unit: UnitView
    free_in: int
    eta: int | None
    reason: str


def free_in_seconds(unit: UnitView, now: datetime) -> int:
    """About how long until a busy unit clears, from its state and time in it."""
    state = UnitStatus(unit.status)
    spent = max(0.0, (now - unit.status_since).total_seconds())
    left = max(0.0, TYPICAL_STEP_SECONDS[state] - spent)
    later = _STEPS[_STEPS.index(state) + 1 :]
    return round(left + sum(TYPICAL_STEP_SECONDS[s] for s in later))


def next_to_clear(
    call: CallView,
    units: Iterable[UnitView],
    now: datetime,
    limit: int = 3,
    stale_seconds: int = norms.STALE_POSITION_SECONDS,
) -> list[Clearing]:
    """When nothing suitable is free: the busy units expected to reach `call` first (clear, then
    travel from where they are), ALS first for P1/P2 unless a BLS unit is much sooner. Units
    already lined up for a call are left out."""
    scene = (call.lat, call.lon) if call.lat is not None and call.lon is not None else None
    wants_als = call.priority <= 2
    found: list[tuple[float, Clearing]] = []
    for u in units:
        if u.status not in TYPICAL_STEP_SECONDS or u.queued_call or u.call_number == call.number:
            continue
        free = free_in_seconds(u, now)
        where = origin(u, now, stale_seconds)
        at = where.position
        eta = free + estimate_seconds(haversine_km(at, scene)) if at and scene else None
        mismatch = wants_als and u.capability != "ALS"
        state = unit_label(u.status, u.en_route_reported)
        reason = f"{u.capability}, {state} on {u.call_number}: free in ~{_minutes(free)}"
        if eta is not None:
            reason += f", at the call in ~{_minutes(eta)}{_unless_live(where, u.station_code)}"
        score = float(eta if eta is not None else free) + (BLS_PENALTY_SECONDS if mismatch else 0)
        found.append((score, Clearing(u, free, eta, reason)))
    found.sort(key=lambda pair: (pair[0], pair[1].unit.code))
    return [c for _, c in found[:limit]]


# -- divert a unit from a less urgent call --------------------------------------------------------

# A unit en route to a P3/P4 call is offered for a P1/P2 call when it gets there at least this
# much sooner than the nearest free unit would (or when no unit is free).
DIVERT_GAIN_SECONDS = 180


@dataclass(frozen=True, slots=True)
class DivertCandidate:
    unit: UnitView
    from_call: str
    from_priority: int
    eta: int
    free_eta: int | None  # the nearest free unit's, for comparison
    reason: str


def divert_candidates(
    call: CallView,
    units: Iterable[UnitView],
    priority_of: dict[str, int],
    free_eta: int | None,
    limit: int = 2,
    now: datetime | None = None,
    stale_seconds: int = norms.STALE_POSITION_SECONDS,
) -> list[DivertCandidate]:
    """For a P1/P2 call: units en route to a P3/P4 call that would reach this one much sooner
    (DIVERT_GAIN_SECONDS) than the nearest free unit, nearest first. `priority_of`: the open
    calls' priorities by number; `free_eta`: the best free unit's ETA (None: none is free)."""
    scene = (call.lat, call.lon) if call.lat is not None and call.lon is not None else None
    if call.priority > 2 or scene is None:
        return []
    found = []
    for u in units:
        on = u.call_number
        if u.status != UnitStatus.EN_ROUTE or on is None or priority_of.get(on, 1) < 3:
            continue
        where = origin(u, now, stale_seconds)
        if where.position is None:
            continue
        eta = estimate_seconds(haversine_km(where.position, scene))
        if free_eta is not None and eta + DIVERT_GAIN_SECONDS > free_eta:
            continue
        versus = (
            f"the nearest free unit ~{_minutes(free_eta)}"
            if free_eta is not None
            else "no unit free"
        )
        reason = (
            f"divert from {on} (P{priority_of[on]}): here in ~{_minutes(eta)}"
            f"{_unless_live(where, u.station_code)}, against {versus}"
        )
        found.append(DivertCandidate(u, on, priority_of[on], eta, free_eta, reason))
    found.sort(key=lambda d: (d.eta, d.unit.code))
    return found[:limit]


@dataclass(frozen=True, slots=True)
class Choices:
    """What a dispatcher is offered for a call (see `choices`)."""

    recommended: list[Recommendation]
    diverts: list[DivertCandidate]
    clearing: list[Clearing]  # only when no unit is free


def choices(
    call: CallView,
    units: Iterable[UnitView],
    priority_of: dict[str, int],
    now: datetime,
    limit: int = 5,
    stale_seconds: int = norms.STALE_POSITION_SECONDS,
) -> Choices:
    """The free units ranked, the units worth diverting, and, when no unit is free and the call
    is pending, the others expected to clear first (a dispatcher may rather line one of them up
    than divert a unit from its call); a position older than `stale_seconds` is said to be
    stale."""
    units = list(units)
    recs = for_call(call, units, limit, now, stale_seconds)
    best = recs[0].eta_seconds if recs else None
    diverts = divert_candidates(
        call, units, priority_of, best, now=now, stale_seconds=stale_seconds
    )
    # Lined up for a pending call only; a unit offered to divert is not offered twice.
    diverting = {d.unit.code for d in diverts}
    clearing = (
        []
        if recs or call.status != CallStatus.RECEIVED
        else [
            c
            for c in next_to_clear(call, units, now, stale_seconds=stale_seconds)
            if c.unit.code not in diverting
        ]
    )
    return Choices(recs, diverts, clearing)
