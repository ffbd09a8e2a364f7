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

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.db import views
from dispatch_tui.db.engine import DriverConnections
from dispatch_tui.db.models import (
    Assignment,
    Call,
    CallAnswer,
    Hospital,
    NarrativeEntry,
    Queued,
    Staff,
    Unit,
)
from dispatch_tui.rules import lifecycle, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.enums import CallStatus, HospitalStatus, UnitStatus
from dispatch_tui.rules.errors import (
    AlreadyDone,
    Conflict,
    InvalidInput,
    NotFound,
)
from dispatch_tui.rules.views import (
    AnswerTicket,
    CallView,
    Dispatched,
    HospitalView,
    UnitView,
)
from dispatch_tui.service import dispatch as dispatching
from dispatch_tui.service import lookups, request_ids, steps
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.service.transactions import db_errors, write

log = logging.getLogger(__name__)
T = TypeVar("T")

# How long after its end a closed or cancelled call may be re-opened (by default).
REOPEN_HOURS = 24.0


class DispatchService(ReadService):
    """Every write action: one transaction each, locks in a fixed order, audit rows included.

    Each takes an optional `once`, the write's request id: a write carried out before under the
    same id raises `AlreadyDone` instead of acting twice (`service/request_ids.py`)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        desk: str = "cli",
        *,
        dispositions: tuple[str, ...] = validation.DISPOSITIONS,
        reopen_hours: float = REOPEN_HOURS,
    ) -> None:
        super().__init__(sessions, desk)
        # What a close may say happened, and how long after its end a call may be re-opened.
        self.dispositions = dispositions
        self.reopen_window = timedelta(hours=reopen_hours)
        # The connections the one-statement dispatch runs on (see db/engine.py).
        self.statements = DriverConnections.of(sessions.kw["bind"])

    def _follow(self, s: Session, call: Call, staff: Staff, at: datetime) -> None:
        change = steps.follow_units(s, call, at)
        if change is not None:
            self._audit(s, staff, "call_status", call_id=call.id, old=change[0], new=change[1])
            if change[1] == CallStatus.CLOSED:
                _end_lined_up(s, staff, self.desk, call, at, "closed")

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
        steps.audit(
            s,
            staff,
            self.desk,
            action,
            call_id=call_id,
            unit_id=unit_id,
            hospital_id=hospital_id,
            **details,
        )

    def resolve(self, once: Once) -> AlreadyDone | None:
        """Whether the write sent under `once` went through (what it made), or not (None, and
        now it never will): see `request_ids.resolve`."""
        with db_errors(), self.sessions.kw["bind"].connect() as conn:
            return request_ids.resolve(conn, once)

    # -- writes -----------------------------------------------------------------------------------

    def create_call(
        self, username: str, raw: validation.CallIntake, once: Once | None = None
    ) -> CallView:
        data = validation.intake(raw)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "create_call")
            if raw.answered is not None:
                _check_answer(s, raw.answered, staff)
            place = None
            if data.place:
                place = steps.find_place(s, data.place)
            position = data.position or ((place.lat, place.lon) if place else None)
            location = data.location or (f"{place.name}, {place.address}" if place else "")
            call_id = s.execute(
                insert(Call)
                .values(
                    caller_name=data.caller_name,
                    caller_phone=data.caller_phone,
                    location_text=location[: validation.LOCATION_MAX],
                    lat=position[0] if position else None,
                    lon=position[1] if position else None,
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
            return views.call(s, call_id)

        return write(self.sessions, work, once)

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

    def unit_status(
        self,
        username: str,
        unit_code: str,
        status: str,
        *,
        hospital: str | None = None,
        override_diversion: bool = False,
        reason: str = "",
        once: Once | None = None,
    ) -> UnitView:
        code = validation.unit_code(unit_code)
        why = validation.reason("reason", reason)
        try:
            target = UnitStatus(status.strip().upper())
        except ValueError:
            raise InvalidInput(f"'{status[:24]}' is not a unit status") from None
        hcode = validation.hospital_code(hospital) if hospital else None

        def work(s: Session) -> UnitView:
            staff = steps.authorise(s, username, "unit_status", lookups.unit_id(s, code))
            unit, call, assignment, calls = steps.lock_unit_on_call(s, code)
            at = steps.clock(s)
            current = UnitStatus(unit.status)
            reported = bool(assignment and assignment.en_route_at)
            step = lifecycle.unit_step(code, current, target, reported)
            values: dict[str, Any] = {}
            dest: int | None = None
            # Every step with a time column or a destination starts from a busy status, and
            # lock_unit_on_call has refused a busy unit on no call: these hold.
            if step.needs_destination:
                assert assignment is not None and call is not None
                chosen = hcode or steps.code_of(
                    s, assignment.hospital_id or call.destination_hospital_id
                )
                if not chosen:
                    raise InvalidInput(f"{code} needs a destination hospital to transport")
                # A destination chosen at dispatch that has since gone on diversion is refused
                # like a new choice would be: someone must see the diversion and decide.
                dest = dispatching.GATE.destination(
                    s, chosen, override_diversion=override_diversion
                )
                values["hospital_id"] = dest
            if step.time_column:
                assert assignment is not None
                values[step.time_column] = at
                s.execute(update(Assignment).where(Assignment.id == assignment.id).values(**values))
            if target != current:
                s.execute(
                    update(Unit).where(Unit.id == unit.id).values(status=target, status_since=at)
                )
            self._audit(
                s,
                staff,
                "unit_status",
                call_id=call.id if call else None,
                unit_id=unit.id,
                hospital_id=dest,
                old=current.value,
                new=target.value,
                # The statuses as stored, and the change in the words every screen uses: the
                # crew's en-route report leaves the status EN_ROUTE and reads "dispatched → en
                # route" (a status change to EN_ROUTE is always that report).
                change=f"{lifecycle.unit_label(current, reported)} → "
                f"{lifecycle.unit_label(target, en_route_reported=True)}",
                **({"reason": why} if why else {}),
            )
            if call is not None:
                if dest is not None and call.destination_hospital_id is None:
                    s.execute(
                        update(Call).where(Call.id == call.id).values(destination_hospital_id=dest)
                    )
                self._follow(s, call, staff, at)
            if step.ends_assignment:
                _promote(s, staff, self.desk, unit, calls, at)  # its next call, if lined up
            return views.unit(s, unit.id)

        return write(self.sessions, work, once)

    def locate_unit(
        self,
        username: str,
        unit_code: str,
        lat: float | str,
        lon: float | str,
        once: Once | None = None,
    ) -> UnitView:
        code = validation.unit_code(unit_code)
        position = validation.coordinate(lat, lon)

        def work(s: Session) -> UnitView:
            unit_id = lookups.unit_id(s, code)
            staff = steps.authorise(s, username, "locate_unit", unit_id)
            # Only the position columns: a stale whole-row save once undid a dispatch.
            s.execute(
                update(Unit)
                .where(Unit.id == unit_id)
                .values(lat=position[0], lon=position[1], position_at=func.clock_timestamp())
            )
            self._audit(
                s, staff, "unit_position", unit_id=unit_id, lat=position[0], lon=position[1]
            )
            return views.unit(s, unit_id)

        return write(self.sessions, work, once)

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
            _promote(s, staff, self.desk, unit, calls, at)
            return views.call(s, call.id)

        return write(self.sessions, work, once)

    def cancel_call(
        self, username: str, call_number: str, reason: str = "", once: Once | None = None
    ) -> CallView:
        number = validation.call_number(call_number)
        why = validation.text_field("reason", reason, 200)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "cancel")
            call, calls = _lock_call_and_next(s, number)
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
                _promote(s, staff, self.desk, unit, calls, at)
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values(
                    status=CallStatus.CANCELLED,
                    cancelled_at=at,
                    disposition=why or "cancelled",
                )
            )
            _end_lined_up(s, staff, self.desk, call, at, "cancelled")
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
            call, calls = _lock_call_and_next(s, number)
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
                _promote(s, staff, self.desk, unit, calls, at)
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values(status=CallStatus.CLOSED, closed_at=at, disposition=said)
            )
            _end_lined_up(s, staff, self.desk, call, at, "closed")
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

    def divert(
        self,
        username: str,
        unit_code: str,
        call_number: str,
        reason: str = "",
        once: Once | None = None,
    ) -> CallView:
        """Take a unit from its call to another, in one transaction: its assignment there ends
        (cancelled on the way; cleared once at the hospital), its times kept; a new one starts
        with its own notified time; the old call goes back to pending if no unit is left on it.

        From en route (dispatched or reported) or at the hospital only: a unit with a patient is
        not diverted. Both calls are locked in id order, then the unit, so two diverts that cross
        (M1 to the other's call, M2 to the first's) queue instead of deadlocking."""
        code = validation.unit_code(unit_code)
        number = validation.call_number(call_number)
        why = validation.reason("reason", reason)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "dispatch")
            unit_id = lookups.unit_id(s, code)
            to_id = lookups.call_id(s, number)
            seen = s.scalar(
                select(Assignment.call_id).where(Assignment.unit_id == unit_id, *steps.ACTIVE)
            )
            if seen is None:
                status = s.scalar(select(Unit.status).where(Unit.id == unit_id)) or ""
                raise Conflict(
                    f"{code} is {lifecycle.label(status)}, on no call: dispatch it instead "
                    f"(d {number} {code})"
                )
            if seen == to_id:
                raise Conflict(f"{code} is on {number} already")
            calls = {
                c.id: c
                for c in s.scalars(
                    select(Call)
                    .where(Call.id.in_([seen, to_id]))
                    .order_by(Call.id)
                    .with_for_update(),
                    execution_options=steps.FRESH,
                )
            }
            (unit,) = steps.lock_units(s, [code])
            assignment = s.scalar(
                select(Assignment).where(Assignment.unit_id == unit_id, *steps.ACTIVE),
                execution_options=steps.FRESH,
            )
            if assignment is None or assignment.call_id != seen:
                raise Conflict(f"{code} changed at another desk a moment ago; look again")
            source, target = calls[seen], calls[to_id]
            lifecycle.check_consistent(code, unit.status, source.number)
            if not CallStatus(target.status).is_open:
                raise Conflict(f"{number} is {lifecycle.label(target.status)}")
            state = UnitStatus(unit.status)
            if state in (UnitStatus.ON_SCENE, UnitStatus.TRANSPORTING):
                raise Conflict(
                    f"{code} is {lifecycle.label(state)} on {source.number}: a unit with its "
                    "patient is not diverted (en route or at the hospital only)"
                )
            at = steps.clock(s)
            # On its way: the assignment is cancelled. At the hospital (the patient handed
            # over): the unit is back in service for that call, which is its clear time.
            ended = "cancelled_at" if state == UnitStatus.EN_ROUTE else "cleared_at"
            s.execute(update(Assignment).where(Assignment.id == assignment.id).values({ended: at}))
            dispatching.start_assignment(
                s, target.id, unit.id, staff.id, at, paramedic_id=assignment.paramedic_id
            )
            s.execute(
                update(Unit)
                .where(Unit.id == unit.id)
                .values(status=UnitStatus.EN_ROUTE, status_since=at)
            )
            # Lined up to come here next: it comes now, and the entry ends.
            s.execute(
                update(Queued)
                .where(
                    Queued.unit_id == unit.id,
                    Queued.call_id == target.id,
                    Queued.ended_at.is_(None),
                )
                .values(ended_at=at, end_reason="diverted here")
            )
            first = target.first_dispatched_at is None
            s.execute(
                update(Call)
                .where(Call.id == target.id)
                .values(
                    status=CallStatus.DISPATCHED
                    if target.status == CallStatus.RECEIVED
                    else target.status,
                    first_dispatched_at=at if first else target.first_dispatched_at,
                    dispatched_by_id=staff.id if first else target.dispatched_by_id,
                )
            )
            words = f"diverted to {number}" + (f": {why}" if why else "")
            self._audit(
                s,
                staff,
                "unit_diverted",
                call_id=source.id,
                unit_id=unit.id,
                reason=words,
                old=state.value,
                to=number,
            )
            self._audit(
                s,
                staff,
                "dispatch",
                call_id=target.id,
                unit_id=unit.id,
                diverted_from=source.number,
                added=not first,
            )
            self._follow(s, source, staff, at)
            steps.narrate(s, staff, self.desk, source.id, f"{code} {words} by {staff.username}")
            steps.narrate(
                s, staff, self.desk, target.id, f"{code} diverted here from {source.number}"
            )
            return views.call(s, target.id)

        return write(self.sessions, work, once)

    def queue(
        self, username: str, unit_code: str, call_number: str, once: Once | None = None
    ) -> UnitView:
        """Line up a busy unit's next call: a pending call it goes to when it clears (in the
        clearing transaction, `_promote`). At most one per unit; the call stays pending,
        its clocks running, until then."""
        code = validation.unit_code(unit_code)
        number = validation.call_number(call_number)

        def work(s: Session) -> UnitView:
            staff = steps.authorise(s, username, "dispatch")
            unit_id = lookups.unit_id(s, code)
            call_id = lookups.call_id(s, number)
            seen = s.scalar(
                select(Assignment.call_id).where(Assignment.unit_id == unit_id, *steps.ACTIVE)
            )
            calls = steps.lock_calls(s, [call_id, *([seen] if seen is not None else [])])
            (unit,) = steps.lock_units(s, [code])
            now_on = s.scalar(
                select(Assignment.call_id).where(Assignment.unit_id == unit_id, *steps.ACTIVE)
            )
            if now_on != seen:  # moved between the first look and the locks
                raise Conflict(f"{code} changed at another desk a moment ago; look again")
            target = calls[call_id]
            state = UnitStatus(unit.status)
            if state == UnitStatus.AVAILABLE:
                raise Conflict(f"{code} is available: dispatch it now (d {number} {code})")
            if state == UnitStatus.OUT_OF_SERVICE:
                raise Conflict(f"{code} is out of service")
            if seen == call_id:
                raise Conflict(f"{code} is on {number} already")
            if target.status != CallStatus.RECEIVED:
                raise Conflict(
                    f"{number} is {lifecycle.label(target.status)}: only a pending call is "
                    "lined up for a busy unit"
                )
            lined = s.scalar(
                select(Call.number)
                .join(Queued, Queued.call_id == Call.id)
                .where(Queued.unit_id == unit_id, Queued.ended_at.is_(None))
            )
            if lined is not None:
                raise Conflict(f"{code} already has {lined} lined up; unqueue {code} first")
            s.execute(
                insert(Queued).values(unit_id=unit_id, call_id=call_id, queued_by_id=staff.id)
            )
            self._audit(s, staff, "unit_queued", call_id=call_id, unit_id=unit_id)
            clears = calls[seen].number if seen is not None else "its call"
            steps.narrate(
                s,
                staff,
                self.desk,
                call_id,
                f"{code} lined up to come here when it clears {clears}, by {staff.username}",
            )
            return views.unit(s, unit_id)

        return write(self.sessions, work, once)

    def unqueue(self, username: str, unit_code: str, once: Once | None = None) -> UnitView:
        """Take back a unit's lined-up next call."""
        code = validation.unit_code(unit_code)

        def work(s: Session) -> UnitView:
            staff = steps.authorise(s, username, "dispatch")
            unit_id = lookups.unit_id(s, code)
            calls = steps.lock_calls(s, list(steps.queued_calls(s, [unit_id]).values()))
            steps.lock_units(s, [code])
            entry = s.scalar(
                select(Queued)
                .where(Queued.unit_id == unit_id, Queued.ended_at.is_(None))
                .with_for_update(),
                execution_options=steps.FRESH,
            )
            if entry is None:
                raise Conflict(f"{code} has no call lined up")
            if entry.call_id not in calls:
                raise Conflict(
                    f"{code}'s next call changed at another desk a moment ago; look again"
                )
            at = steps.clock(s)
            why = f"taken back by {staff.username}"
            s.execute(
                update(Queued).where(Queued.id == entry.id).values(ended_at=at, end_reason=why)
            )
            self._audit(s, staff, "queue_ended", call_id=entry.call_id, unit_id=unit_id, reason=why)
            return views.unit(s, unit_id)

        return write(self.sessions, work, once)

    # -- the call record --------------------------------------------------------------------------

    def answer(self, username: str) -> AnswerTicket:
        """Record that `username` answered a call (the intake form opened), by the database's
        clock: the call taken from the form is received then (`CallIntake.answered`)."""

        def work(s: Session) -> AnswerTicket:
            staff = steps.authorise(s, username, "create_call")
            row = s.execute(
                insert(CallAnswer)
                .values(operator_id=staff.id, desk=self.desk)
                .returning(CallAnswer.id, CallAnswer.at)
            ).one()
            return AnswerTicket(int(row[0]), row[1])

        return write(self.sessions, work)

    def add_note(
        self,
        username: str,
        call_number: str,
        text: str,
        *,
        corrects: int | str | None = None,
        once: Once | None = None,
    ) -> CallView:
        """Append a note to a call's narrative (open or ended). `corrects`: the id of an entry
        of the same call this one corrects (the narrative is never changed)."""
        number = validation.call_number(call_number)
        body = validation.note(text)
        fixes = _entry_id(corrects) if corrects is not None else None

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "note")
            call_id = lookups.call_id(s, number)
            if fixes is not None:
                of = s.scalar(select(NarrativeEntry.call_id).where(NarrativeEntry.id == fixes))
                if of != call_id:
                    raise NotFound(f"{number} has no narrative entry #{fixes}")
            steps.narrate(s, staff, self.desk, call_id, body, kind="note", corrects=fixes)
            return views.call(s, call_id)

        return write(self.sessions, work, once)

    def update_call(
        self,
        username: str,
        call_number: str,
        raw: validation.CallChanges,
        once: Once | None = None,
    ) -> CallView:
        """Change an open call's priority, determinant, nature, location or caller: one locked
        transaction writing only the columns that change, an audit row (old → new) and a
        narrative line ("priority 3 → 1 by alice")."""
        number = validation.call_number(call_number)
        edit = validation.changes(raw)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "update_call")
            call = steps.lock_call(s, number)
            if not CallStatus(call.status).is_open:
                raise Conflict(
                    f"{number} is {lifecycle.label(call.status)}; re-open it to change it"
                )
            wanted = dict(edit.values)
            if edit.place:
                place = steps.find_place(s, edit.place)
                wanted["place_id"] = place.id
                wanted["location_text"] = f"{place.name}, {place.address}"[
                    : validation.LOCATION_MAX
                ]
                wanted.setdefault("lat", place.lat)
                wanted.setdefault("lon", place.lon)
            elif "location_text" in wanted:
                # A location typed anew is no longer the named place, nor where it was: without
                # coordinates of its own, the old ones would rank units for the wrong place.
                wanted["place_id"] = None
                wanted.setdefault("lat", None)
                wanted.setdefault("lon", None)
            changed = {
                column: (getattr(call, column), value)
                for column, value in wanted.items()
                if getattr(call, column) != value
            }
            told = {k: v for k, v in changed.items() if k != "place_id"}
            if not told:
                raise InvalidInput(f"{number} has those values already; nothing to change")
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values({column: new for column, (_, new) in changed.items()})
            )
            self._audit(
                s,
                staff,
                "call_updated",
                call_id=call.id,
                changes={column: [old, new] for column, (old, new) in told.items()},
            )
            words = "; ".join(_change(column, old, new) for column, (old, new) in told.items())
            steps.narrate(s, staff, self.desk, call.id, f"{words} by {staff.username}")
            return views.call(s, call.id)

        return write(self.sessions, work, once)

    def reopen_call(
        self, username: str, call_number: str, reason: str, once: Once | None = None
    ) -> CallView:
        """Re-open a closed or cancelled call that ended within the window, with a reason: it
        is pending again, its history intact (audited, and told in its narrative)."""
        number = validation.call_number(call_number)
        why = validation.reason("reason", reason, required=True)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "reopen_call")
            call = steps.lock_call(s, number)
            if CallStatus(call.status).is_open:
                raise Conflict(f"{number} is {lifecycle.label(call.status)}, not closed")
            at = steps.clock(s)
            ended = call.closed_at or call.cancelled_at
            assert ended is not None, "an ended call has its end time (ck_calls_end_times)"
            if at - ended > self.reopen_window:
                hours = self.reopen_window.total_seconds() / 3600
                raise Conflict(
                    f"{number} ended {steps.ago((at - ended).total_seconds())}; only a call "
                    f"that ended in the last {hours:g} h can be re-opened (take a new call)"
                )
            old, disposition = call.status, call.disposition
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values(
                    status=CallStatus.RECEIVED,
                    closed_at=None,
                    cancelled_at=None,
                    disposition=None,
                    reopened_at=at,
                )
            )
            self._audit(
                s, staff, "call_reopened", call_id=call.id, old=old, reason=why, was=disposition
            )
            was = f" ({disposition})" if disposition else ""
            text = f"re-opened, was {lifecycle.label(old)}{was}: {why} by {staff.username}"
            steps.narrate(s, staff, self.desk, call.id, text)
            return views.call(s, call.id)

        return write(self.sessions, work, once)


