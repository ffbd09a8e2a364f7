"""Reads: turn rows into the frozen views the CLI, desk and board show.

Each function takes an open Session and does a bounded number of queries (no per-row lazy loads),
so a desk refresh costs the same whatever the size of the history.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import fields, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    Select,
    and_,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased
from sqlalchemy.types import Integer

from dispatch_tui.db import listener
from dispatch_tui.db.models import (
    Alert,
    Assignment,
    AuditEntry,
    Call,
    Hospital,
    NarrativeEntry,
    Place,
    PremiseNote,
    Queued,
    Staff,
    Station,
    StreetSegment,
    Unit,
)
from dispatch_tui.rules import duplicates, timeline, validation
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.views import (
    AddressFacts,
    AlertView,
    AssignmentView,
    AuditView,
    Box,
    CallRecord,
    CallView,
    HospitalView,
    NarrativeView,
    Operator,
    PlaceView,
    PremiseView,
    PriorCall,
    StreetView,
    UnitView,
)

_Paramedic = aliased(Staff)
_Dispatcher = aliased(Staff)
_Alert = aliased(Alert)  # an assignment's dispatch alert (one at most: uq_alerts_assignment_kind)


def operator(row: Staff) -> Operator:
    return Operator(row.id, row.username, row.full_name, row.role, row.unit_id)


# Statements are built once, here, with their ids as bind parameters: a desk's refresh then costs
# SQLAlchemy no statement construction or cache-key work, only the execution.
#
# They select columns, not ORM entities: a row goes straight into its frozen view. Building an
# ORM object per row (identity map, instrumented attributes) was most of the cost of a snapshot
# with thousands of open calls.
_ASSIGNMENTS = (
    select(
        Assignment.id,
        Call.number,
        Unit.code,
        Unit.status,
        Unit.capability,
        _Paramedic.username,
        _Dispatcher.username,
        Hospital.code,
        Assignment.notified_at,
        Assignment.en_route_at,
        Assignment.on_scene_at,
        Assignment.transporting_at,
        Assignment.at_destination_at,
        Assignment.cleared_at,
        Assignment.cancelled_at,
        Assignment.acknowledged_at,
        _Alert.state,
        func.coalesce(_Alert.sent_at, _Alert.last_attempt_at, _Alert.created_at),
        _Alert.last_error,
        _Alert.attempts,
        Assignment.call_id,
    )
    .join(Call, Call.id == Assignment.call_id)
    .join(Unit, Unit.id == Assignment.unit_id)
    .outerjoin(_Paramedic, _Paramedic.id == Assignment.paramedic_id)
    .outerjoin(_Dispatcher, _Dispatcher.id == Assignment.dispatcher_id)
    .outerjoin(Hospital, Hospital.id == Assignment.hospital_id)
    .outerjoin(_Alert, and_(_Alert.assignment_id == Assignment.id, _Alert.kind == "dispatch"))
    .order_by(Assignment.notified_at, Assignment.id)
)


# Where the assignment's end times sit among its fields (cleared, then cancelled).
_CLEARED = [f.name for f in fields(AssignmentView)].index("cleared_at")


def _assignment_view(row: Any) -> AssignmentView:
    # _ASSIGNMENTS selects AssignmentView's fields in its own order, then the call's id.
    fields = list(row[:-1])
    cleared_at, cancelled_at = fields[_CLEARED], fields[_CLEARED + 1]
    if cleared_at is not None or cancelled_at is not None:
        # A finished assignment shows how it ended, not what the unit does now.
        fields[3] = "CANCELLED" if cancelled_at is not None else "CLEARED"
    return AssignmentView(*fields)


_Destination = aliased(Hospital)
# A hazard note in force: not retired, and not past its end date.
_IN_FORCE = and_(
    PremiseNote.retired_at.is_(None),
    or_(PremiseNote.until.is_(None), PremiseNote.until > func.now()),
)
# The addresses (as compared) with a hazard note in force: few rows, joined to the calls by
# hash, so a call's line says HAZARD at the cost of one join in the same read, not a query per
# call (ix_premise_notes_in_force).
_HAZARDOUS = select(PremiseNote.address_key).where(_IN_FORCE).distinct().subquery("hazardous")
_CALLS = (
    select(
        Call.id,
        Call.number,
        Call.status,
        Call.priority,
        Call.determinant,
        Call.nature,
        Call.location_text,
        Call.lat,
        Call.lon,
        Call.caller_name,
        Call.caller_phone,
        Call.notes,
        Call.received_at,
        Call.first_dispatched_at,
        Call.closed_at,
        Call.cancelled_at,
        Call.disposition,
        _Destination.code,
        _Dispatcher.username,
        Call.reopened_at,
        _HAZARDOUS.c.address_key.is_not(None),
    )
    .outerjoin(_Destination, _Destination.id == Call.destination_hospital_id)
    .outerjoin(_Dispatcher, _Dispatcher.id == Call.dispatched_by_id)
    .outerjoin(_HAZARDOUS, _HAZARDOUS.c.address_key == Call.address_key)
    .order_by(Call.priority, Call.received_at, Call.id)
)
# Whether the call's position is verified, last: CallView's last field (`_call_view`).
_CALLS = _CALLS.add_columns(Call.location_verified)
# Open: neither closed nor cancelled. Said by the end times, not the status (the `end_times`
# check ties them), so the reads use ix_calls_open, whose condition this is (migration 0019).
_OPEN = and_(Call.closed_at.is_(None), Call.cancelled_at.is_(None))
_Select = Select[*tuple[Any, ...]]
# A list read with a limit keeps the newest calls (ix_calls_received_at), shown in the same order.
_NEWEST_IDS = (
    select(Call.id).order_by(Call.received_at.desc(), Call.id.desc()).limit(bindparam("limit"))
)


def _calls_and_assignments(ids: _Select | None) -> tuple[_Select, _Select]:
    """The calls whose ids `ids` selects (all calls if None), and the assignments of those calls.

    The assignments are found by `call_id = ANY(ARRAY(<the calls' ids>))`: through
    ix_assignments_call_id whatever the size of the history (a join on the calls' condition had
    PostgreSQL hash the whole assignments table), and with no list of ids sent from here.
    """
    if ids is None:
        return _CALLS, _ASSIGNMENTS
    of_calls = Assignment.call_id == any_(func.array(ids.scalar_subquery()))
    return _CALLS.where(Call.id.in_(ids.scalar_subquery())), _ASSIGNMENTS.where(of_calls)


# By (open only, with a limit). The open calls are read through ix_calls_open directly.
_READS = {
    (True, False): (_CALLS.where(_OPEN), _calls_and_assignments(select(Call.id).where(_OPEN))[1]),
    (False, False): _calls_and_assignments(None),
    (True, True): _calls_and_assignments(_NEWEST_IDS.where(_OPEN)),
    (False, True): _calls_and_assignments(_NEWEST_IDS),
}
# The calls a desk's notifications named: their ids go as one array parameter (`= ANY(:ids)`).
_IDS = bindparam("ids", type_=ARRAY(Integer))
_CALLS_BY_ID = _CALLS.where(Call.id == any_(_IDS))
_ASSIGNMENTS_BY_CALL_ID = _ASSIGNMENTS.where(Assignment.call_id == any_(_IDS))
_COUNT_CALLS = select(func.count()).select_from(Call)
_LINED_UP = (
    select(Queued.call_id, Unit.code)
    .join(Unit, Unit.id == Queued.unit_id)
    .where(Queued.ended_at.is_(None))
    .order_by(Unit.code)
)
_COUNT_OPEN_CALLS = _COUNT_CALLS.where(_OPEN)


def calls(
    session: Session,
    *,
    ids: Sequence[int] | None = None,
    open_only: bool = True,
    limit: int | None = None,
) -> list[CallView]:
    """Calls with all their assignments, priority first then age: the calls `ids`, or every open
    call (by default), or every call; with a `limit`, only the newest `limit` of them.

    No limit unless asked for: a desk's snapshot must hold every open call, however many a storm
    brings (`count_calls` tells a caller that asked for a limit whether it cut the list).
    """
    params: dict[str, Any] = {}
    if ids is not None:
        query, of_calls, params["ids"] = _CALLS_BY_ID, _ASSIGNMENTS_BY_CALL_ID, list(ids)
    else:
        query, of_calls = _READS[open_only, limit is not None]
        if limit is not None:
            params["limit"] = limit
    # On the session's connection: Core rows, without the ORM's per-row loading (a third of
    # the read at ten thousand calls).
    connection = session.connection()
    rows = connection.execute(query, params).all()
    if not rows:
        return []
    # Both statements select the same calls (in a snapshot's one transaction). Most open calls
    # of a storm have no unit yet: only the calls that have assignments get a list.
    by_call: dict[int, list[AssignmentView]] = {}
    assignments: Sequence[Any] = connection.execute(of_calls, params).all()
    for row in assignments:
        by_call.setdefault(row[-1], []).append(_assignment_view(row))
    none: tuple[AssignmentView, ...] = ()
    views = [_call_view(row, tuple(by_call.get(row[0], none))) for row in rows]
    # The units lined up for these calls: few rows in all (one per busy unit at most), read
    # whole rather than joined into a read of ten thousand calls.
    lined_up: dict[int, list[str]] = {}
    for call_id, code in connection.execute(_LINED_UP):
        lined_up.setdefault(call_id, []).append(code)
    if lined_up:
        views = [
            replace(v, queued_units=tuple(lined_up[v.id])) if v.id in lined_up else v for v in views
        ]
    return views


def _call_view(row: Any, assignments: tuple[AssignmentView, ...]) -> CallView:
    verified, row = row[-1], row[:-1]  # the last column (`_CALLS.add_columns` above)
    # _CALLS selects CallView's fields in its own order up to reopened_at, all but the
    # assignments (which come before it), then whether its address has a hazard in force; the
    # units lined up (`queued_units`, between them) are added by `calls`.
    fields: list[Any] = [*row[:-2], assignments, row[-2], (), row[-1]]
    view = CallView(*fields)
    # Verified by default: only the few unverified ones pay for a second object.
    return view if verified else replace(view, location_verified=False)


def count_calls(session: Session, *, open_only: bool = True) -> int:
    """How many calls (open ones by default) there are: what a list read with a limit cut."""
    return int(session.execute(_COUNT_OPEN_CALLS if open_only else _COUNT_CALLS).scalar_one())


def call(session: Session, call_id: int) -> CallView:
    (view,) = calls(session, ids=[call_id])
    return view


_ACTIVE_CALL_OF_UNIT = (
    select(Assignment.unit_id, Call.number, Assignment.en_route_at)
    .join(Call, Call.id == Assignment.call_id)
    .where(Assignment.cleared_at.is_(None), Assignment.cancelled_at.is_(None))
    .subquery()
)
_Next = aliased(Call)  # the call a unit is lined up for
# Seconds since a unit's position was reported (NULL: none). Never below 0: a write reads back,
# at its transaction's start (now()), a position it stamped later (clock_timestamp()).
_POSITION_AGE = case(
    (Unit.position_at.is_(None), None),
    else_=func.greatest(
        cast(func.extract("epoch", func.now() - Unit.position_at), Double),
        # A constant, not a bound parameter: `UNIT_BY_ID` is also run compiled, with its unit's
        # id as its only parameter.
        literal_column("0.0"),
    ),
)
_UNITS = (
    select(
        Unit.id,
        Unit.code,
        Unit.capability,
        Unit.status,
        Unit.status_since,
        Station.code,
        Unit.lat,
        Unit.lon,
        Unit.position_at,
        _ACTIVE_CALL_OF_UNIT.c.number,
        Station.lat,
        Station.lon,
        _ACTIVE_CALL_OF_UNIT.c.en_route_at.is_not(None),
        _Next.number,
        _POSITION_AGE,
    )
    .outerjoin(Station, Station.id == Unit.station_id)
    .outerjoin(_ACTIVE_CALL_OF_UNIT, _ACTIVE_CALL_OF_UNIT.c.unit_id == Unit.id)
    .outerjoin(Queued, and_(Queued.unit_id == Unit.id, Queued.ended_at.is_(None)))
    .outerjoin(_Next, _Next.id == Queued.call_id)
    .order_by(Unit.code)
)
_UNITS_BY_ID = _UNITS.where(Unit.id.in_(bindparam("ids", expanding=True)))


# One unit by id, for a write that answers with it (compiled for the driver by the service).
UNIT_BY_ID = _UNITS.where(Unit.id == bindparam("unit_id"))


# What `_UNITS` selects, in order: UnitView's fields to the call it is on, the station's position
# in two columns, then the rest.
_UNIT_NAMES = (
    *[f.name for f in fields(UnitView)][:10],
    "station_lat",
    "station_lon",
    "en_route_reported",
    "queued_call",
    "position_age",
)


def unit_view(row: Sequence[Any]) -> UnitView:
    """A row of `_UNITS` (or `UNIT_BY_ID`) as its view."""
    values = dict(zip(_UNIT_NAMES, row, strict=True))
    lat, lon = values.pop("station_lat"), values.pop("station_lon")
    home = (lat, lon) if lat is not None and lon is not None else None
    return UnitView(**values, station_position=home)


def units(session: Session, *, ids: Sequence[int] | None = None) -> list[UnitView]:
    connection = session.connection()  # Core rows, as for the calls
    rows = (
        connection.execute(_UNITS)
        if ids is None
        else connection.execute(_UNITS_BY_ID, {"ids": list(ids)})
    )
    return [unit_view(row) for row in rows]


def unit(session: Session, unit_id: int) -> UnitView:
    (view,) = units(session, ids=[unit_id])
    return view


_HOSPITALS = select(Hospital).order_by(Hospital.code)
_HOSPITALS_BY_ID = _HOSPITALS.where(Hospital.id.in_(bindparam("ids", expanding=True)))


def hospitals(session: Session, *, ids: Sequence[int] | None = None) -> list[HospitalView]:
    rows = (
        session.scalars(_HOSPITALS)
        if ids is None
        else session.scalars(_HOSPITALS_BY_ID, {"ids": list(ids)})
    )
    return [
        HospitalView(
            id=h.id,
            code=h.code,
            name=h.name,
            status=h.status,
            status_since=h.status_since,
            beds_available=h.beds_available,
            capabilities=tuple(h.capabilities),
            lat=h.lat,
            lon=h.lon,
        )
        for h in rows
    ]


def places(session: Session) -> list[PlaceView]:
    return [
        PlaceView(p.id, p.name, p.address, p.lat, p.lon)
        for p in session.scalars(select(Place).order_by(Place.name))
    ]


def audit(
    session: Session, *, call_id: int | None = None, limit: int | None = 200
) -> list[AuditView]:
    """The newest `limit` audit entries (optionally of one call; None: all), oldest first."""
    query = (
        select(AuditEntry, Call.number, Unit.code, Hospital.code)
        .outerjoin(Call, Call.id == AuditEntry.call_id)
        .outerjoin(Unit, Unit.id == AuditEntry.unit_id)
        .outerjoin(Hospital, Hospital.id == AuditEntry.hospital_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    )
    if call_id is not None:
        query = query.where(AuditEntry.call_id == call_id)
    rows = session.execute(query).all()
    return [
        AuditView(e.id, e.at, e.operator, e.desk, e.action, number, code, hospital, dict(e.details))
        for e, number, code, hospital in reversed(rows)
    ]


def count_audit(session: Session, *, call_id: int | None = None) -> int:
    """How many audit entries (optionally of one call) there are."""
    query = select(func.count()).select_from(AuditEntry)
    if call_id is not None:
        query = query.where(AuditEntry.call_id == call_id)
    return int(session.execute(query).scalar_one())


def db_now(session: Session) -> Any:
    return session.execute(select(func.now())).scalar_one()


# On a standby: how old its data is, in seconds (None on a primary). Caught up with all it has
# received, and receiving, it is as of its last word from the primary; otherwise as of the last
# change it replayed (which, on a quiet primary, is older than the data really is: said high,
# never low).
_STANDBY_AGE = text(
    """
