"""Roles enforced by PostgreSQL: personal logins, the operator is the login, the audit log is
append-only (even in replica mode) and stamped by the database with who and when, each staff
role writes only what its work needs, and the wall display's login cannot write at all."""

from __future__ import annotations

import argparse
import itertools
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from dispatch_tui.cli import launch, main
from dispatch_tui.config import Settings
from dispatch_tui.db.connect import open_database
from dispatch_tui.db.engine import make_engine, make_sessionmaker, normalise_url
from dispatch_tui.rules.errors import Forbidden
from dispatch_tui.rules.validation import CallChanges, CallIntake
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.service.staffing import add_operator
from tests.helpers import new_call
from tests.invariants import violations

Login = tuple[str, str]  # (the login's name, a URL that connects as it)


@pytest.fixture
def logins(world: DispatchService, database_url: str) -> Iterator[Callable[..., Login]]:
    """Make logins with `admin add-operator` (run as the superuser): `logins("paramedic",
    unit="M2")`. Roles are cluster-wide, and other runs share the server: every name starts with
    this test's own prefix, and every role with that prefix is dropped afterwards, including
    the ones a test's logins made themselves."""
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    made = itertools.count()

    def make(role: str, unit: str | None = None, *, add: bool = True) -> Login:
        name = f"{prefix}{role[:5]}{next(made)}"
        if add:
            add_operator(world, "admin", name, role, full_name=f"Test {role}", unit=unit)
        return name, as_login(database_url, name)

    yield make
    with psycopg.connect(libpq(database_url), autocommit=True) as conn:
        names = conn.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
        ).fetchall()
        for (name,) in names:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (name,),
            )
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture
def login(logins: Callable[..., Login]) -> Login:
    """A fresh dispatcher with a personal login."""
    return logins("dispatcher")


def as_login(url: str, name: str) -> str:
    return normalise_url(url).set(username=name).render_as_string(hide_password=False)


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
    # Each of its transactions is read-only: turned off for the session, still refused.
    with board.sessions() as session:
        session.execute(text("SET default_transaction_read_only = off"))
        session.commit()
        with pytest.raises(DBAPIError, match="read-only transaction"):
            session.execute(text("UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M1'"))
    # And with both read-only layers gone, the role it runs as has no right to write.
    with engine.connect().execution_options(postgresql_readonly=False) as conn:
        conn.execute(text("SET default_transaction_read_only = off"))
        conn.commit()
        with pytest.raises(DBAPIError, match="permission denied"):
            conn.execute(text("UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M1'"))
    engine.dispose()
    assert {u.code: u.status for u in world.units()}["M1"] == "AVAILABLE"


# -- the audit log: append-only even in replica mode, who and when stamped by the database -------


def test_replica_mode_does_not_switch_the_append_only_trigger_off(
    world: DispatchService, engine: Engine, count
) -> None:  # type: ignore[no-untyped-def]
    new_call(world)
    rows = count("audit_log")
    assert rows > 0
    for statement in ("DELETE FROM audit_log", "TRUNCATE audit_log CASCADE"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(statement))
    assert count("audit_log") == rows


def staff_id(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM staff WHERE username = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])


def test_the_database_stamps_who_and_when_on_an_audit_row(login: Login) -> None:
    name, url = login
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        alice, mine = staff_id(conn, "alice"), staff_id(conn, name)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="operator id"):
            conn.execute(
                "INSERT INTO audit_log (operator, operator_id, desk, action)"
                " VALUES (%s, %s, 'x', 'forged')",
                (name, alice),
            )
        # Back-dated, with no operator given: the database writes who and when itself.
        at, operator, operator_id, now = conn.execute(
            "INSERT INTO audit_log (at, desk, action) VALUES ('2001-01-01', 'x', 'backdated')"
            " RETURNING at, operator, operator_id, now()"
        ).fetchone()
        assert (operator, operator_id) == (name, mine)
        assert abs(at - now) < timedelta(seconds=5)


def test_a_temporary_table_cannot_stand_in_for_the_catalog_or_the_staff_list(
    login: Login,
) -> None:
    """pg_temp comes first in a session's search path: a trigger that reads `pg_roles` or
    `staff` unqualified would read the login's own temporary tables."""
    _name, url = login
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        alice = staff_id(conn, "alice")
        conn.execute(
            "CREATE TEMP TABLE pg_roles AS SELECT session_user AS rolname, true AS rolsuper,"
            " true AS rolcreaterole"
        )
        conn.execute(
            "CREATE TEMP TABLE staff AS SELECT %s::int AS id, session_user::text AS username,"
            " 'dispatcher'::text AS role, NULL::int AS unit_id, true AS active",
            (alice,),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO audit_log (operator, desk, action) VALUES ('alice', 'x', 'forged')"
            )
        (operator_id,) = conn.execute(
            "INSERT INTO audit_log (desk, action) VALUES ('x', 'mine') RETURNING operator_id"
        ).fetchone()
        assert operator_id != alice