# How an edited field is named in the narrative.
_FIELD_NAMES = {
    "location_text": "location",
    "caller_name": "caller",
    "caller_phone": "phone",
}


def _end_lined_up(
    s: Session, staff: Staff, desk: str, call: Call, at: datetime, ended: str
) -> None:
    """A call that ends ends the entries lining units up for it (under its lock, which every
    clear of those units takes first), so that no unit waits for a call that will not come."""
    why = f"{call.number} was {ended}"
    rows = (
        s.execute(
            update(Queued)
            .where(Queued.call_id == call.id, Queued.ended_at.is_(None))
            .values(ended_at=at, end_reason=why)
            .returning(Queued.unit_id)
        )
        .scalars()
        .all()
    )
    for unit_id in rows:
        steps.audit(s, staff, desk, "queue_ended", call_id=call.id, unit_id=unit_id, reason=why)


def _lock_call_and_next(s: Session, number: str) -> tuple[Call, dict[int, Call]]:
    """Lock a call that is about to release its units, with the calls those units are lined up
    for (they go on to them), in id order, before any unit."""
    call_id = lookups.call_id(s, number)
    on_it = s.scalars(
        select(Assignment.unit_id).where(Assignment.call_id == call_id, *steps.ACTIVE)
    ).all()
    calls = steps.lock_calls(s, [call_id, *steps.queued_calls(s, list(on_it)).values()])
    return calls[call_id], calls


