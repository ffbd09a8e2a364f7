"""The dispatch service: every change a desk, the CLI or the simulator makes goes through here.

One transaction per action. Rows are locked in a fixed order — the call, then its units by id —
and the state is checked again after the lock, so two desks can never book the same unit: the
second one waits for the first to commit, sees the change and gets a Conflict that says who got
there first. Writes name only the columns they change (a position update can never undo a
dispatch), timestamps come from the database clock, and every change writes its audit rows in the
same transaction.

A dispatch is one statement that takes the same locks in the same order, its rules written once in
`service/dispatch.py`, which also explains a refusal; `dispatch` here only hands it the request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from dispatch_tui.db import views
from dispatch_tui.db.models import Call, Hospital
from dispatch_tui.rules import duplicates, lifecycle, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.enums import OPEN_CALL_STATUSES, CallStatus, HospitalStatus, UnitStatus
from dispatch_tui.rules.errors import (
    Conflict,
    DispatchError,
    DuplicateSuspected,
    InvalidInput,
    NotFound,
)
from dispatch_tui.rules.views import CallView, Dispatched, HospitalView, UnitView
from dispatch_tui.service import dispatch as dispatching
from dispatch_tui.service import gazetteer, next_calls, sql_functions, steps
from dispatch_tui.service.call_record import CallRecordWrites, check_answer
from dispatch_tui.service.crew import CrewWrites
from dispatch_tui.service.moves import UnitMoves
from dispatch_tui.service.premises import PremiseWrites
from dispatch_tui.service.transactions import write
from dispatch_tui.service.unit_status import UnitStatusWrites

log = logging.getLogger(__name__)


def _suspected(alike: list[duplicates.Candidate], now: datetime) -> DuplicateSuspected:
    """The refusal of a new call that may be an open one: the candidates, nearest first."""
    first = alike[0]
    more = f" and {len(alike) - 1} more" if len(alike) > 1 else ""
    return DuplicateSuspected(
        f"this may be {first.line(now)}{more}: add the caller to it (--attach "
        f"{first.call.number}) or take a new call anyway (--new-anyway)",
        [
            {
                "call": c.call.number,
                "priority": c.call.priority,
                "nature": c.call.nature,
                "location": c.call.location_text,
                "metres": None if c.metres is None else round(c.metres),
                "same_address": c.same_address,
                "received_at": c.call.received_at.isoformat(),
                "line": c.line(now),
            }
            for c in alike
        ],
    )


T = TypeVar("T")


_LOCATE = (
    b"SELECT * FROM dispatch_locate(%(operator)s, %(unit)s, %(lat)s, %(lon)s, %(desk)s,"
    b" %(request)s, %(fingerprint)s, %(rules)s::jsonb)"
)


class DispatchService(CallRecordWrites, UnitMoves, UnitStatusWrites, CrewWrites, PremiseWrites):
    """Every write action: one transaction each, locks in a fixed order, audit rows included.

    Each takes an optional `once`, the write's request id: a write carried out before under the
    same id raises `AlreadyDone` instead of acting twice (`service/request_ids.py`). Working a
    call after intake is in `call_record.py`, moving units in `moves.py`; what they share in
    `writer.py`."""

    # -- writes -----------------------------------------------------------------------------------

    def create_call(
        self,
        username: str,
        raw: validation.CallIntake,
        once: Once | None = None,
        *,
        check_duplicates: bool = False,
        new_anyway: bool = False,
    ) -> CallView:
        """Take a new call. `check_duplicates` (the desk and the CLI): when open calls received
        lately are near it or at its address (`rules.duplicates`, `self.duplicates`), refuse
        with them as `DuplicateSuspected` unless `new_anyway`, which takes it and audits the
        override."""
        data = validation.intake(raw)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "create_call")
            if raw.answered is not None:
                check_answer(s, raw.answered, staff)
            place = None
            if data.place:
                place = steps.find_place(s, data.place)
            position = data.position or ((place.lat, place.lon) if place else None)
            location = data.location or (f"{place.name}, {place.address}" if place else "")
            # Given coordinates or a named place are trusted; a typed address is looked up.
            verified = position is not None
            if position is None:
                settled = gazetteer.placed(s, location)
                position, verified = settled.position, settled.verified
            alike = self._alike(s, position, location) if check_duplicates else []
            if alike and not new_anyway:
                raise _suspected(alike, steps.clock(s))
            call_id = s.execute(
                insert(Call)
                .values(
                    caller_name=data.caller_name,
                    caller_phone=data.caller_phone,
                    location_text=location[: validation.LOCATION_MAX],
                    address_key=duplicates.normalise_address(location) or None,
                    lat=position[0] if position else None,
                    lon=position[1] if position else None,
                    location_verified=verified,
                    place_id=place.id if place else None,
                    nature=data.nature,
                    priority=data.priority,
                    determinant=data.determinant,
                    notes=data.notes,
                    created_by_id=staff.id,
                    # A trigger sets received_at from the answer (migration 0006).
                    answer_id=raw.answered,
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
            if alike:
                self._audit(
                    s,
                    staff,
                    "duplicate_overridden",
                    call_id=call_id,
                    candidates=[c.call.number for c in alike],
                )
            return views.call(s, call_id)

        return write(self.sessions, work, once)

    def _alike(
        self, s: Session, position: tuple[float, float] | None, location: str
    ) -> list[duplicates.Candidate]:
        """The open calls a new one may duplicate (see `rules.duplicates`)."""
        now = steps.clock(s)
        since = now - timedelta(minutes=self.duplicates.minutes)
        ids = s.scalars(
            select(Call.id).where(
                Call.received_at >= since,
                Call.status.in_([st.value for st in OPEN_CALL_STATUSES]),
            )
        ).all()
        recent = views.calls(s, ids=list(ids)) if ids else []
        return duplicates.candidates(position, location, recent, now, self.duplicates)

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
        once: Once | None = None,
    ) -> Dispatched:
        """Send units to a call: one statement, or the refusal (see `service/dispatch.py`).

        `add` sends further units to a call that already has some; without it, a call that
        another desk has just dispatched is a conflict, not a silent double dispatch.
        """
        request = dispatching.Request.of(
            username,
            call_number,
            unit_codes,
            paramedic=paramedic,
            hospital=hospital,
            override_diversion=override_diversion,
            add=add,
            once=once,
        )
        return dispatching.run(self.statements, self.desk, request)

    def locate_unit(
        self,
        username: str,
        unit_code: str,
        lat: float | str,
        lon: float | str,
        once: Once | None = None,
    ) -> UnitView:
        """A unit's position, reported: its position's columns alone (a stale whole-row save
        once undid a dispatch), stamped by the server's clock, audited. One statement,
        `dispatch_locate` (migration 0022): the write a centre makes most often."""
        code = validation.unit_code(unit_code)
        position = validation.coordinate(lat, lon)
        params = {
            "operator": validation.username(username),
            "unit": code,
            "lat": position[0],
            "lon": position[1],
            "desk": self.desk,
        }

        def refusal(outcome: str, facts: dict[str, Any]) -> DispatchError:
            said = sql_functions.shared_refusal(username, "locate_unit", outcome, facts, unit=code)
            if said is None:
                raise AssertionError(f"dispatch_locate answered {outcome!r}")
            return said

        unit_id, at, said = sql_functions.run(
            self.statements,
            _LOCATE,
            params,
            once,
            refusal,
            f"{code} changed at another desk a moment ago; look again",
        )
        return self._unit_now(unit_id, at, said)

    def cancel_unit(
        self, username: str, unit_code: str, reason: str = "", once: Once | None = None
    ) -> CallView:
        """Cancel one unit's assignment before it arrives; the unit is available again."""
        code = validation.unit_code(unit_code)
        why = validation.text_field("reason", reason, 200)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "cancel")
            unit, call, assignment, calls = steps.lock_unit_on_call(s, code)
            at = steps.clock(s)
            if call is None or assignment is None:
                raise Conflict(f"{code} is not on a call")
            if unit.status != UnitStatus.EN_ROUTE:
                raise Conflict(
                    f"{code} is {lifecycle.label(unit.status)}; clear it (av {code}) instead of cancelling"
                )
            steps.release(s, assignment, unit, "cancelled_at", at)
            self._audit(s, staff, "unit_cancelled", call_id=call.id, unit_id=unit.id, reason=why)
            self._follow(s, call, staff, at)
            next_calls.promote(s, staff, self.desk, unit, calls, at)
            return views.call(s, call.id)

        return write(self.sessions, work, once)

    def cancel_call(
        self, username: str, call_number: str, reason: str = "", once: Once | None = None
    ) -> CallView:
        number = validation.call_number(call_number)
        why = validation.text_field("reason", reason, 200)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "cancel")
            call, calls = next_calls.lock_call_and_next(s, number)
            at = steps.clock(s)
            if not CallStatus(call.status).is_open:
                raise Conflict(f"{number} is already {lifecycle.label(call.status)}")
            old = call.status  # read before the UPDATEs sync the loaded objects
            active = steps.active(s, call.id)
            steps.lock_units(s, [u.code for _, u in active])
            for assignment, unit in active:
                # A unit that reached the patient is cleared; one still on its way is cancelled.
                column = "cancelled_at" if unit.status == UnitStatus.EN_ROUTE else "cleared_at"
                steps.release(s, assignment, unit, column, at)
                action = "unit_cancelled" if column == "cancelled_at" else "unit_released"
                self._audit(s, staff, action, call_id=call.id, unit_id=unit.id, reason=why)
                next_calls.promote(s, staff, self.desk, unit, calls, at)
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values(
                    status=CallStatus.CANCELLED,
                    cancelled_at=at,
                    disposition=why or "cancelled",
                )
            )
            next_calls.end_lined_up(s, staff, self.desk, call, at, "cancelled")
            self._audit(s, staff, "call_cancelled", call_id=call.id, old=old, reason=why)
            return views.call(s, call.id)

        return write(self.sessions, work, once)

    def close_call(
        self, username: str, call_number: str, disposition: str = "", once: Once | None = None
    ) -> CallView:
        """Close a call a unit has reached, with a disposition from `dispositions` (refused
        without one); units still on it are cleared (or, not yet there, cancelled)."""
        number = validation.call_number(call_number)
        why = validation.text_field("disposition", disposition, 200)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "close_call")
            call, calls = next_calls.lock_call_and_next(s, number)
            at = steps.clock(s)
            if not CallStatus(call.status).is_open:
                raise Conflict(f"{number} is already {lifecycle.label(call.status)}")
            if call.status in (CallStatus.RECEIVED, CallStatus.DISPATCHED):
                raise Conflict(f"no unit has reached {number} yet; cancel it instead")
            said = validation.disposition(why, self.dispositions)
            old = call.status
            active = steps.active(s, call.id)
            steps.lock_units(s, [u.code for _, u in active])
            for assignment, unit in active:
                was = unit.status
                column = "cancelled_at" if was == UnitStatus.EN_ROUTE else "cleared_at"
                steps.release(s, assignment, unit, column, at)
                self._audit(s, staff, "unit_released", call_id=call.id, unit_id=unit.id, old=was)
                next_calls.promote(s, staff, self.desk, unit, calls, at)
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values(status=CallStatus.CLOSED, closed_at=at, disposition=said)
            )
            next_calls.end_lined_up(s, staff, self.desk, call, at, "closed")
            self._audit(s, staff, "call_closed", call_id=call.id, old=old, disposition=said)
            return views.call(s, call.id)

        return write(self.sessions, work, once)

    def hospital_status(
        self,
        username: str,
        code: str,
        status: str | None = None,
        *,
        beds: int | str | None = None,
        once: Once | None = None,
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
            staff = steps.authorise(s, username, "hospital_status")
            hospital = s.scalar(select(Hospital).where(Hospital.code == hcode).with_for_update())
            if hospital is None:
                raise NotFound(f"no hospital {hcode}")
            old = hospital.status  # read before the UPDATE syncs the loaded object
            values: dict[str, Any] = {}
            if new_status is not None and new_status != old:
                values.update(status=new_status, status_since=steps.clock(s))
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
            return views.hospitals(s, ids=[hospital.id])[0]

        return write(self.sessions, work, once)
