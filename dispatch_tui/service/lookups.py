"""Finding a row by what a person types (a call number, a unit code, a user name), written once.

Each returns the row or its id, or raises the one refusal a dispatcher sees when it is not there.
Codes are validated first, so a lookup never echoes unchecked input.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dispatch_tui.db.models import Call, Staff, Unit
from dispatch_tui.rules import validation
from dispatch_tui.rules.errors import Forbidden, NotFound


def call_id(s: Session, number: str) -> int:
    """The id of call `number` (`C-1042`, `c1042` or `1042`), else NotFound."""
    canonical = validation.call_number(number)
    found = s.scalar(select(Call.id).where(Call.number == canonical))
    if found is None:
        raise NotFound(f"no call {canonical}")
    return found


def unit_id(s: Session, code: str) -> int:
    """The id of unit `code`, else NotFound."""
    canonical = validation.unit_code(code)
    found = s.scalar(select(Unit.id).where(Unit.code == canonical))
    if found is None:
        raise NotFound(f"no unit {canonical}")
    return found


def staff_row(s: Session, username: str) -> Staff:
    """The active staff member with this user name (case-insensitive), else Forbidden."""
    name = validation.username(username)
    row = s.scalar(select(Staff).where(func.lower(Staff.username) == name.lower()))
    if row is None or not row.active:
        raise not_an_operator(name)
    return row


def not_an_operator(name: str) -> Forbidden:
    return Forbidden(f"'{name}' is not an active operator of this service")