SELECT CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - coalesce(
    (SELECT r.last_msg_receipt_time FROM pg_stat_wal_receiver r
     WHERE r.status = 'streaming' AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()),
    pg_last_xact_replay_timestamp(),
    pg_postmaster_start_time())) END
"""
)


def standby_age(session: Session) -> float | None:
    """How many seconds old a standby's data is; None on a primary."""
    age = session.execute(_STANDBY_AGE).scalar_one()
    return None if age is None else max(float(age), 0.0)


def relay_channel(session: Session) -> str | None:
    """The relay's channel, or None when this login may not read it (as the listener asks)."""
    if not session.execute(text(listener.MAY_RELAY)).scalar():
        return None
    name = session.execute(text(listener.RELAY_CHANNEL)).scalar()
    return None if name is None else str(name)


def narrative(session: Session, call_id: int) -> list[NarrativeView]:
    """A call's narrative, oldest first (every entry: a call's record is never cut)."""
    rows = session.execute(
        select(NarrativeEntry).where(NarrativeEntry.call_id == call_id).order_by(NarrativeEntry.id)
    ).scalars()
    return [
        NarrativeView(n.id, n.at, n.operator, n.desk, n.kind, n.body, n.corrects_id) for n in rows
    ]


def alerts(session: Session, call_id: int) -> list[AlertView]:
    """A call's crew alerts, oldest first."""
    rows = session.execute(
        select(
            Alert.id,
            Unit.code,
            Alert.kind,
            Alert.state,
            Alert.attempts,
            Alert.sent_at,
            Alert.last_attempt_at,
            Alert.last_error,
        )
        .join(Unit, Unit.id == Alert.unit_id)
        # Through the call's assignments (their index, then the alerts' by assignment): alerts
        # have no index of their own on the call.
        .join(Assignment, Assignment.id == Alert.assignment_id)
        .where(Assignment.call_id == call_id)
        .order_by(Alert.id)
    )
    return [AlertView(*row) for row in rows]