def _change(column: str, old: object, new: object) -> str:
    def shown(value: object) -> str:
        if value is None or value == "":
            return "—"
        return f"'{value}'" if isinstance(value, str) and column != "determinant" else str(value)

    return f"{_FIELD_NAMES.get(column, column)} {shown(old)} → {shown(new)}"


def _entry_id(value: int | str) -> int:
    text = str(value).strip().lstrip("#")
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f"'{str(value)[:24]}' is not a narrative entry number")
    return int(text)


def _check_answer(s: Session, answer_id: int, staff: Staff) -> None:
    """The intake form's answer: this operator's, and not yet taken as a call."""
    row = s.execute(
        select(CallAnswer.operator_id, Call.number)
        .outerjoin(Call, Call.answer_id == CallAnswer.id)
        .where(CallAnswer.id == answer_id)
    ).one_or_none()
    if row is None or row[0] != staff.id:
        raise InvalidInput(f"no call answer {answer_id} of {staff.username}")
    if row[1] is not None:
        raise Conflict(f"that call was taken already, as {row[1]}")


def _promote(
    s: Session, staff: Staff, desk: str, unit: Unit, calls: dict[int, Call], at: datetime
) -> str | None:
    """A unit just cleared: dispatch it to the call it was lined up for, if that call is still
    pending, else end its queue entry with the reason; what happened, in words (None: nothing
    was lined up). The queued call must be among the `calls` the caller locked."""
    entry = s.scalar(
        select(Queued)
        .where(Queued.unit_id == unit.id, Queued.ended_at.is_(None))
        .with_for_update(),
        execution_options=steps.FRESH,
    )
    if entry is None:
        return None
    call = calls.get(entry.call_id)
    if call is None:
        raise Conflict(f"{unit.code}'s next call changed at another desk a moment ago; look again")
    if call.status != CallStatus.RECEIVED:
        why = (
            f"{call.number} is {lifecycle.label(call.status)}"
            if not CallStatus(call.status).is_open
            else f"{call.number} had another unit"
        )
        s.execute(update(Queued).where(Queued.id == entry.id).values(ended_at=at, end_reason=why))
        steps.audit(s, staff, desk, "queue_ended", call_id=call.id, unit_id=unit.id, reason=why)
        return f"{unit.code} available: its next call ended ({why})"
    assignment_id = dispatching.start_assignment(s, call.id, unit.id, entry.queued_by_id, at)
    s.execute(
        update(Unit).where(Unit.id == unit.id).values(status=UnitStatus.EN_ROUTE, status_since=at)
    )
    first = call.first_dispatched_at is None
    s.execute(
        update(Call)
        .where(Call.id == call.id)
        .values(
            status=CallStatus.DISPATCHED,
            first_dispatched_at=at if first else call.first_dispatched_at,
            dispatched_by_id=entry.queued_by_id if first else call.dispatched_by_id,
        )
    )
    s.execute(
        update(Queued)
        .where(Queued.id == entry.id)
        .values(ended_at=at, end_reason="dispatched", assignment_id=assignment_id)
    )
    steps.audit(s, staff, desk, "dispatch", call_id=call.id, unit_id=unit.id, queued=True)
    return f"{unit.code} on to its next call, {call.number}"
