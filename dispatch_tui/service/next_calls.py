"""A unit's next call (stacked calls): what happens to it when calls end and units clear.

The callers hold the locks: the calls (in id order, `lock_call_and_next` takes a call with the
calls its units are lined up for) before the units.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from dispatch_tui.db.models import Assignment, Call, Staff, Unit
from dispatch_tui.rules.errors import Conflict
from dispatch_tui.service import lookups, sql_functions, steps

_PROMOTE = text(
    "SELECT dispatch_promote(:unit, :locked, :at, :staff, :operator, :desk, CAST(:rules AS jsonb))"
).bindparams(bindparam("locked", type_=ARRAY(Integer)))


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
) -> None:
    """A unit just cleared: dispatch it to the call it was lined up for, if that call is still
    pending, else end its queue entry with the reason (`dispatch_promote`, migration 0010, the
    one writer of it). The queued call must be among the `calls` the caller locked."""
    done = s.execute(
        _PROMOTE,
        {
            "unit": unit.id,
            "locked": list(calls),
            "at": at,
            "staff": staff.id,
            "operator": staff.username,
            "desk": desk,
            "rules": sql_functions.RULES,
        },
    ).scalar()
    if done == "moved":
        raise Conflict(f"{unit.code}'s next call changed at another desk a moment ago; look again")