_Adder = aliased(Staff)


def premises(session: Session, address: str) -> list[PremiseView]:
    """The hazard notes in force at `address` (as compared: `rules.duplicates`), oldest first."""
    key = duplicates.normalise_address(address)
    if not key:
        return []
    rows = session.execute(
        select(
            PremiseNote.id,
            PremiseNote.address,
            PremiseNote.note,
            PremiseNote.until,
            PremiseNote.added_at,
            _Adder.username,
        )
        .outerjoin(_Adder, _Adder.id == PremiseNote.added_by_id)
        .where(PremiseNote.address_key == key, _IN_FORCE)
        .order_by(PremiseNote.id)
    )
    return [PremiseView(*row) for row in rows]


# How far back a premise's history looks, and how many of its calls a record lists.
HISTORY_DAYS = 365
HISTORY_SHOWN = 5


def address_facts(session: Session, address: str) -> AddressFacts:
    """The hazards in force at `address`, and how many calls it had in the last HISTORY_DAYS."""
    key = duplicates.normalise_address(address)
    if not key:
        return AddressFacts()
    count = session.execute(
        select(func.count()).where(
            Call.address_key == key,
            Call.received_at >= func.now() - timedelta(days=HISTORY_DAYS),
        )
    ).scalar_one()
    return AddressFacts(tuple(premises(session, address)), int(count))


