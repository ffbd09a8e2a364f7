"""Plain frozen records that cross from the service to the CLI, the desk and the board.

No ORM object leaves the service: a Session and its objects belong to one thread, and a screen
must never trigger a lazy load on the UI thread.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar


@dataclass(frozen=True, slots=True)
class Operator:
    id: int
    username: str
    full_name: str
    role: str
    unit_id: int | None


@dataclass(frozen=True, slots=True)
class AssignmentView:
    id: int
    call_number: str
    unit_code: str
    unit_status: str
    capability: str
    paramedic: str | None
    dispatcher: str | None
    hospital_code: str | None
    notified_at: datetime
    en_route_at: datetime | None
    on_scene_at: datetime | None
    transporting_at: datetime | None
    at_destination_at: datetime | None
    cleared_at: datetime | None
    cancelled_at: datetime | None
    # The crew's acknowledgement (NEMSIS eTimes.04), and the dispatch alert's delivery: its
    # state (`pending`, `sent`, `failed`; None when the assignment has no alert, as one made
    # before alerts existed), when it was sent or last tried, and why its last try failed.
    acknowledged_at: datetime | None = None
    alert_state: str | None = None
    alert_at: datetime | None = None
    alert_error: str | None = None
    alert_attempts: int = 0

    @property
    def active(self) -> bool:
        return self.cleared_at is None and self.cancelled_at is None

    @property
    def status_since(self) -> datetime:
        """When the unit entered its current step on this call (the latest recorded time)."""
        steps = (self.en_route_at, self.on_scene_at, self.transporting_at, self.at_destination_at)
        return max((t for t in steps if t is not None), default=self.notified_at)


@dataclass(frozen=True, slots=True)
class CallView:
    id: int
    number: str
    status: str
    priority: int
    determinant: str | None
    nature: str
    location_text: str
    lat: float | None
    lon: float | None
    caller_name: str
    caller_phone: str
    notes: str
    received_at: datetime
    first_dispatched_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    disposition: str | None
    destination_code: str | None
    dispatched_by: str | None
    assignments: tuple[AssignmentView, ...] = field(default=())
    reopened_at: datetime | None = None  # when it was last re-opened, if ever
    queued_units: tuple[str, ...] = ()  # busy units lined up to come here next
    # Whether its address has a hazard note in force (`PremiseView`; the record says which).
    hazard: bool = False
    # Whether its position is one to trust (an address the gazetteer has, a named place, given
    # coordinates); a location the gazetteer did not find is shown UNVERIFIED.
    location_verified: bool = True

    @property
    def active_units(self) -> tuple[str, ...]:
        return tuple(a.unit_code for a in self.assignments if a.active)


@dataclass(frozen=True, slots=True)
class Dispatched:
    """What a dispatch did, as its own transaction knows it.

    The desks see the whole call through their change notifications; the CLI reads it after the
    commit when it prints it. A dispatch does not read it back inside its transaction.
    """

    call_id: int
    call_number: str
    units: tuple[str, ...]
    at: datetime


@dataclass(frozen=True, slots=True)
class UnitView:
    id: int
    code: str
    capability: str
    status: str
    status_since: datetime
    station_code: str | None
    lat: float | None
    lon: float | None
    position_at: datetime | None
    call_number: str | None
    # Where the unit is measured from when it has no live position (its home station).
    station_position: tuple[float, float] | None = None
    # Whether the crew has reported en route on its call (its assignment's en_route_at): a unit
    # EN_ROUTE without the report is shown as dispatched (`lifecycle.unit_state`).
    en_route_reported: bool = False
    queued_call: str | None = None  # the call it is lined up for next, if any
    # Seconds since its position was reported, by the database's clock when it was read (None:
    # no position). A live screen counts on from `position_at` with its own clock instead.
    position_age: float | None = None


@dataclass(frozen=True, slots=True)
class HospitalView:
    id: int
    code: str
    name: str
    status: str
    status_since: datetime
    beds_available: int | None
    capabilities: tuple[str, ...]
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class PlaceView:
    id: int
    name: str
    address: str
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Recommendation:
    rank: int
    unit: UnitView
    distance_km: float | None
    eta_seconds: int | None
    reason: str
    # Measured from a position too old to trust (`norms.position_stale`): the ETA is a guess.
    stale_position: bool = False


@dataclass(frozen=True, slots=True)
class Box:
    """A stretch of the earth between two latitudes and two longitudes: what a map shows, and
    what it reads the streets of."""

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float

    def contains(self, other: Box) -> bool:
        return (
            self.min_lat <= other.min_lat
            and other.max_lat <= self.max_lat
            and self.min_lon <= other.min_lon
            and other.max_lon <= self.max_lon
        )

    def overlaps(self, other: Box) -> bool:
        return (
            self.min_lat <= other.max_lat
            and other.min_lat <= self.max_lat
            and self.min_lon <= other.max_lon
            and other.min_lon <= self.max_lon
        )

    def grown(self, fraction: float) -> Box:
        """This box with `fraction` of its height and width added on every side."""
        dlat = (self.max_lat - self.min_lat) * fraction
        dlon = (self.max_lon - self.min_lon) * fraction
        return Box(
            self.min_lat - dlat, self.max_lat + dlat, self.min_lon - dlon, self.max_lon + dlon
        )


@dataclass(frozen=True, slots=True)
class StreetView:
    """A street's line from the gazetteer, in GeoJSON order (`(lon, lat)` points), with its
    bounding box, so a map draws only the lines that cross its view."""

    name: str
    coords: tuple[tuple[float, float], ...]
    box: Box


@dataclass(frozen=True, slots=True)
class AuditView:
    id: int
    at: datetime
    operator: str
    desk: str
    action: str
    call_number: str | None
    unit_code: str | None
    hospital_code: str | None
    details: dict[str, Any]


Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class Listing(Generic[Row]):
    """A list read with a limit: its rows, and how many there were in all, so that a list cut on
    purpose can say so (`show calls --all`, `audit -n`)."""

    rows: tuple[Row, ...]
    total: int

    @property
    def truncated(self) -> bool:
        return len(self.rows) < self.total


@dataclass(frozen=True, slots=True)
class NarrativeView:
    """One narrative entry: a person's `note`, or an `event` the service wrote of a change."""

    id: int
    at: datetime
    operator: str
    desk: str
    kind: str
    text: str
    corrects_id: int | None


