"""The shared steps of write actions: permission, row locks in the fixed order, re-checks.

Every function takes the open Session of the action's transaction. Locks are always taken call
first, then units by id, so concurrent actions queue instead of deadlocking.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from dispatch_tui.db.models import (
    Assignment,
    AuditEntry,
    Call,
    Hospital,
    NarrativeEntry,
    Place,
    Queued,
    Staff,
    Unit,
)
from dispatch_tui.rules import lifecycle, permissions, validation
from dispatch_tui.rules.enums import UnitStatus
from dispatch_tui.rules.errors import Conflict, InvalidInput, NotFound
from dispatch_tui.service import lookups

# A row read before its lock may be stale in the identity map: a locking SELECT must overwrite it.
FRESH = {"populate_existing": True}

ACTIVE = (Assignment.cleared_at.is_(None), Assignment.cancelled_at.is_(None))


def ago(seconds: float) -> str:
    if seconds < 10:
        return "a moment ago"
    if seconds < 120:
        return f"{int(seconds)} s ago"
    if seconds < 7200:
        return f"{int(seconds // 60)} min ago"
    return f"{int(seconds // 3600)} h ago"


def authorise(s: Session, username: str, action: str, unit_id: int | None = None) -> Staff:
    staff = lookups.staff_row(s, username)
    own_unit = unit_id is not None and staff.unit_id == unit_id
    permissions.check(staff.username, staff.role, action, own_unit=own_unit)
    return staff


def authorise_on_call(s: Session, username: str, action: str, number: str) -> tuple[Staff, int]:
    """As `authorise`, for an action on a call (its id is returned with the staff row): a
    paramedic's own unit is the one they crew, if it is on this call now (an open assignment;
    migration 0009's row security agrees)."""
    staff = lookups.staff_row(s, username)
    call_id = lookups.call_id(s, number)
    own_unit = staff.unit_id is not None and (
        s.scalar(
            select(Assignment.id).where(
                Assignment.call_id == call_id, Assignment.unit_id == staff.unit_id, *ACTIVE
            )
        )
        is not None
    )
    permissions.check(staff.username, staff.role, action, own_unit=own_unit)
    return staff, call_id


def clock(s: Session) -> datetime:
    """The database clock, read after the locks are held.

    `now()` is the transaction's start: a transaction that waited for a lock would stamp a time
    earlier than the change it waited for. Every time an action records is this one reading.
    """
    at: datetime = s.execute(select(func.clock_timestamp())).scalar_one()
    return at


def lock_call(s: Session, number: str) -> Call:
    code = validation.call_number(number)
    call = s.scalar(
        select(Call).where(Call.number == code).with_for_update(), execution_options=FRESH
    )
    if call is None:
        raise NotFound(f"no call {code}")
    return call


def lock_units(s: Session, codes: Sequence[str]) -> list[Unit]:
    """Lock units by id order (the fixed order every action uses, so no deadlocks)."""
    query = select(Unit).where(Unit.code.in_(codes)).order_by(Unit.id).with_for_update()
    found = list(s.scalars(query, execution_options=FRESH))
    missing = sorted(set(codes) - {u.code for u in found})
    if missing:
        raise NotFound(f"no unit {', '.join(missing)}")
    return found


# What `dispatch_follow` needs of the lifecycle: the call status each unit status gives, in order.
CALL_RULES = json.dumps(
    {
        "call_for_unit": {u.value: c.value for u, c in lifecycle.CALL_FOR_UNIT.items()},
        "call_rank": {c.value: rank for rank, c in enumerate(lifecycle.CALL_ORDER, start=1)},
    },
    sort_keys=True,
)
_FOLLOW = text(
    "SELECT dispatch_follow(:call, :at, :staff, :operator, :desk, CAST(:rules AS jsonb))"
)
_END_LINED_UP = text("SELECT dispatch_end_lined_up(:call, :at, :staff, :operator, :desk, :why)")


def end_lined_up(s: Session, call_id: int, staff: Staff, desk: str, at: datetime, why: str) -> None:
    """End the queue entries lining units up for a call that ended (`dispatch_end_lined_up`)."""
    s.execute(
        _END_LINED_UP,
        {
            "call": call_id,
            "at": at,
            "staff": staff.id,
            "operator": staff.username,
            "desk": desk,
            "why": why,
        },
    )


def busy_text(
    code: str, status: str, number: str | None, who: str | None, seconds: float | None
) -> str:
    if status == UnitStatus.OUT_OF_SERVICE:
        return f"{code} is out of service"
    if number is None:
        return f"{code} is {lifecycle.label(status)}"
    return (
        f"{code} was dispatched to {number} by {who or 'another desk'} {ago(float(seconds or 0))}"
    )


def active(s: Session, call_id: int) -> list[tuple[Assignment, Unit]]:
    rows = s.execute(
        select(Assignment, Unit)
        .join(Unit, Unit.id == Assignment.unit_id)
        .where(Assignment.call_id == call_id, *ACTIVE)
        .order_by(Unit.id)
    ).all()
    return [(a, u) for a, u in rows]


