"""Reads: turn rows into the frozen views the CLI, desk and board show.

Each function takes an open Session and does a bounded number of queries (no per-row lazy loads),
so a desk refresh costs the same whatever the size of the history.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session, aliased

from dispatch_tui.db.models import (
    Assignment,
    AuditEntry,
    Call,
    Hospital,
    Place,
    Staff,
    Station,
    Unit,
)
from dispatch_tui.rules.enums import OPEN_CALL_STATUSES
from dispatch_tui.rules.views import (
    AssignmentView,
    AuditView,
    CallView,
    HospitalView,
    Operator,
    PlaceView,
    UnitView,
)

_Paramedic = aliased(Staff)
_Dispatcher = aliased(Staff)


def operator(row: Staff) -> Operator:
    return Operator(row.id, row.username, row.full_name, row.role, row.unit_id)


# Statements are built once, here, with their ids as expanding bind parameters: a desk's refresh
# then costs SQLAlchemy no statement construction or cache-key work, only the execution.
_ASSIGNMENTS_OF_CALLS = (
    select(
        Assignment,
        Call.number,
        Unit.code,
        Unit.status,
        Unit.capability,
        _Paramedic.username,
        _Dispatcher.username,
        Hospital.code,
    )
    .join(Call, Call.id == Assignment.call_id)
    .join(Unit, Unit.id == Assignment.unit_id)
    .outerjoin(_Paramedic, _Paramedic.id == Assignment.paramedic_id)
    .outerjoin(_Dispatcher, _Dispatcher.id == Assignment.dispatcher_id)
    .outerjoin(Hospital, Hospital.id == Assignment.hospital_id)
    .where(Assignment.call_id.in_(bindparam("call_ids", expanding=True)))
    .order_by(Assignment.notified_at, Assignment.id)
)


def _assignment_view(row: Any) -> AssignmentView:
    a: Assignment = row[0]
    active = a.cleared_at is None and a.cancelled_at is None
    return AssignmentView(
        id=a.id,
        call_number=row[1],
        unit_code=row[2],
        # A finished assignment shows how it ended, not what the unit does now.
        unit_status=row[3] if active else ("CANCELLED" if a.cancelled_at else "CLEARED"),
        capability=row[4],
        paramedic=row[5],
        dispatcher=row[6],
        hospital_code=row[7],
        notified_at=a.notified_at,
        en_route_at=a.en_route_at,
        on_scene_at=a.on_scene_at,
        transporting_at=a.transporting_at,
        at_destination_at=a.at_destination_at,
        cleared_at=a.cleared_at,
        cancelled_at=a.cancelled_at,
    )


_Destination = aliased(Hospital)
_CALLS = (
    select(Call, _Destination.code, _Dispatcher.username)
    .outerjoin(_Destination, _Destination.id == Call.destination_hospital_id)
    .outerjoin(_Dispatcher, _Dispatcher.id == Call.dispatched_by_id)
    .order_by(Call.priority, Call.received_at, Call.id)
    .limit(bindparam("limit"))
)
_CALLS_BY_ID = _CALLS.where(Call.id.in_(bindparam("ids", expanding=True)))
_OPEN_CALLS = _CALLS.where(Call.status.in_([s.value for s in OPEN_CALL_STATUSES]))


def calls(
    session: Session, *, ids: Sequence[int] | None = None, open_only: bool = True, limit: int = 500
) -> list[CallView]:
    """Calls (open ones by default) with all their assignments, priority first then age."""
    params: dict[str, Any] = {"limit": limit}
    if ids is not None:
        query, params["ids"] = _CALLS_BY_ID, list(ids)
    else:
        query = _OPEN_CALLS if open_only else _CALLS
    rows = session.execute(query, params).all()
    if not rows:
        return []
    by_call: dict[int, list[AssignmentView]] = {row[0].id: [] for row in rows}
    for row in session.execute(_ASSIGNMENTS_OF_CALLS, {"call_ids": list(by_call)}):
        by_call[row[0].call_id].append(_assignment_view(row))
    return [
        CallView(
            id=c.id,
            number=c.number,
            status=c.status,
            priority=c.priority,
            determinant=c.determinant,
            nature=c.nature,
            location_text=c.location_text,
            lat=c.lat,
            lon=c.lon,
            caller_name=c.caller_name,
            caller_phone=c.caller_phone,
            notes=c.notes,
            received_at=c.received_at,
            first_dispatched_at=c.first_dispatched_at,
            closed_at=c.closed_at,
            cancelled_at=c.cancelled_at,
            disposition=c.disposition,
            destination_code=dest,
            dispatched_by=dispatcher,
            assignments=tuple(by_call[c.id]),
        )
        for c, dest, dispatcher in rows
    ]


def call(session: Session, call_id: int) -> CallView:
    (view,) = calls(session, ids=[call_id])
    return view


_ACTIVE_CALL_OF_UNIT = (
    select(Assignment.unit_id, Call.number)
    .join(Call, Call.id == Assignment.call_id)
    .where(Assignment.cleared_at.is_(None), Assignment.cancelled_at.is_(None))
    .subquery()
)
_UNITS = (
    select(Unit, Station.code, Station.lat, Station.lon, _ACTIVE_CALL_OF_UNIT.c.number)
    .outerjoin(Station, Station.id == Unit.station_id)
    .outerjoin(_ACTIVE_CALL_OF_UNIT, _ACTIVE_CALL_OF_UNIT.c.unit_id == Unit.id)
    .order_by(Unit.code)
)
_UNITS_BY_ID = _UNITS.where(Unit.id.in_(bindparam("ids", expanding=True)))


def units(session: Session, *, ids: Sequence[int] | None = None) -> list[UnitView]:
    rows = (
        session.execute(_UNITS)
        if ids is None
        else session.execute(_UNITS_BY_ID, {"ids": list(ids)})
    )
    return [
        UnitView(
            id=u.id,
            code=u.code,
            capability=u.capability,
            status=u.status,
            status_since=u.status_since,
            station_code=station,
            lat=u.lat,
            lon=u.lon,
            position_at=u.position_at,
            call_number=number,
            station_position=(lat, lon) if lat is not None and lon is not None else None,
        )
        for u, station, lat, lon, number in rows
    ]


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


def audit(session: Session, *, call_id: int | None = None, limit: int = 200) -> list[AuditView]:
    """The newest `limit` audit entries (optionally of one call), oldest first."""
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


def db_now(session: Session) -> Any:
    return session.execute(select(func.now())).scalar_one()
