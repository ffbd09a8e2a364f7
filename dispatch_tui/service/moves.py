"""Moving units between calls: divert, and lining up a busy unit's next call.

Both calls are locked in id order, then the unit, as every action does; a lined-up call is
dispatched as its unit clears (`next_calls.promote`).
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from dispatch_tui.db import views
from dispatch_tui.db.models import Assignment, Call, Queued, Unit
from dispatch_tui.rules import lifecycle, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.enums import CallStatus, UnitStatus
from dispatch_tui.rules.errors import Conflict
from dispatch_tui.rules.views import CallView, UnitView
from dispatch_tui.service import dispatch as dispatching
from dispatch_tui.service import lookups, steps
from dispatch_tui.service.transactions import write
from dispatch_tui.service.writer import Writer


class UnitMoves(Writer):
    """Divert, queue and unqueue."""

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
        clearing transaction, `next_calls.promote`). At most one per unit; the call stays pending,
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
