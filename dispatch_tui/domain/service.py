"""The dispatch service: every change a desk, the CLI or the simulator makes goes through here.

One transaction per action. Rows are locked in a fixed order — the call, then its units by id —
and the state is checked again after the lock, so two desks can never book the same unit: the
second one waits for the first to commit, sees the change and gets a Conflict that says who got
there first. Writes name only the columns they change (a position update can never undo a
dispatch), timestamps come from the database clock, and every change writes its audit rows in the
same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from dispatch_tui.db.models import (
    LOCATION_MAX,
    Assignment,
    AuditEntry,
    Call,
    Hospital,
    Place,
    Staff,
    Unit,
)
from dispatch_tui.domain import lifecycle, queries, validation
from dispatch_tui.domain.dto import (
    CallView,
    HospitalView,
    UnitView,
)
from dispatch_tui.domain.enums import CallStatus, HospitalStatus, Role, UnitStatus
from dispatch_tui.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)
from dispatch_tui.domain.reads import ReadService, staff_row
from dispatch_tui.domain.transactions import write

log = logging.getLogger(__name__)
T = TypeVar("T")

# Who may do what. Kept in one table so the desk can hide what the operator may not do.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "create_call": frozenset({Role.DISPATCHER}),
    "dispatch": frozenset({Role.DISPATCHER}),
    "unit_status": frozenset({Role.DISPATCHER}),  # and the paramedic crewing that unit
    "locate_unit": frozenset({Role.DISPATCHER}),  # and the paramedic crewing that unit
    "cancel": frozenset({Role.DISPATCHER}),
    "close_call": frozenset({Role.DISPATCHER}),
    "hospital_status": frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN}),
}

ACTIVE = (Assignment.cleared_at.is_(None), Assignment.cancelled_at.is_(None))


def ago(seconds: float) -> str:
    if seconds < 10:
        return "a moment ago"
    if seconds < 120:
        return f"{int(seconds)} s ago"
    if seconds < 7200:
        return f"{int(seconds // 60)} min ago"
    return f"{int(seconds // 3600)} h ago"


class DispatchService(ReadService):
    """Every write action: one transaction each, locks in a fixed order, audit rows included."""

    # -- permissions and audit ---------------------------------------------------------------

    def _authorise(
        self, s: Session, username: str, action: str, unit_id: int | None = None
    ) -> Staff:
        staff = staff_row(s, username)
        if Role(staff.role) in PERMISSIONS[action]:
            return staff
        if unit_id is not None and staff.role == Role.PARAMEDIC and staff.unit_id == unit_id:
            return staff
        allowed = " or ".join(sorted(r.value for r in PERMISSIONS[action]))
        raise Forbidden(f"{staff.username} is a {staff.role}; only a {allowed} may do that")

    def _audit(
        self,
        s: Session,
        staff: Staff,
        action: str,
        *,
        call_id: int | None = None,
        unit_id: int | None = None,
        hospital_id: int | None = None,
        **details: Any,
    ) -> None:
        s.execute(
            insert(AuditEntry).values(
                operator_id=staff.id,
                operator=staff.username,
                desk=self.desk,
                action=action,
                call_id=call_id,
                unit_id=unit_id,
                hospital_id=hospital_id,
                details=details,
            )
        )

    # -- lookups with locks ---------------------------------------------------------------------

    def _lock_call(self, s: Session, number: str) -> Call:
        code = validation.call_number(number)
        call = s.scalar(select(Call).where(Call.number == code).with_for_update())
        if call is None:
            raise NotFound(f"no call {code}")
        return call

    def _lock_units(self, s: Session, codes: Sequence[str]) -> list[Unit]:
        """Lock units by id order (the fixed order every action uses, so no deadlocks)."""
        found = list(
            s.scalars(select(Unit).where(Unit.code.in_(codes)).order_by(Unit.id).with_for_update())
        )
        missing = sorted(set(codes) - {u.code for u in found})
        if missing:
            raise NotFound(f"no unit {', '.join(missing)}")
        return found

    def _hospital(self, s: Session, code: str, *, override_diversion: bool) -> Hospital:
        hcode = validation.hospital_code(code)
        hospital = s.scalar(select(Hospital).where(Hospital.code == hcode))
        if hospital is None:
            raise NotFound(f"no hospital {hcode}")
        if hospital.status == HospitalStatus.CLOSED:
            raise Conflict(f"{hcode} is closed to ambulances")
        if hospital.status == HospitalStatus.DIVERSION and not override_diversion:
            raise Conflict(
                f"{hcode} is on diversion; repeat with the diversion override to send anyway"
            )
        return hospital

    def _busy_reason(self, s: Session, unit: Unit) -> str:
        """Why a unit cannot be dispatched, naming who took it and when."""
        if unit.status == UnitStatus.OUT_OF_SERVICE:
            return f"{unit.code} is out of service"
        row = s.execute(
            select(
                Call.number,
                Staff.username,
                func.extract("epoch", func.now() - Assignment.notified_at),
            )
            .join(Call, Call.id == Assignment.call_id)
            .outerjoin(Staff, Staff.id == Assignment.dispatcher_id)
            .where(Assignment.unit_id == unit.id, *ACTIVE)
        ).first()
        if row is None:
            return f"{unit.code} is {lifecycle.label(unit.status)}"
        number, who, seconds = row
        return f"{unit.code} was dispatched to {number} by {who or 'another desk'} {ago(float(seconds))}"

    def _active(self, s: Session, call_id: int) -> list[tuple[Assignment, Unit]]:
        rows = s.execute(
            select(Assignment, Unit)
            .join(Unit, Unit.id == Assignment.unit_id)
            .where(Assignment.call_id == call_id, *ACTIVE)
            .order_by(Unit.id)
        ).all()
        return [(a, u) for a, u in rows]

    def _follow_units(self, s: Session, call: Call, staff: Staff) -> None:
        """Set the call's status from its active units (closing it when the last one cleared)."""
        statuses = [UnitStatus(u.status) for _, u in self._active(s, call.id)]
        new = lifecycle.call_status_for(statuses)
        if new is None:
            finished = s.scalar(
                select(func.count()).where(
                    Assignment.call_id == call.id, Assignment.cleared_at.is_not(None)
                )
            )
            if finished:
                new = CallStatus.CLOSED
                values: dict[str, Any] = {
                    "status": new,
                    "closed_at": func.now(),
                    "disposition": "all units cleared",
                }
            else:
                new = CallStatus.RECEIVED  # every unit was cancelled: the call is pending again
                values = {"status": new}
        else:
            values = {"status": new}
        old = call.status
        if new != old:
            s.execute(update(Call).where(Call.id == call.id).values(**values))
            self._audit(s, staff, "call_status", call_id=call.id, old=old, new=new.value)

    # -- writes -----------------------------------------------------------------------------------

    def create_call(self, username: str, raw: validation.CallIntake) -> CallView:
        data = validation.intake(raw)

        def work(s: Session) -> CallView:
            staff = self._authorise(s, username, "create_call")
            place = None
            if data.place:
                place = self._find_place(s, data.place)
            position = data.position or ((place.lat, place.lon) if place else None)
            location = data.location or (f"{place.name}, {place.address}" if place else "")
            call_id = s.execute(
                insert(Call)
                .values(
                    caller_name=data.caller_name,
                    caller_phone=data.caller_phone,
                    location_text=location[:LOCATION_MAX],
                    lat=position[0] if position else None,
                    lon=position[1] if position else None,
                    place_id=place.id if place else None,
                    nature=data.nature,
                    priority=data.priority,
                    determinant=data.determinant,
                    notes=data.notes,
                    created_by_id=staff.id,
                )
                .returning(Call.id)
            ).scalar_one()
            self._audit(
                s,
                staff,
                "call_created",
                call_id=call_id,
                priority=data.priority,
                nature=data.nature,
            )
            return queries.call(s, call_id)

        return write(self.sessions, work)

    def _find_place(self, s: Session, name: str) -> Place:
        exact = s.scalar(select(Place).where(func.lower(Place.name) == name.lower()))
        if exact is not None:
            return exact
        pattern = name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        matches = list(
            s.scalars(select(Place).where(func.lower(Place.name).like(pattern)).limit(4))
        )
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise NotFound(f"no named place '{name}'")
        raise InvalidInput(
            f"'{name}' matches several places: {', '.join(p.name for p in matches[:3])}…"
        )

    def dispatch(
        self,
        username: str,
        call_number: str,
        unit_codes: Sequence[str],
        *,
        paramedic: str | None = None,
        hospital: str | None = None,
        override_diversion: bool = False,
        add: bool = False,
    ) -> CallView:
        """Send units to a call, following the dispatch flow of DOMAIN.md step by step.

        `add` sends further units to a call that already has some; without it, a call that
        another desk has just dispatched is a conflict, not a silent double dispatch.
        """
        codes = [validation.unit_code(c) for c in unit_codes]
        if not codes:
            raise InvalidInput("name at least one unit to dispatch")
        if len(set(codes)) != len(codes):
            raise InvalidInput("a unit is named twice")
        if len(codes) > 20:
            raise InvalidInput("at most 20 units in one dispatch")
        medic_name = validation.username(paramedic) if paramedic else None
        if medic_name and len(codes) > 1:
            raise InvalidInput("name a paramedic with a single unit")
        number = validation.call_number(call_number)
        hcode = validation.hospital_code(hospital) if hospital else None

        def work(s: Session) -> CallView:
            staff = self._authorise(s, username, "dispatch")  # 1. permission (2. validated above)
            call = self._lock_call(s, number)  # 3. locks: the call, then units by id
            units = self._lock_units(s, codes)
            if not CallStatus(call.status).is_open:  # 4. re-check after the lock
                raise Conflict(f"{number} is already {lifecycle.label(call.status)}")
            for unit in units:
                if unit.status != UnitStatus.AVAILABLE:
                    raise Conflict(self._busy_reason(s, unit))
            active = self._active(s, call.id)
            if active and not add:
                first = active[0][0]
                who = s.scalar(select(Staff.username).where(Staff.id == first.dispatcher_id))
                sent = ", ".join(u.code for _, u in active)
                raise Conflict(
                    f"{number} already has {sent} (dispatched by {who or 'another desk'}); "
                    "use --add to send more"
                )
            medic = self._paramedic(s, medic_name) if medic_name else None  # 5.
            dest = (
                self._hospital(s, hcode, override_diversion=override_diversion) if hcode else None
            )  # 8.
            for unit in units:  # 6. assignment, unit EN_ROUTE
                s.execute(
                    insert(Assignment).values(
                        call_id=call.id,
                        unit_id=unit.id,
                        paramedic_id=medic.id if medic else None,
                        dispatcher_id=staff.id,
                        hospital_id=dest.id if dest else None,
                    )
                )
                s.execute(
                    update(Unit)
                    .where(Unit.id == unit.id)
                    .values(status=UnitStatus.EN_ROUTE, status_since=func.now())
                )
            call_values: dict[str, Any] = {}  # 7./9. call linked and DISPATCHED with DB time
            if call.status == CallStatus.RECEIVED:
                call_values["status"] = CallStatus.DISPATCHED
            if call.first_dispatched_at is None:
                call_values["first_dispatched_at"] = func.now()
                call_values["dispatched_by_id"] = staff.id
            if dest is not None:
                call_values["destination_hospital_id"] = dest.id
            if call_values:
                s.execute(update(Call).where(Call.id == call.id).values(**call_values))
            for unit in units:
                self._audit(
                    s,
                    staff,
                    "dispatch",
                    call_id=call.id,
                    unit_id=unit.id,
                    paramedic=medic.username if medic else None,
                    hospital=dest.code if dest else None,
                    added=bool(active),
                )
            return queries.call(s, call.id)  # 10. commit on return; 11. NOTIFY fires on commit

        return write(self.sessions, work)

    def _paramedic(self, s: Session, name: str) -> Staff:
        medic = s.scalar(select(Staff).where(func.lower(Staff.username) == name.lower()))
        if medic is None or not medic.active:
            raise NotFound(f"no paramedic '{name}'")
        if medic.role != Role.PARAMEDIC:
            raise InvalidInput(f"{medic.username} is a {medic.role}, not a paramedic")
        busy = s.scalar(
            select(Call.number)
            .join(Assignment, Assignment.call_id == Call.id)
            .where(Assignment.paramedic_id == medic.id, *ACTIVE)
        )
        if busy:
            raise Conflict(f"paramedic {medic.username} is already on {busy}")
        return medic

    def unit_status(
        self,
        username: str,
        unit_code: str,
        status: str,
        *,
        hospital: str | None = None,
        override_diversion: bool = False,
    ) -> UnitView:
        code = validation.unit_code(unit_code)
        try:
            target = UnitStatus(status.strip().upper())
        except ValueError:
            raise InvalidInput(f"'{status[:24]}' is not a unit status") from None
        hcode = validation.hospital_code(hospital) if hospital else None

        def work(s: Session) -> UnitView:
            # Find the call first (unlocked), then lock call -> unit, then make sure the unit is
            # still on that call: the fixed lock order every action shares.
            unit_id = s.scalar(select(Unit.id).where(Unit.code == code))
            if unit_id is None:
                raise NotFound(f"no unit {code}")
            staff = self._authorise(s, username, "unit_status", unit_id)
            seen_call = s.scalar(
                select(Assignment.call_id).where(Assignment.unit_id == unit_id, *ACTIVE)
            )
            call = (
                s.scalar(select(Call).where(Call.id == seen_call).with_for_update())
                if seen_call
                else None
            )
            (unit,) = self._lock_units(s, [code])
            assignment = s.scalar(select(Assignment).where(Assignment.unit_id == unit_id, *ACTIVE))
            if (assignment.call_id if assignment else None) != seen_call:
                raise Conflict(f"{code} changed at another desk a moment ago; look again")
            current = UnitStatus(unit.status)
            step = lifecycle.unit_step(
                code, current, target, bool(assignment and assignment.en_route_at)
            )
            values: dict[str, Any] = {}
            dest = None
            if step.needs_destination:
                assert assignment is not None and call is not None
                chosen = hcode or _code_of(
                    s, assignment.hospital_id or call.destination_hospital_id
                )
                if not chosen:
                    raise InvalidInput(f"{code} needs a destination hospital to transport")
                dest = self._hospital(
                    s, chosen, override_diversion=override_diversion or chosen != hcode
                )
                values["hospital_id"] = dest.id
            if step.time_column:
                assert assignment is not None
                values[step.time_column] = func.now()
                s.execute(update(Assignment).where(Assignment.id == assignment.id).values(**values))
            if target != current:
                s.execute(
                    update(Unit)
                    .where(Unit.id == unit.id)
                    .values(status=target, status_since=func.now())
                )
            self._audit(
                s,
                staff,
                "unit_status",
                call_id=call.id if call else None,
                unit_id=unit.id,
                hospital_id=dest.id if dest else None,
                old=current.value,
                new=target.value,
            )
            if call is not None:
                if dest is not None and call.destination_hospital_id is None:
                    s.execute(
                        update(Call)
                        .where(Call.id == call.id)
                        .values(destination_hospital_id=dest.id)
                    )
                self._follow_units(s, call, staff)
            return queries.unit(s, unit.id)

        return write(self.sessions, work)

    def locate_unit(
        self, username: str, unit_code: str, lat: float | str, lon: float | str
    ) -> UnitView:
        code = validation.unit_code(unit_code)
        position = validation.coordinate(lat, lon)

        def work(s: Session) -> UnitView:
            unit_id = s.scalar(select(Unit.id).where(Unit.code == code))
            if unit_id is None:
                raise NotFound(f"no unit {code}")
            staff = self._authorise(s, username, "locate_unit", unit_id)
            # Only the position columns: a stale whole-row save once undid a dispatch.
            s.execute(
                update(Unit)
                .where(Unit.id == unit_id)
                .values(lat=position[0], lon=position[1], position_at=func.now())
            )
            self._audit(
                s, staff, "unit_position", unit_id=unit_id, lat=position[0], lon=position[1]
            )
            return queries.unit(s, unit_id)

        return write(self.sessions, work)

    def cancel_unit(self, username: str, unit_code: str, reason: str = "") -> CallView:
        """Cancel one unit's assignment before it arrives; the unit is available again."""
        code = validation.unit_code(unit_code)
        why = validation.text_field("reason", reason, 200)

        def work(s: Session) -> CallView:
            staff = self._authorise(s, username, "cancel")
            unit_id = s.scalar(select(Unit.id).where(Unit.code == code))
            if unit_id is None:
                raise NotFound(f"no unit {code}")
            seen_call = s.scalar(
                select(Assignment.call_id).where(Assignment.unit_id == unit_id, *ACTIVE)
            )
            if seen_call is None:
                raise Conflict(f"{code} is not on a call")
            call = s.scalar(select(Call).where(Call.id == seen_call).with_for_update())
            assert call is not None
            (unit,) = self._lock_units(s, [code])
            assignment = s.scalar(select(Assignment).where(Assignment.unit_id == unit_id, *ACTIVE))
            if assignment is None or assignment.call_id != call.id:
                raise Conflict(f"{code} changed at another desk a moment ago; look again")
            if unit.status != UnitStatus.EN_ROUTE:
                raise Conflict(
                    f"{code} is {lifecycle.label(unit.status)}; clear it (av {code}) instead of cancelling"
                )
            self._release(s, assignment, unit, "cancelled_at")
            self._audit(s, staff, "unit_cancelled", call_id=call.id, unit_id=unit.id, reason=why)
            self._follow_units(s, call, staff)
            return queries.call(s, call.id)

        return write(self.sessions, work)

    def _release(self, s: Session, assignment: Assignment, unit: Unit, column: str) -> None:
        s.execute(
            update(Assignment).where(Assignment.id == assignment.id).values({column: func.now()})
        )
        s.execute(
            update(Unit)
            .where(Unit.id == unit.id)
            .values(status=UnitStatus.AVAILABLE, status_since=func.now())
        )

    def cancel_call(self, username: str, call_number: str, reason: str = "") -> CallView:
        number = validation.call_number(call_number)
        why = validation.text_field("reason", reason, 200)

        def work(s: Session) -> CallView:
            staff = self._authorise(s, username, "cancel")
            call = self._lock_call(s, number)
            if not CallStatus(call.status).is_open:
                raise Conflict(f"{number} is already {lifecycle.label(call.status)}")
            active = self._active(s, call.id)
            self._lock_units(s, [u.code for _, u in active])
            for assignment, unit in active:
                self._release(s, assignment, unit, "cancelled_at")
                self._audit(
                    s, staff, "unit_cancelled", call_id=call.id, unit_id=unit.id, reason=why
                )
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values(
                    status=CallStatus.CANCELLED,
                    cancelled_at=func.now(),
                    disposition=why or "cancelled",
                )
            )
            self._audit(s, staff, "call_cancelled", call_id=call.id, old=call.status, reason=why)
            return queries.call(s, call.id)

        return write(self.sessions, work)

    def close_call(self, username: str, call_number: str, disposition: str = "") -> CallView:
        """Close a call a unit has reached; units still on it are cleared (or, not yet there, cancelled)."""
        number = validation.call_number(call_number)
        why = validation.text_field("disposition", disposition, 200)

        def work(s: Session) -> CallView:
            staff = self._authorise(s, username, "close_call")
            call = self._lock_call(s, number)
            if not CallStatus(call.status).is_open:
                raise Conflict(f"{number} is already {lifecycle.label(call.status)}")
            if call.status in (CallStatus.RECEIVED, CallStatus.DISPATCHED):
                raise Conflict(f"no unit has reached {number} yet; cancel it instead")
            active = self._active(s, call.id)
            self._lock_units(s, [u.code for _, u in active])
            for assignment, unit in active:
                column = "cancelled_at" if unit.status == UnitStatus.EN_ROUTE else "cleared_at"
                self._release(s, assignment, unit, column)
                self._audit(
                    s, staff, "unit_released", call_id=call.id, unit_id=unit.id, old=unit.status
                )
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values(status=CallStatus.CLOSED, closed_at=func.now(), disposition=why or "closed")
            )
            self._audit(s, staff, "call_closed", call_id=call.id, old=call.status, disposition=why)
            return queries.call(s, call.id)

        return write(self.sessions, work)

    def hospital_status(
        self, username: str, code: str, status: str | None = None, *, beds: int | str | None = None
    ) -> HospitalView:
        hcode = validation.hospital_code(code)
        new_status: HospitalStatus | None = None
        if status is not None:
            try:
                new_status = HospitalStatus(status.strip().upper())
            except ValueError:
                raise InvalidInput(
                    f"'{status[:24]}' is not a hospital status (open, diversion, closed)"
                ) from None
        new_beds = validation.beds(beds) if beds is not None else None
        if new_status is None and new_beds is None:
            raise InvalidInput("give a hospital status, a bed count, or both")

        def work(s: Session) -> HospitalView:
            staff = self._authorise(s, username, "hospital_status")
            hospital = s.scalar(select(Hospital).where(Hospital.code == hcode).with_for_update())
            if hospital is None:
                raise NotFound(f"no hospital {hcode}")
            old = hospital.status  # read before the UPDATE syncs the loaded object
            values: dict[str, Any] = {}
            if new_status is not None and new_status != old:
                values.update(status=new_status, status_since=func.now())
            if new_beds is not None:
                values["beds_available"] = new_beds
            if values:
                s.execute(update(Hospital).where(Hospital.id == hospital.id).values(**values))
            self._audit(
                s,
                staff,
                "hospital_status",
                hospital_id=hospital.id,
                old=old,
                new=new_status.value if new_status is not None else old,
                beds=new_beds,
            )
            return queries.hospitals(s, ids=[hospital.id])[0]

        return write(self.sessions, work)


def _code_of(s: Session, hospital_id: int | None) -> str | None:
    return (
        s.scalar(select(Hospital.code).where(Hospital.id == hospital_id)) if hospital_id else None
    )
