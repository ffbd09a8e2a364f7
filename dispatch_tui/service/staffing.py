"""Staff and their database logins: `dispatch-tui admin add-operator`.

A staff row and its PostgreSQL login are created in one transaction (role DDL is transactional
in PostgreSQL), so there is never a login without a staff member or the reverse. The login is
made by `dispatch_create_login()` (migration 0004), which a supervisor's or an admin's own
login may run: it makes only new logins, each in the group of its staff row's role
(`dispatch_dispatcher`, ...) and in `dispatch_board`, which the board narrows its sessions to.

A wall display gets a board login (`--role board`): no staff row, only `dispatch_board`, so
nothing its sessions do can write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from dispatch_tui.db import views
from dispatch_tui.db.models import Staff
from dispatch_tui.rules import validation
from dispatch_tui.rules.enums import Role
from dispatch_tui.rules.errors import Conflict, Forbidden, InvalidInput
from dispatch_tui.rules.validation import NAME_MAX
from dispatch_tui.rules.views import Operator
from dispatch_tui.service import lookups, steps
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.transactions import write

# Not a staff role: the login of a wall display, which can only read.
BOARD = "board"
ROLES = (*(r.value for r in Role), BOARD)


def wall_display(login: str) -> Operator:
    """Who a board login is on the board's status line: no one on the staff list (id 0)."""
    return Operator(0, login, "wall display", BOARD, None)


def add_operator(
    service: DispatchService,
    admin: str,
    username: str,
    role: str,
    *,
    full_name: str = "",
    unit: str | None = None,
    password: str | None = None,
    login: bool = True,
) -> Operator:
    """Add a staff member (and their login), or with role `board` a wall display's login."""
    name = validation.username(username)
    wanted = role.strip().lower()
    if wanted not in ROLES:
        raise InvalidInput(f"'{role[:24]}' is not a role ({', '.join(ROLES)})")
    board = wanted == BOARD
    full = validation.text_field("full name", full_name, NAME_MAX) or name
    unit_code = validation.unit_code(unit) if unit else None
    if unit_code and wanted != Role.PARAMEDIC:
        raise InvalidInput("only a paramedic crews a unit")
    if board and not login:
        raise InvalidInput("a board login is only a login: --no-login leaves nothing to add")
    secret = validation.text_field("password", password, 200) if password else None

    def work(s: Session) -> Operator:
        boss = steps.authorise(s, admin, "add_operator")
        if s.scalar(select(Staff.id).where(func.lower(Staff.username) == name.lower())) is not None:
            raise Conflict(f"{name} is already an operator")
        if board:
            _create_login(s, name, secret, board=True)
            steps.audit(s, boss, service.desk, "board_login_added", username=name)
            return wall_display(name)
        unit_id = lookups.unit_id(s, unit_code) if unit_code else None
        with _refused("add staff"):
            staff_id = s.execute(
                insert(Staff)
                .values(username=name, full_name=full, role=wanted, unit_id=unit_id)
                .returning(Staff.id)
            ).scalar_one()
        if login:
            _create_login(s, name, secret, board=False)
        steps.audit(
            s, boss, service.desk, "operator_added", username=name, role=wanted, login=login
        )
        row = s.get(Staff, staff_id)
        assert row is not None
        return views.operator(row)

    return write(service.sessions, work)


def _create_login(s: Session, name: str, password: str | None, *, board: bool) -> None:
    """The login, made by the database's own function: bound parameters, no DDL built here."""
    with _refused("make logins"):
        s.execute(
            text("SELECT dispatch_create_login(:login, :board, :secret)"),
            {"login": name, "board": board, "secret": password},
        )


@contextmanager
def _refused(what: str) -> Iterator[None]:
    """What PostgreSQL refuses this login, as the one line the CLI prints (exit 5; 4 when the
    login exists already); anything else propagates."""
    try:
        yield
    except DBAPIError as err:
        cause = err.orig
        said = getattr(getattr(cause, "diag", None), "message_primary", None) or str(cause)
        if isinstance(cause, psycopg.errors.DuplicateObject):
            raise Conflict(said) from None
        if isinstance(cause, psycopg.errors.InvalidParameterValue):
            raise InvalidInput(said) from None
        if isinstance(cause, psycopg.errors.InsufficientPrivilege):
            raise Forbidden(f"this database login may not {what}: {said}") from None
        raise