def prior_calls(session: Session, call_id: int) -> tuple[int, list[PriorCall]]:
    """The calls at the same address as `call_id` received in the HISTORY_DAYS before it: how
    many, and the newest HISTORY_SHOWN of them."""
    this = aliased(Call)
    earlier = (
        select(Call)
        .join(this, this.id == call_id)
        .where(
            Call.address_key == this.address_key,
            Call.id != this.id,
            Call.received_at < this.received_at,
            Call.received_at >= this.received_at - timedelta(days=HISTORY_DAYS),
        )
    )
    count = session.execute(select(func.count()).select_from(earlier.subquery())).scalar_one()
    if not count:
        return 0, []
    rows = session.execute(
        earlier.with_only_columns(
            Call.number, Call.received_at, Call.nature, Call.disposition, Call.status
        )
        .order_by(Call.received_at.desc())
        .limit(HISTORY_SHOWN)
    )
    return int(count), [PriorCall(*row) for row in rows]


def record(session: Session, call_id: int) -> CallRecord:
    """A call's whole record: its fields and units, and its narrative and audit merged into one
    timeline (`rules.timeline`). Read in the caller's transaction (one snapshot)."""
    view = call(session, call_id)
    who, place = session.execute(
        select(Staff.username, Place.name)
        .select_from(Call)
        .outerjoin(Staff, Staff.id == Call.created_by_id)
        .outerjoin(Place, Place.id == Call.place_id)
        .where(Call.id == call_id)
    ).one()
    entries = timeline.merge(
        narrative(session, call_id),
        audit(session, call_id=call_id, limit=None),
        alerts(session, call_id),
    )
    hazards = tuple(premises(session, view.location_text))
    count, prior = prior_calls(session, call_id)
    return CallRecord(
        view,
        entries,
        created_by=who,
        place=place,
        hazards=hazards,
        prior_count=count,
        prior=tuple(prior),
    )


