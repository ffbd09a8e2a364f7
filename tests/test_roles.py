"""Roles enforced by PostgreSQL: personal logins, the operator is the login, the audit log is
append-only and written only under one's own name, and the board's sessions can only read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from dispatch_tui.cli import main
from dispatch_tui.db.engine import make_engine, make_sessionmaker, normalise_url
from dispatch_tui.rules.errors import Forbidden
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.service.staffing import add_operator


@pytest.fixture
def login(world: DispatchService, database_url: str) -> Iterator[tuple[str, str]]:
    """A fresh dispatcher with a personal login (roles are cluster-wide: dropped afterwards)."""
    name = f"disp_{uuid.uuid4().hex[:8]}"
    add_operator(world, "admin", name, "dispatcher", full_name="Test Dispatcher")
    url = normalise_url(database_url).set(username=name).render_as_string(hide_password=False)
    yield name, url
    admin = (
        normalise_url(database_url)
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (name,)
        )
        conn.execute(psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(psycopg.sql.Identifier(name)))


def libpq(url: str) -> str:
    return normalise_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_only_admins_and_supervisors_add_operators(world: DispatchService) -> None:
    with pytest.raises(Forbidden, match="only an admin or a supervisor"):
        add_operator(world, "alice", "mallory", "admin", login=False)
    assert (
        add_operator(world, "grace", "ivan", "paramedic", unit="M2", login=False).unit_id
        is not None
    )


def test_the_operator_is_the_login(
    world: DispatchService, login: tuple[str, str], capsys, monkeypatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    name, url = login
    monkeypatch.setenv("DISPATCH_LOG_FILE", str(tmp_path / "log"))
    monkeypatch.delenv("DISPATCH_USER", raising=False)
    number = world.create_call(
        "alice",
        __import__("dispatch_tui.rules.validation", fromlist=["CallIntake"]).CallIntake(
            nature="Fall", place="City Library", priority=3
        ),
    ).number
    assert main(["--db", url, "--as", "alice", "dispatch", number, "B2"]) == 5
    assert "cannot act as alice" in capsys.readouterr().err
    assert main(["--db", url, "dispatch", number, "B2"]) == 0  # as the login itself
    (entry,) = [a for a in world.audit(number) if a.action == "dispatch"]
    assert entry.operator == name


def test_a_login_cannot_forge_or_rewrite_the_audit_log(login: tuple[str, str]) -> None:
    _name, url = login
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="cannot act as alice"):
            conn.execute(
                "INSERT INTO audit_log (operator, desk, action) VALUES ('alice', 'x', 'forged')"
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_log SET action = 'x'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM calls")  # no DELETE anywhere
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE sneaky (id int)")


def test_the_board_reads_but_cannot_write_even_with_read_only_turned_off(
    login: tuple[str, str], world: DispatchService
) -> None:
    _name, url = login
    engine = make_engine(url, read_only=True)
    board = ReadService(make_sessionmaker(engine))
    assert len(board.units()) == 12
    with board.sessions() as session:
        session.execute(text("SET default_transaction_read_only = off"))
        session.commit()
        with pytest.raises(DBAPIError, match="permission denied"):
            session.execute(text("UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M1'"))
    engine.dispose()
    assert {u.code: u.status for u in world.units()}["M1"] == "AVAILABLE"
