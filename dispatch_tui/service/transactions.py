"""Transactions for the service: what PostgreSQL says, mapped to domain errors, and retries.

A deadlock or serialization failure is retried a bounded number of times, then reported as a
conflict; a lock held too long is "another desk is holding that record". A lost connection means
two different things. Lost before the commit was sent, the transaction was never committed:
Unavailable, "nothing was changed". Lost while the commit (or a statement that is its own
transaction) was in flight, the server may have committed it: OutcomeUnknown, never "nothing was
changed".

`one_statement` runs the one statement that is a whole action (the dispatch) with the same
mapping of errors, at the driver's level, on connections kept for it (`DriverConnections`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, NoReturn, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.db.engine import DriverConnections
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.errors import (
    IN_DOUBT,
    NOTHING_CHANGED,
    READ_ONLY,
    UNCONFIRMED,
    AlreadyDone,
    Conflict,
    DispatchError,
    InvalidInput,
    OutcomeUnknown,
    Unavailable,
)
from dispatch_tui.service import commit_bound, request_ids

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRIES = 3  # deadlock / serialization failure: retry, then report a conflict
# How long an action whose commit was in doubt keeps asking a fresh connection how it ended.
SETTLE_SECONDS = 3.0
_XID = text("SELECT CAST(pg_current_xact_id() AS text)")
_XACT_STATUS = text("SELECT pg_xact_status(CAST(:xid AS xid8))")


class InDoubt(OutcomeUnknown):
    """A statement that is its own transaction was in flight when its connection was lost;
    `backend_pid` is the server process that ran it (to wait for before looking)."""

    def __init__(self, backend_pid: int | None) -> None:
        super().__init__(IN_DOUBT)
        self.backend_pid = backend_pid


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
    writes: bool = False,
) -> tuple[Any, ...] | None:
    """Run one statement as a whole transaction (autocommit); its first row, if any.

    `writes`: the statement may change something, so a connection lost once it was sent leaves
    its outcome unknown (it is its own commit).

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
    pid: int | None = cursor.connection.info.backend_pid  # known locally, no round trip
    watch: commit_bound.Watch | None = None
    try:
        # Prepared (one plan, kept), unless the engine prepares nothing (behind a transaction
        # pooler: `make_engine`).
        prepare = None if cursor.connection.prepare_threshold is None else True
        if writes:  # its own commit: bounded as one (`commit_bound`)
            with commit_bound.bounded(cursor.connection) as watch:
                row: tuple[Any, ...] | None = cursor.execute(
                    sql, params, prepare=prepare
                ).fetchone()
        else:
            row = cursor.execute(sql, params, prepare=prepare).fetchone()
    except dbapi.IntegrityError as err:
        _give_back_unless_cancelled(connections, cursor, watch)
        if err.diag.constraint_name in tolerated:
            return None
        _raise_mapped(_wrapped(connections.engine, err, lost=False))
    except dbapi.Error as err:
        if watch is not None and watch.fired:
            # Cancelled by the bound: mid-statement (nothing written), or after its commit
            # (written): the caller looks, as for a lost connection.
            connections.discard(cursor)
            raise InDoubt(pid) from err
        lost = connections.engine.dialect.is_disconnect(err, cursor.connection, None)
        if lost:
            connections.discard(cursor)  # dead: never used again
        else:
            connections.give_back(cursor)
        if lost and writes:
            raise InDoubt(pid) from err
        _raise_mapped(_wrapped(connections.engine, err, lost=lost))
    except BaseException:
        connections.discard(cursor)  # interrupted mid-statement: nobody should inherit it
        raise
    _give_back_unless_cancelled(connections, cursor, watch)
    if watch is not None and watch.fired:
        # It ran to the end, its commit's wait for a standby cut short by the bound.
        log.warning("a one-statement write outlived its bound: saved, unconfirmed")
        raise OutcomeUnknown(UNCONFIRMED)
    return row


def _give_back_unless_cancelled(
    connections: DriverConnections, cursor: Any, watch: commit_bound.Watch | None
) -> None:
    """Keep a connection for the next statement, unless the bound sent its server process a
    cancel, which may still be pending there."""
    if watch is not None and watch.fired:
        connections.discard(cursor)
    else:
        connections.give_back(cursor)


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


def _raise_mapped(err: Exception, *, in_doubt: bool = False) -> NoReturn:
    with db_errors(in_doubt=in_doubt):
        raise err
    raise AssertionError("db_errors swallowed an error")  # pragma: no cover


def write(
    sessions: sessionmaker[Session], work: Callable[[Session], T], once: Once | None = None
) -> T:
    """Run `work` in one transaction; retry deadlocks and serialization failures.

    A connection lost while `work` runs leaves nothing changed; lost during the commit, the
    outcome is unknown (OutcomeUnknown), and the action is not retried.

    `once`: the write's request id, kept with what it made in the same transaction. When the id
    was carried out before (a retry after a lost answer), raise `AlreadyDone` with what the first
    write made instead of acting twice (see `request_ids`).
    """
    engine: Engine = sessions.kw["bind"]
    for attempt in range(1, RETRIES + 1):
        try:
            with ExitStack() as held:
                # The session works on a connection held here until the commit's bound is
                # disarmed (`_commit`): back in the pool sooner, a late cancel could reach it.
                with db_errors():
                    conn = held.enter_context(engine.connect())
                session = held.enter_context(sessions(bind=conn))
                with db_errors():
                    session.begin()
                    result = work(session)
                    if once is not None:
                        request_ids.remember(session.connection(), once, result)
                    # The transaction's id, for asking how it ended should the commit's reply
                    # be lost (pg_xact_status).
                    xid = str(session.execute(_XID).scalar_one())
                _commit(engine, session, conn, xid)
                return result
        except Retry:
            retried(attempt)
        except (DispatchError, RequestKept) as err:
            # Refused, or its id kept meanwhile: a retry of a write that went through either
            # finds the state changed by it, or trips its request row. Say what it did. (Not
            # when the server could not be reached: asking would fail the same way.)
            if isinstance(err, (OutcomeUnknown, Unavailable)):
                raise
            done = done_before(sessions.kw["bind"], once) if once is not None else None
            if done is not None:
                raise done from None
            if isinstance(err, RequestKept):  # (a kept id is always found: it committed)
                raise Conflict("that request id was just used by another write") from err
            raise
    raise Conflict("the database kept reporting conflicting changes; try again")