def follow_units(s: Session, call_id: int, staff: Staff, desk: str, at: datetime) -> str | None:
    """Set the call's status from its active units (closing it when the last one cleared), with
    its audit row: `dispatch_follow` of migration 0010, with the rules of `lifecycle` as data.
    The call's new status, or None when it did not change. The caller holds the call's lock."""
    changed: str | None = s.execute(
        _FOLLOW,
        {
            "call": call_id,
            "at": at,
            "staff": staff.id,
            "operator": staff.username,
            "desk": desk,
            "rules": CALL_RULES,
        },
    ).scalar()
    return changed


def find_place(s: Session, name: str) -> Place:
    exact = s.scalar(select(Place).where(func.lower(Place.name) == name.lower()))
    if exact is not None:
        return exact
    pattern = name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    matches = list(s.scalars(select(Place).where(func.lower(Place.name).like(pattern)).limit(4)))
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NotFound(f"no named place '{name}'")
    raise InvalidInput(
        f"'{name}' matches several places: {', '.join(p.name for p in matches[:3])}…"
    )


def release(s: Session, assignment: Assignment, unit: Unit, column: str, at: datetime) -> None:
    s.execute(update(Assignment).where(Assignment.id == assignment.id).values({column: at}))
    s.execute(
        update(Unit).where(Unit.id == unit.id).values(status=UnitStatus.AVAILABLE, status_since=at)
    )


def code_of(s: Session, hospital_id: int | None) -> str | None:
    return (
        s.scalar(select(Hospital.code).where(Hospital.id == hospital_id)) if hospital_id else None
    )


def lock_unit_on_call(
    s: Session, code: str
) -> tuple[Unit, Call | None, Assignment | None, dict[int, Call]]:
    """Lock a unit and the call it is on, in the shared order (calls first, then the unit); also
    the call it is lined up for, which is returned with the other in the last item (by id).

    The unit's call is looked up unlocked first; after both locks the assignment is read again,
    and if the unit moved to another call in between, the caller is told to look again.
    """
    unit_id = lookups.unit_id(s, code)
    seen = s.scalar(select(Assignment.call_id).where(Assignment.unit_id == unit_id, *ACTIVE))
    # The call the unit is lined up for is locked too, before the unit (the shared order): if
    # this change clears the unit, it goes there (`promote`).
    queued = queued_calls(s, [unit_id])
    calls = lock_calls(s, [c for c in (seen, *queued.values()) if c is not None])
    call = calls.get(seen) if seen is not None else None
    (unit,) = lock_units(s, [code])
    assignment = s.scalar(
        select(Assignment).where(Assignment.unit_id == unit_id, *ACTIVE), execution_options=FRESH
    )
    if (assignment.call_id if assignment else None) != seen:
        raise Conflict(f"{code} changed at another desk a moment ago; look again")
    # A busy unit has its assignment and its call from here on (a direct SQL change can part them).
    lifecycle.check_consistent(code, unit.status, call.number if call else None)
    return unit, call, assignment, calls


def audit(
    s: Session,
    staff: Staff,
    desk: str,
    action: str,
    *,
    call_id: int | None = None,
    unit_id: int | None = None,
    hospital_id: int | None = None,
    **details: Any,
) -> None:
    """Append one audit row in the action's own transaction."""
    s.execute(
        insert(AuditEntry).values(
            # The clock now, not the transaction start: an action that waited for a lock must
            # not be logged before the change it waited for.
            at=func.clock_timestamp(),
            operator_id=staff.id,
            operator=staff.username,
            desk=desk,
            action=action,
            call_id=call_id,
            unit_id=unit_id,
            hospital_id=hospital_id,
            details=details,
        )
    )


def narrate(
    s: Session,
    staff: Staff,
    desk: str,
    call_id: int,
    text: str,
    *,
    kind: str = "event",
    corrects: int | None = None,
) -> int:
    """Append one narrative entry to a call, in the action's own transaction; its id."""
    entry_id: int = s.execute(
        insert(NarrativeEntry)
        .values(
            call_id=call_id,
            operator_id=staff.id,
            operator=staff.username,
            desk=desk,
            kind=kind,
            body=text,
            corrects_id=corrects,
        )
        .returning(NarrativeEntry.id)
    ).scalar_one()
    return entry_id


def lock_calls(s: Session, ids: Sequence[int]) -> dict[int, Call]:
    """Lock calls in id order (the order every action that takes several uses)."""
    if not ids:
        return {}
    query = select(Call).where(Call.id.in_(sorted(set(ids)))).order_by(Call.id).with_for_update()
    return {c.id: c for c in s.scalars(query, execution_options=FRESH)}


def queued_calls(s: Session, unit_ids: Sequence[int]) -> dict[int, int]:
    """The call each of these units is lined up for (unit id -> call id), read unlocked: the
    caller locks those calls, in order, before the units."""
    if not unit_ids:
        return {}
    rows = s.execute(
        select(Queued.unit_id, Queued.call_id).where(
            Queued.unit_id.in_(unit_ids), Queued.ended_at.is_(None)
        )
    ).all()
    return {u: c for u, c in rows}
