"""Staff and their database logins: `dispatch-tui admin add-operator`.

A staff row and its PostgreSQL login role are created in one transaction (role DDL is
transactional in PostgreSQL), so there is never a login without a staff member or the reverse.
The login joins `dispatch_operator` (what the service needs) and `dispatch_board` (SELECT only,
which the board switches to).
"""

from __future__ import annotations

from typing import Any, cast

import psycopg
from psycopg import sql
from sqlalchemy import func, insert, select
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

# Every login may act through the service (the service checks what each role may do) and may
# open the board, which narrows its session to the SELECT-only `dispatch_board` role.
GROUPS = ("dispatch_operator", "dispatch_board")


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
    name = validation.username(username)
    try:
        staff_role = Role(role.strip().lower())
    except ValueError:
        raise InvalidInput(
            f"'{role[:24]}' is not a role ({', '.join(r.value for r in Role)})"
        ) from None
    full = validation.text_field("full name", full_name, NAME_MAX) or name
    unit_code = validation.unit_code(unit) if unit else None
    if unit_code and staff_role != Role.PARAMEDIC:
        raise InvalidInput("only a paramedic crews a unit")
    secret = validation.text_field("password", password, 200) if password else None

    def work(s: Session) -> Operator:
        boss = steps.authorise(s, admin, "add_operator")
        if s.scalar(select(Staff.id).where(func.lower(Staff.username) == name.lower())) is not None:
            raise Conflict(f"{name} is already an operator")
        unit_id = None
        if unit_code:
            unit_id = lookups.unit_id(s, unit_code)
        staff_id = s.execute(
            insert(Staff)
            .values(username=name, full_name=full, role=staff_role.value, unit_id=unit_id)
            .returning(Staff.id)
        ).scalar_one()
        if login:
            _create_login(s, name, secret)
        steps.audit(
            s,
            boss,
            service.desk,
            "operator_added",
            username=name,
            role=staff_role.value,
            login=login,
        )
        row = s.get(Staff, staff_id)
        assert row is not None
        return views.operator(row)

    return write(service.sessions, work)


def _create_login(s: Session, name: str, password: str | None) -> None:
    """CREATE ROLE through psycopg's composition: identifiers quoted, the password a literal."""
    raw = cast(Any, s.connection().connection.driver_connection)
    exists = raw.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    statement = sql.SQL("ALTER ROLE {} LOGIN" if exists else "CREATE ROLE {} LOGIN").format(
        sql.Identifier(name)
    )
    if password:
        statement = sql.SQL("{} PASSWORD {}").format(statement, sql.Literal(password))
    try:
        raw.execute(statement)
        for group in GROUPS:
            raw.execute(
                sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(name))
            )
    except psycopg.errors.InsufficientPrivilege:
        raise Forbidden(
            "this database login may not create logins; run add-operator as the server's admin"
        ) from None