def _commit(engine: Engine, session: Session, conn: Connection, xid: str) -> None:
    """Commit, under the bound on a commit's wait (`commit_bound`); when the connection is lost
    during the commit or the bound cut it short, find out how the transaction ended."""
    driver = conn.connection.driver_connection
    watch: commit_bound.Watch | None = None
    try:
        with commit_bound.bounded(driver) as watch, db_errors(in_doubt=True):
            session.commit()
    except OutcomeUnknown:
        if not committed(engine, xid):
            raise
        if watch is not None and watch.fired:  # committed, but cut short: unconfirmed
            raise OutcomeUnknown(UNCONFIRMED) from None
        log.warning("commit of transaction %s was in doubt: it committed", xid)
        return
    except DBAPIError:
        if watch is None or not watch.fired:
            raise
        # The cancel may have reached it after the commit's wait: asked below.
    if watch is not None and watch.fired:
        conn.invalidate()  # the cancel may still be pending on its server process
        if committed(engine, xid):
            log.warning("commit of transaction %s outlived its bound: saved, unconfirmed", xid)
            raise OutcomeUnknown(UNCONFIRMED)


def done_before(engine: Engine, once: Once) -> AlreadyDone | None:
    """What the write kept under `once` made, read on a fresh connection (None: no such write).
    Every writer asks it when a write under a request id was refused or tripped its key."""
    with db_errors(), engine.connect() as conn:
        return request_ids.recall(conn, once)


def committed(engine: Engine, xid: str) -> bool:
    """How a transaction whose commit was in flight when its connection died ended, asked on a
    fresh connection: True when it committed; Unavailable ("nothing was changed") when it was
    rolled back; OutcomeUnknown when the server cannot tell within SETTLE_SECONDS (it is down,
    or the transaction is still finishing)."""
    status = settle(engine, lambda conn: conn.execute(_XACT_STATUS, {"xid": xid}).scalar_one())
    if status == "committed":
        return True
    if status == "aborted":
        log.warning("commit of transaction %s was in doubt: it was rolled back", xid)
        raise Unavailable(NOTHING_CHANGED)
    raise OutcomeUnknown(IN_DOUBT)


def settle(engine: Engine, ask: Callable[[Connection], Any]) -> Any:
    """Ask a fresh connection `ask` until it answers something other than "in progress" (or
    None), for at most SETTLE_SECONDS; None if it never could."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        answer = None
        try:
            with engine.connect() as conn:
                answer = ask(conn)
        except DBAPIError:
            log.info("could not ask how an in-doubt change ended yet", exc_info=True)
        if answer not in (None, "in progress"):
            return answer
        if time.monotonic() > deadline:
            return None
        time.sleep(0.1)


# The server process that ran an in-doubt statement: ended (terminated if need be), or not yet.
_BACKEND_GONE = text(
    """
SELECT CASE WHEN EXISTS (
    SELECT 1 FROM pg_stat_activity
    WHERE pid = :pid AND pg_terminate_backend(:pid) IS NOT NULL
) THEN 'in progress' ELSE 'gone' END
"""
)


def statement_over(engine: Engine, doubt: InDoubt) -> bool:
    """Whether the server process that ran an in-doubt one-statement write has ended (it is
    terminated if it lingers, as one does behind a proxy that lost only the reply): then the
    statement either committed or never will, and what it wrote is the answer. False when the
    server cannot be asked within SETTLE_SECONDS."""
    if doubt.backend_pid is None:
        return False
    ask = lambda conn: conn.execute(_BACKEND_GONE, {"pid": doubt.backend_pid}).scalar_one()  # noqa: E731
    return bool(settle(engine, ask) == "gone")


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


class RequestKept(Exception):
    """A write's request id was kept by another transaction that committed first."""


@contextmanager
def db_errors(*, in_doubt: bool = False) -> Iterator[None]:
    """Map what PostgreSQL says to domain errors; anything unknown propagates as a bug.

    `in_doubt`: a commit was in flight, so a lost connection leaves the outcome unknown.
    """
    lost = OutcomeUnknown(IN_DOUBT) if in_doubt else Unavailable(NOTHING_CHANGED)
    try:
        yield
    except DispatchError:
        raise
    except IntegrityError as err:
        state = getattr(err.orig, "sqlstate", None)
        constraint = constraint_of(err)
        if constraint == "uq_assignments_active_unit":
            raise Conflict("that unit was dispatched at another desk a moment ago") from err
        if constraint == "uq_queued_open_unit":
            raise Conflict("that unit was lined up for another call a moment ago") from err
        if constraint == "uq_calls_answer_id":
            raise Conflict("the call from that intake form was taken a moment ago") from err
        if constraint == request_ids.KEY:
            raise RequestKept from err
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
            raise lost from err
        raise
    except DBAPIError as err:
        if err.connection_invalidated:
            raise lost from err
        state = getattr(err.orig, "sqlstate", "")
        if state in ("40P01", "40001"):
            raise Retry from err
        if state == "25006":  # read_only_sql_transaction: refused before it changed anything
            raise Unavailable(READ_ONLY) from err
        raise
