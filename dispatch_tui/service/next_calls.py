"""A unit's next call (stacked calls): what happens to it when calls end and units clear.

The callers hold the locks: the calls (in id order, `lock_call_and_next` takes a call with the
calls its units are lined up for) before the units.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from dispatch_tui.db.models import Assignment, Call, Queued, Staff, Unit
from dispatch_tui.rules import lifecycle
from dispatch_tui.rules.enums import CallStatus, UnitStatus
from dispatch_tui.rules.errors import Conflict
from dispatch_tui.service import dispatch as dispatching
from dispatch_tui.service import lookups, steps


def end_lined_up(s: Session, staff: Staff, desk: str, call: Call, at: datetime, ended: str) -> None:
    """A call that ends ends the entries lining units up for it (under its lock, which every
    clear of those units takes first), so that no unit waits for a call that will not come."""
    steps.end_lined_up(s, call.id, staff, desk, at, f"{call.number} was {ended}")


def lock_call_and_next(s: Session, number: str) -> tuple[Call, dict[int, Call]]:
    """Lock a call that is about to release its units, with the calls those units are lined up
    for (they go on to them), in id order, before any unit."""
    call_id = lookups.call_id(s, number)
    on_it = s.scalars(
        select(Assignment.unit_id).where(Assignment.call_id == call_id, *steps.ACTIVE)
    ).all()
    calls = steps.lock_calls(s, [call_id, *steps.queued_calls(s, list(on_it)).values()])
    return calls[call_id], calls


def promote(
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