def _like(text: str) -> str:
    """`text` as a LIKE pattern that matches it anywhere, its own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def find(
    session: Session, text: str, *, since: Any, limit: int
) -> tuple[list[CallView], int, list[UnitView]]:
    """Calls whose location, caller or phone match `text` (open ones, and ended ones received
    since `since`) or whose number it is (at any age), open first then newest; at most `limit`
    of them, with how many matched in all. And the units whose code starts with it."""
    wanted = text.strip()
    pattern = _like(wanted)
    matches: list[ColumnElement[bool]] = [
        Call.location_text.ilike(pattern),
        Call.caller_name.ilike(pattern),
    ]
    digits = "".join(ch for ch in wanted if ch.isdigit())
    if len(digits) >= 3:
        matches.append(func.regexp_replace(Call.caller_phone, "[^0-9]", "", "g").contains(digits))
    where = and_(or_(*matches), or_(_OPEN, Call.received_at >= since))
    with contextlib.suppress(InvalidInput):  # C-1042, c1042 or 1042, as everywhere, at any age
        where = or_(Call.number == validation.call_number(wanted), where)
    total = int(session.execute(select(func.count()).select_from(Call).where(where)).scalar_one())
    ids = (
        select(Call.id)
        .where(where)
        .order_by(_OPEN.desc(), Call.received_at.desc(), Call.id.desc())
        .limit(limit)
    )
    found_ids = list(session.execute(ids).scalars())
    by_id = {c.id: c for c in calls(session, ids=found_ids)} if found_ids else {}
    found = [by_id[i] for i in found_ids]
    code = wanted.upper()
    unit_ids = (
        list(
            session.execute(
                select(Unit.id)
                .where(Unit.code.startswith(code, autoescape=True))
                .order_by(Unit.code)
            ).scalars()
        )
        if code
        else []
    )
    return found, total, units(session, ids=unit_ids) if unit_ids else []


def open_priorities(session: Session) -> dict[str, int]:
    """Each open call's priority by number (two columns, through ix_calls_open)."""
    rows = session.execute(select(Call.number, Call.priority).where(_OPEN))
    return {number: priority for number, priority in rows}


