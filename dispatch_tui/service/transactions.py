"""Transactions for the service: what PostgreSQL says, mapped to domain errors, and retries.

A deadlock or serialization failure is retried a bounded number of times, then reported as a
conflict; a lock held too long is "another desk is holding that record"; a lost connection is
Unavailable with "nothing was changed" (the transaction was never committed).

`one_statement` runs the one statement that is a whole action (the dispatch) with the same
mapping of errors, at the driver's level, on connections kept for it (`DriverConnections`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.db.engine import DriverConnections
from dispatch_tui.rules.errors import Conflict, DispatchError, InvalidInput, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRIES = 3  # deadlock / serialization failure: retry, then report a conflict


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session, db_errors():
        yield session


def one_statement(
    connections: DriverConnections,
    sql: bytes,
    params: dict[str, Any],
    *,
    tolerated: Collection[str] = (),
) -> tuple[Any, ...] | None:
    """Run one statement as a whole transaction (autocommit); its first row, if any.

    The statement goes straight to the driver (psycopg, prepared), on one of `connections`: it
    skips SQLAlchemy's execution layer and its pool, which together cost the hot path more CPU
    than the round trip, but not the mapping of errors of `db_errors` (a connection found dead
    is closed, never used again). A unique index named in `tolerated` tripped gives None, as if
    no row: a concurrent writer won, and the caller says who.
    """
    dbapi = connections.engine.dialect.loaded_dbapi
    try:
        cursor = connections.take()
    except dbapi.Error as err:  # could not connect
        _raise_mapped(_wrapped(connections.engine, err, lost=False))
    try:
        row: tuple[Any, ...] | None = cursor.execute(sql, params, prepare=True).fetchone()
    except dbapi.IntegrityError as err:
        connections.give_back(cursor)
        if err.diag.constraint_name in tolerated:
            return None
        _raise_mapped(_wrapped(connections.engine, err, lost=False))
    except dbapi.Error as err:
        lost = connections.engine.dialect.is_disconnect(err, cursor.connection, None)
        if lost:
            connections.discard(cursor)  # dead: never used again
        else:
            connections.give_back(cursor)
        _raise_mapped(_wrapped(connections.engine, err, lost=lost))
    except BaseException:
        connections.discard(cursor)  # interrupted mid-statement: nobody should inherit it
        raise
    connections.give_back(cursor)
    return row


def _wrapped(engine: Engine, err: Exception, *, lost: bool) -> StatementError:
    """A driver's error as SQLAlchemy's own execution would have raised it."""
    return DBAPIError.instance(
        None,
        None,
        err,
        engine.dialect.loaded_dbapi.Error,
        connection_invalidated=lost,
        dialect=engine.dialect,
    )


def _raise_mapped(err: Exception) -> NoReturn:
    with db_errors():
        raise err
    raise AssertionError("db_errors swallowed an error")  # pragma: no cover


def write(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction; retry deadlocks and serialization failures."""
    for attempt in range(1, RETRIES + 1):
        try:
            with sessions() as session, db_errors(), session.begin():
                return work(session)
        except Retry:
            retried(attempt)
    raise Conflict("the database kept reporting conflicting changes; try again")


def retried(attempt: int) -> None:
    """Say that a deadlock or serialization failure made an action run again (tests count
    these: a retry means two actions took their locks in different orders)."""
    log.info("transaction retried after deadlock/serialization failure (attempt %d)", attempt)


def constraint_of(err: Exception) -> str:
    """The name of the constraint a database error names (empty if none)."""
    orig = getattr(err, "orig", None)
    return getattr(getattr(orig, "diag", None), "constraint_name", None) or ""


class Retry(Exception):
    """A deadlock or serialization failure: the whole transaction may simply be run again."""


@contextmanager
def db_errors() -> Iterator[None]:
    """Map what PostgreSQL says to domain errors; anything unknown propagates as a bug."""
    try:
        yield
    except DispatchError:
        raise
    except IntegrityError as err:
        state = getattr(err.orig, "sqlstate", None)
        constraint = constraint_of(err)
        if constraint == "uq_assignments_active_unit":
            raise Conflict("that unit was dispatched at another desk a moment ago") from err
        if constraint == "uq_assignments_active_paramedic":
            raise Conflict("that paramedic was put on another call a moment ago") from err
        if state == "23514":  # check_violation: validation should have caught it first
            log.warning("check constraint %s refused a write", constraint)
            raise InvalidInput(f"the database refused the value ({constraint})") from err
        raise
    except OperationalError as err:
        state = getattr(err.orig, "sqlstate", None)
        if state in ("40P01", "40001"):
            raise Retry from err
        if state == "55P03":
            raise Conflict("another desk is holding that record; try again in a moment") from err
        if state is None or state.startswith("08") or state.startswith("57P"):
            raise Unavailable("the dispatch database is unreachable; nothing was changed") from err
        raise
    except DBAPIError as err:
        if err.connection_invalidated:
            raise Unavailable(
                "the connection to the dispatch database was lost; nothing was changed"
            ) from err
        if getattr(err.orig, "sqlstate", "") in ("40P01", "40001"):
            raise Retry from err
        raise