# -- the wall display: a login that cannot write at all ------------------------------------------


def test_a_board_login_reads_and_cannot_write_whatever_it_sets(
    logins: Callable[..., Login], world: DispatchService
) -> None:
    name, url = logins("board")
    engine = make_engine(url, read_only=True)
    try:
        assert len(ReadService(make_sessionmaker(engine)).units()) == 12
    finally:
        engine.dispose()
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        assert conn.execute(
            "SELECT count(*) FROM staff WHERE username = %s", (name,)
        ).fetchone() == (0,), "a wall display is not a person on the staff list"
        conn.execute("SET ROLE NONE")
        conn.execute("SET default_transaction_read_only = off")
        for statement in (
            "UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M1'",
            "INSERT INTO audit_log (desk, action) VALUES ('x', 'y')",
            "UPDATE hospitals SET status = 'CLOSED'",
            "SET ROLE dispatch_operator",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert {u.code: u.status for u in world.units()}["M1"] == "AVAILABLE"


def test_the_board_opens_with_a_board_login(
    logins: Callable[..., Login], world: DispatchService, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    name, url = logins("board")
    monkeypatch.delenv("DISPATCH_USER", raising=False)
    db = open_database(url, Path("/nonexistent"), read_only=True)
    try:
        board = ReadService(make_sessionmaker(db.engine))
        who = launch.viewer(board, db, Settings.load(database_url=url), argparse.Namespace())
    finally:
        db.engine.dispose()
    assert who.username == name and "board" in who.role


# -- each staff role writes only what its work needs --------------------------------------------


def refused(conn: psycopg.Connection, statement: str) -> bool:
    """Whether PostgreSQL refuses `statement` for lack of a privilege (or a trigger's refusal)."""
    try:
        conn.execute(statement)
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.RaiseException):
        return True
    return False


def test_each_staff_role_writes_only_what_its_work_needs(
    logins: Callable[..., Login], world: DispatchService
) -> None:
    number = new_call(world)
    world.dispatch("alice", number, ["M1"])
    _medic, medic_url = logins("paramedic", unit="M2")
    _boss, boss_url = logins("supervisor")
    _disp, disp_url = logins("dispatcher")
    with psycopg.connect(libpq(medic_url), autocommit=True) as conn:
        # Another unit, another unit's assignment, a call the unit is not on: no row is
        # theirs to change (row security), and nothing outside their work at all.
        assert (
            conn.execute("UPDATE units SET status = 'OUT_OF_SERVICE' WHERE code = 'M1'").rowcount
            == 0
        )
        assert conn.execute("UPDATE assignments SET on_scene_at = now()").rowcount == 0
        assert conn.execute("UPDATE calls SET status = 'CLOSED'").rowcount == 0
        for statement in (
            "UPDATE units SET code = 'X9' WHERE code = 'M2'",
            "UPDATE assignments SET unit_id = unit_id",
            "INSERT INTO calls (location_text, nature, priority) VALUES ('x', 'y', 1)",
            "UPDATE hospitals SET status = 'CLOSED'",
            "INSERT INTO staff (username, full_name, role) VALUES ('zz', 'z', 'admin')",
            "UPDATE staff SET role = 'admin'",
        ):
            assert refused(conn, statement), statement
    with psycopg.connect(libpq(boss_url), autocommit=True) as conn:
        for statement in (
            "UPDATE units SET status = 'OUT_OF_SERVICE'",
            "INSERT INTO calls (location_text, nature, priority) VALUES ('x', 'y', 1)",
            "UPDATE calls SET status = 'CLOSED'",
            "UPDATE assignments SET cleared_at = now()",
            "UPDATE hospitals SET code = 'XX'",
            "UPDATE staff SET role = 'admin'",
        ):
            assert refused(conn, statement), statement
    with psycopg.connect(libpq(disp_url), autocommit=True) as conn:
        for statement in (
            "UPDATE hospitals SET status = 'CLOSED'",
            "UPDATE hospitals SET id = id + 1000",
            "INSERT INTO staff (username, full_name, role) VALUES ('zz', 'z', 'admin')",
            "UPDATE calls SET received_at = now() - interval '1 day'",
            "INSERT INTO audit_log (id, desk, action) VALUES (10000000, 'x', 'late')",
            "INSERT INTO units (code, capability) VALUES ('X9', 'ALS')",
        ):
            assert refused(conn, statement), statement
    assert {u.code: u.status for u in world.units()} == {
        **{u.code: "AVAILABLE" for u in world.units()},
        "M1": "EN_ROUTE",
    }
    assert {h.status for h in world.hospitals()} == {"OPEN"}


def test_each_role_works_through_the_service_with_its_own_login(
    logins: Callable[..., Login], world: DispatchService, engine: Engine
) -> None:
    disp, disp_url = logins("dispatcher")
    medic, medic_url = logins("paramedic", unit="M2")
    boss, boss_url = logins("supervisor")
    chief, chief_url = logins("admin")
    engines = [make_engine(u) for u in (disp_url, medic_url, boss_url, chief_url)]
    desk, crew, sup, adm = (DispatchService(make_sessionmaker(e), desk="own") for e in engines)
    try:
        sup.hospital_status(boss, "EAST", "DIVERSION", beds=2)
        adm.hospital_status(chief, "EAST", "OPEN")
        first = new_call(desk, user=disp)
        desk.dispatch(disp, first, ["M2"])
        crew.unit_status(medic, "M2", "EN_ROUTE")
        crew.unit_status(medic, "M2", "ON_SCENE")
        crew.unit_status(medic, "M2", "TRANSPORTING", hospital="MERCY")
        crew.unit_status(medic, "M2", "AT_HOSPITAL")
        crew.unit_status(medic, "M2", "AVAILABLE")
        crew.locate_unit(medic, "M2", 40.0, -83.0)
        assert desk.call(first).status == "CLOSED"
        second, third = (new_call(desk, user=disp, priority=3) for _ in range(2))
        desk.dispatch(disp, second, ["B1"])
        desk.cancel_unit(disp, "B1")
        desk.cancel_call(disp, second)
        desk.dispatch(disp, third, ["B2", "B3"], hospital="STJ")
        desk.unit_status(disp, "B2", "ON_SCENE")
        desk.close_call(disp, third, "treated and transported")
        # The call record, with the dispatcher's own login: a note, a re-open, an edit, and a
        # call received when its intake form was opened.
        desk.add_note(disp, third, "caller rang back: second patient")
        desk.reopen_call(disp, third, "second patient")
        desk.update_call(disp, third, CallChanges(priority=2, caller_name="Second caller"))
        answered = desk.answer(disp)
        taken = desk.create_call(
            disp,
            CallIntake(nature="Fall", location="1 Main St", priority=3, answered=answered.id),
        )
        assert taken.received_at == answered.at
    finally:
        for e in engines:
            e.dispose()
    audited = {(a.operator, a.action) for a in world.audit()}
    assert {(boss, "hospital_status"), (chief, "hospital_status"), (disp, "dispatch")} <= audited
    assert (medic, "unit_status") in audited and (medic, "unit_position") in audited
    assert violations(engine) == ""


# -- admin add-operator with a personal supervisor or admin login --------------------------------


def test_a_supervisor_adds_staff_and_logins_with_their_own_login(
    logins: Callable[..., Login], world: DispatchService, capsys, monkeypatch, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DISPATCH_LOG_FILE", str(tmp_path / "log"))
    monkeypatch.delenv("DISPATCH_USER", raising=False)
    _boss, boss_url = logins("supervisor")
    _chief, chief_url = logins("admin")
    new, new_url = logins("dispatcher", add=False)
    wall, wall_url = logins("board", add=False)
    add = ["admin", "add-operator"]
    assert main(["--db", boss_url, *add, new, "--role", "dispatcher"]) == 0, capsys.readouterr()
    assert main(["--db", chief_url, *add, wall, "--role", "board"]) == 0, capsys.readouterr()
    # The new dispatcher's login works at once.
    number = new_call(world, priority=3)
    assert main(["--db", new_url, "dispatch", number, "B4"]) == 0, capsys.readouterr()
    with psycopg.connect(libpq(wall_url), autocommit=True) as conn:
        assert refused(conn, "UPDATE units SET status = 'OUT_OF_SERVICE'")
    # A login that exists already (here the wall display's) is not the supervisor's to take.
    assert main(["--db", boss_url, *add, wall, "--role", "admin"]) in (4, 5)
    assert "already" in capsys.readouterr().err
    # A dispatcher's login may not add anyone: one clear line, exit 5.
    capsys.readouterr()
    assert main(["--db", new_url, *add, "zz_nobody", "--role", "admin"]) == 5
    assert "only an admin or a supervisor" in capsys.readouterr().err