@dataclass(frozen=True, slots=True)
class AlertView:
    """A crew alert of a call (the outbox, migration 0008): for whom, why, and how its delivery
    went so far."""

    id: int
    unit_code: str
    kind: str  # dispatch or stand_down
    state: str  # pending, sent or failed
    attempts: int
    sent_at: datetime | None
    last_attempt_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a call's timeline: a narrative entry, or an audited change, in words."""

    at: datetime
    source: str  # note, event (narrative) or audit
    who: str
    text: str
    ref: int  # the narrative entry's or the audit row's id


@dataclass(frozen=True, slots=True)
class PremiseView:
    """A hazard note on an address, in force: said loudly wherever the address is shown."""

    id: int
    address: str
    note: str
    until: datetime | None
    added_at: datetime
    added_by: str | None

    def line(self) -> str:
        """`HAZARD: dog on premises (until 12 Dec)`."""
        until = f" (until {self.until.astimezone():%d %b %Y})" if self.until else ""
        return f"HAZARD: {self.note}{until}"


@dataclass(frozen=True, slots=True)
class AddressFacts:
    """What intake learns of an address as it is typed: its hazards, and how many calls it had
    in the last 12 months."""

    hazards: tuple[PremiseView, ...] = ()
    prior_count: int = 0

    def line(self) -> str:
        """`HAZARD: dog on premises · 3 calls here in 12 months` ("" when nothing is known)."""
        parts = [h.line() for h in self.hazards]
        if self.prior_count:
            calls = "call" if self.prior_count == 1 else "calls"
            parts.append(f"{self.prior_count} {calls} here in 12 months")
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class PriorCall:
    """A call at the same address before this one."""

    number: str
    received_at: datetime
    nature: str
    disposition: str | None
    status: str

    def line(self) -> str:
        """`14 Nov 2026 C-1002 Fall: treated and released` (a closed call's disposition; a
        cancelled call's `cancelled: why`; an open call's status)."""
        state = self.status.lower().replace("_", " ")
        if self.status == "CLOSED" and self.disposition:
            end = self.disposition
        elif self.disposition:
            end = f"{state}: {self.disposition}"
        else:
            end = state
        return f"{self.received_at.astimezone():%d %b %Y} {self.number} {self.nature}: {end}"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A call as its record shows it: every field, its units with their times (in the call),
    and one timeline in time order."""

    call: CallView
    timeline: tuple[TimelineEntry, ...]
    created_by: str | None = None
    place: str | None = None
    hazards: tuple[PremiseView, ...] = ()  # in force at the call's address
    # The calls at the same address in the 12 months before it: how many, the last five.
    prior_count: int = 0
    prior: tuple[PriorCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Found:
    """What `find` found: calls (open ones, and ended ones of the last days) and units, with how
    many calls matched in all (a list cut on purpose says so)."""

    calls: tuple[CallView, ...]
    units: tuple[UnitView, ...]
    total_calls: int

    @property
    def truncated(self) -> bool:
        return len(self.calls) < self.total_calls


@dataclass(frozen=True, slots=True)
class AnswerTicket:
    """The moment the intake form was opened, by the database's clock."""

    id: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a desk shows, read in one transaction. `full` means: rows missing here are gone.

    A partial snapshot (after a change notification) carries only the rows named by the change;
    `calls` may then include closed or cancelled calls, which the desk removes from its panes.
    """

    full: bool
    db_now: datetime
    calls: tuple[CallView, ...]
    units: tuple[UnitView, ...]
    hospitals: tuple[HospitalView, ...]
    places: tuple[PlaceView, ...] = ()
    # Read on a standby: how old its data is, in seconds (a full snapshot says; None: primary).
    standby_age: float | None = None


@dataclass(frozen=True, slots=True)
class CrewView:
    """What a unit's crew terminal shows, read in one transaction: the unit, the record of the
    call it is on (None when it is on none), the call it is lined up for next, and the hospitals
    it may transport to."""

    db_now: datetime
    unit: UnitView
    record: CallRecord | None
    next_call: CallView | None
    hospitals: tuple[HospitalView, ...]

    @property
    def assignment(self) -> AssignmentView | None:
        """The unit's open assignment on its call."""
        if self.record is None:
            return None
        return next(
            (a for a in self.record.call.assignments if a.unit_code == self.unit.code and a.active),
            None,
        )


def to_jsonable(value: Any) -> Any:
    """Turn DTOs (and lists of them) into JSON-ready data: datetimes as ISO 8601 strings."""
    if hasattr(value, "__dataclass_fields__"):
        data = asdict(value)
        if isinstance(value, CallView):
            data["active_units"] = list(value.active_units)
        return to_jsonable(data)
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