# The street lines that cross a box: its bounding box overlaps the box (ix_street_segments_box).
_IN_BOX = and_(
    StreetSegment.max_lat >= bindparam("min_lat"),
    StreetSegment.min_lat <= bindparam("max_lat"),
    StreetSegment.max_lon >= bindparam("min_lon"),
    StreetSegment.min_lon <= bindparam("max_lon"),
)
_STREETS = (
    select(
        StreetSegment.name,
        StreetSegment.coords,
        StreetSegment.min_lat,
        StreetSegment.max_lat,
        StreetSegment.min_lon,
        StreetSegment.max_lon,
    )
    .where(_IN_BOX)
    .order_by(StreetSegment.id)
    .limit(bindparam("limit"))
)
_COUNT_STREETS = select(func.count()).select_from(StreetSegment).where(_IN_BOX)


def streets(session: Session, box: Box, *, limit: int) -> tuple[list[StreetView], int]:
    """The street lines that cross `box` (at most `limit`), with how many do in all: counted
    only when the limit was reached, in the same snapshot."""
    where = {
        "min_lat": box.min_lat,
        "max_lat": box.max_lat,
        "min_lon": box.min_lon,
        "max_lon": box.max_lon,
    }
    connection = session.connection()  # Core rows: a view straight from each row
    found = [
        StreetView(
            name,
            tuple((float(point[0]), float(point[1])) for point in coords),
            Box(min_lat, max_lat, min_lon, max_lon),
        )
        for name, coords, min_lat, max_lat, min_lon, max_lon in connection.execute(
            _STREETS, {**where, "limit": limit}
        )
    ]
    total = (
        int(connection.execute(_COUNT_STREETS, where).scalar_one())
        if len(found) >= limit
        else len(found)
    )
    return found, total
