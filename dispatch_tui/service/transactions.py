"""Transactions for the service: what PostgreSQL says, mapped to domain errors, and retries.

A deadlock or serialization failure is retried a bounded number of times, then reported as a
conflict; a lock held too long is "another desk is holding that record"; a lost connection is
Unavailable with "nothing was changed" (the transaction was never committed).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.rules.errors import Conflict, DispatchError, InvalidInput, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRIES = 3  # deadlock / serialization failure: retry, then report a conflict


@contextmanager
def reading(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session, db_errors():
        yield session


@contextmanager
def autocommitting(sessions: sessionmaker[Session]) -> Iterator[Connection]:
    """A connection on which each statement is its own transaction (for one-statement actions)."""
    engine: Engine = sessions.kw["bind"]
    with db_errors(), engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


def write(sessions: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction; retry deadlocks and serialization failures."""
    for attempt in range(1, RETRIES + 1):
        try:
            with sessions() as session, db_errors(), session.begin():
                return work(session)
        except Retry:
            log.info(
                "transaction retried after deadlock/serialization failure (attempt %d)", attempt
            )
    raise Conflict("the database kept reporting conflicting changes; try again")


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
