"""Engines, sessions and the schema version check.

One Session per user action (the service opens and commits it). The engine checks a pooled
connection that has sat idle before handing it out, so a desk survives a server restart without a
stale-connection error, while a burst of actions (the simulator, a script) pays no extra round trip.

`DriverConnections` keeps a few of the engine's connections apart, as the driver's own, for the
one statement that is a whole action (the dispatch); the same idle rule holds for them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine, create_engine, event, exc, make_url, text
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = "dispatch_tui.db:migrations"
# A row held longer than this is reported as busy, never a frozen desk. Set per connection, so a
# transaction needs no round trip of its own to set it.
LOCK_TIMEOUT = "5s"
# A pooled connection idle longer than this is pinged before use (a desk acts seconds apart, so
# in practice every desk action is checked; a burst of actions is not).
PING_AFTER_IDLE_SECONDS = 1.0


def normalise_url(url: str) -> URL:
    """Accept `postgresql://` and `postgres://` too, and always drive them with psycopg 3.

    A cluster's URL may name several servers, in libpq's form (`postgresql://u@h1:5432,h2:5432/
    dispatch?target_session_attrs=read-write`) or in SQLAlchemy's (`?host=h1:5432&host=h2:5432`);
    both come out in SQLAlchemy's, which the driver is handed as libpq's lists."""
    parsed = make_url(_multi_host(url.replace("postgres://", "postgresql://", 1)))
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed.render_as_string(hide_password=True)}")
    return parsed.set(drivername="postgresql+psycopg")


def _multi_host(url: str) -> str:
    """libpq's multi-host URL (`scheme://user@h1:5432,h2:5432/db?...`) in SQLAlchemy's form
    (`scheme://user@/db?host=h1:5432&host=h2:5432&...`); any other URL as it is."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return url
    query = "&".join(f"host={quote(h, safe=':[]')}" for h in hosts.split(",") if h)
    if parts.query:
        query += f"&{parts.query}"
    # Written out: urlunsplit drops the `//` of an empty netloc, which SQLAlchemy then refuses.
    user = f"{userinfo}@" if at else ""
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{parts.scheme}://{user}{parts.path}?{query}{fragment}"


# A URL's own word on what sits in front of the server: `?pooler=transaction` (PgBouncer's
# transaction pooling) or `?pooler=session`. Not a libpq parameter: taken out before connecting.
POOLERS = ("session", "transaction")


def pooler_of(url: URL) -> tuple[URL, str]:
    """`url` without its `pooler` word, and the word ("" when none)."""
    mode = url.query.get("pooler", "")
    if not isinstance(mode, str) or mode not in ("", *POOLERS):
        raise ValueError(f"pooler must be {' or '.join(POOLERS)}, not {mode!r}")
    return url.difference_update_query(["pooler"]), mode


def libpq_params(url: URL) -> dict[str, Any]:
    """The libpq parameters the driver connects with for `url` (several hosts as libpq's lists,
    `host=h1,h2 port=5432,5432`), as the engine's own dialect makes them."""
    url, _ = pooler_of(url)
    _, params = PGDialect_psycopg().create_connect_args(url)  # type: ignore[no-untyped-call]
    params.pop("context", None)
    return dict(params)


def make_engine(
    url: str | URL,
    *,
    pool_size: int = 5,
    application_name: str = "dispatch-tui",
    read_only: bool = False,
    release_idle_seconds: float | None = None,
) -> Engine:
    """An engine; `read_only` makes every session on it read-only in PostgreSQL itself, so a
    supervisor's board cannot write even through a bug (the server refuses, not the app).
    The login must be a member of `dispatch_board` (every login `admin add-operator` makes is).
    A session can undo both settings (`SET ROLE NONE`): only a board login, which is in
    `dispatch_board` alone, cannot write whatever its session does.

    `release_idle_seconds`: close every connection the engine keeps once none was used for
    that long (a desk that only listens holds no other server connection than its listener's;
    its next action opens one)."""
    parsed, pooler = pooler_of(
        normalise_url(str(url) if isinstance(url, str) else url.render_as_string(False))
    )
    connect_args: dict[str, Any] = {"application_name": application_name, "connect_timeout": 5}
    if not pooler:
        # Behind a pooler the startup options are refused or dropped (PgBouncer's
        # ignore_startup_parameters): there the lock timeout is the database's own (migration
        # 0011), and read-only is each transaction's (below).
        options = f"-c lock_timeout={LOCK_TIMEOUT}"
        if read_only:
            # Every transaction read-only, and the session's rights narrowed to the SELECT-only
            # group role (migration 0003), so turning read-only off alone still cannot write.
            options += " -c default_transaction_read_only=on -c role=dispatch_board"
        connect_args["options"] = options
    if pooler == "transaction":
        # Each transaction may run on another server connection: a statement prepared on one
        # is not there on the next (psycopg's `_pg3_0` would collide). Nothing is prepared.
        connect_args["prepare_threshold"] = None
    engine = create_engine(
        parsed,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args,
        # Read-only also per transaction (`BEGIN READ ONLY`): a pooler that drops the startup
        # options (PgBouncer's ignore_startup_parameters) cannot drop that.
        execution_options={"postgresql_readonly": True} if read_only else {},
    )
    _ping_idle_connections(engine)
    if release_idle_seconds is not None:
        _release_when_idle(engine, release_idle_seconds)
    return engine


def _release_when_idle(engine: Engine, seconds: float) -> None:
    """Close the engine's kept connections (its pool's and its `DriverConnections`) once none
    was used for `seconds`. A thread of its own looks every few seconds; it holds the engine
    weakly and ends with it. Disposing swaps the pool for a new, empty one: a connection
    checked out meanwhile stays open, and is closed once its holder lets it go."""
    used = _USED[engine] = {"at": time.monotonic(), "released": False}
    for name in ("checkout", "checkin"):
        event.listen(engine.pool, name, lambda *_: _stamp(used))
    ref = weakref.ref(engine)

    def watch() -> None:
        while True:
            time.sleep(min(seconds, 5.0))
            live = ref()
            if live is None:
                return
            idle = time.monotonic() - float(used["at"]) >= seconds
            busy = getattr(live.pool, "checkedout", lambda: 0)()  # QueuePool's count
            if idle and not used["released"] and busy == 0:
                used["released"] = True
                log.debug("no connection used for %.0f s: closing the kept ones", seconds)
                live.dispose(close=True)
            del live

    threading.Thread(target=watch, name="dispatch-release-idle", daemon=True).start()


# When each engine that releases its idle connections last used one (`_release_when_idle`):
# the pool's events stamp it, and so do `DriverConnections`, which the pool does not see.
_USED: weakref.WeakKeyDictionary[Engine, dict[str, Any]] = weakref.WeakKeyDictionary()


def _used(engine: Engine) -> None:
    stamp = _USED.get(engine)
    if stamp is not None:
        _stamp(stamp)


def _stamp(used: dict[str, Any]) -> None:
    used["at"], used["released"] = time.monotonic(), False


def _ping_idle_connections(engine: Engine) -> None:
    """SQLAlchemy's "pessimistic disconnect handling" (pre-ping), only after an idle spell.

    A connection that fails its ping makes the pool discard it and open a new one (the pool's
    `DisconnectionError` protocol), so the action runs on a live connection.
    """

    @event.listens_for(engine.pool, "checkin")
    def _idle_from(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _check(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or not idle_too_long(idle_since):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as err:
            raise exc.DisconnectionError(f"pooled connection failed its ping: {err}") from err


def idle_too_long(idle_since: float) -> bool:
    """Whether a connection idle since then (time.monotonic) is pinged before it is used."""
    return time.monotonic() - idle_since >= PING_AFTER_IDLE_SECONDS


class DriverConnections:
    """The driver's own connections (psycopg), in autocommit, for statements that are whole
    transactions; kept between uses, each used by one thread at a time, each with its cursor.

    Each is made by the engine's pool, so it has the same URL, options and lock timeout as every
    other connection (and is pinged there if it sat idle), and is then detached from it: checking
    a connection out of SQLAlchemy's pool and back in, and making a cursor, for every dispatch
    cost more CPU than the dispatch's own round trip. The pool's rule holds here too: one idle
    longer than PING_AFTER_IDLE_SECONDS is pinged before use, and one that fails is closed and
    replaced. The caller closes a connection that failed (`discard`) and gives back one that
    did not. There are never more of them than dispatches run at once on the engine: every
    service on an engine shares one set (`of`), closed when the engine is disposed, so services
    made and dropped (one per test, one per CLI run) never pile up connections.
    """

    def __init__(self, engine: Engine) -> None:
        # Weakly: the engine keys the registry of kept sets (`of`), and must stay collectable.
        self._engine = weakref.ref(engine)
        # (cursor, idle since). A deque: append and pop are atomic, so threads need no lock.
        self._idle: collections.deque[tuple[Any, float]] = collections.deque()
        weakref.finalize(self, _close_all, self._idle)

    @property
    def engine(self) -> Engine:
        engine = self._engine()
        assert engine is not None, "a service outlived its engine"
        return engine

    @classmethod
    def of(cls, engine: Engine) -> DriverConnections:
        """The one set of kept connections of `engine`."""
        with _KEPT_LOCK:
            kept = _KEPT.get(engine)
            if kept is None:
                kept = _KEPT[engine] = cls(engine)
                idle = kept._idle
                event.listen(engine, "engine_disposed", lambda _engine: _close_all(idle))
            return kept

    def take(self) -> Any:
        """A cursor on a live connection, the most recently used first; a new one when none
        is idle."""
        _used(self.engine)
        dialect = self.engine.dialect
        while True:
            try:
                cursor, idle_since = self._idle.pop()
            except IndexError:
                break
            if not idle_too_long(idle_since):
                return cursor
            try:
                dialect.do_ping(cursor.connection)
            except dialect.loaded_dbapi.Error:
                self.discard(cursor)
                continue
            return cursor
        pooled = self.engine.raw_connection()
        conn: Any = pooled.driver_connection
        pooled.detach()  # ours now: the pool opens another connection when it needs one
        conn.autocommit = True
        return conn.cursor()

    def give_back(self, cursor: Any) -> None:
        self._idle.append((cursor, time.monotonic()))

    @staticmethod
    def discard(cursor: Any) -> None:
        with contextlib.suppress(Exception):  # it is being thrown away because it failed
            cursor.connection.close()


_KEPT: weakref.WeakKeyDictionary[Engine, DriverConnections] = weakref.WeakKeyDictionary()
_KEPT_LOCK = threading.Lock()


def _close_all(idle: collections.deque[tuple[Any, float]]) -> None:
    while idle:
        DriverConnections.discard(idle.pop()[0])


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: the service returns plain data built before commit; nothing lazy
    # should reach back into a closed session.
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config  # imported when needed: it costs a desk ~1 s at start

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    if engine is not None:
        config.attributes["engine"] = engine
    return config


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def is_current(self) -> bool:
        return self.current == self.head


# The newest migration. Kept here so that every command's schema check is one small query and
# needs no Alembic import (a test keeps it equal to the migrations' head).
SCHEMA_HEAD = "0022"


def schema_state(engine: Engine) -> SchemaState:
    with engine.connect() as conn:
        exists = conn.execute(
            text("SELECT to_regclass('alembic_version') IS NOT NULL")
        ).scalar_one()
        current = (
            conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
            if exists
            else None
        )
    return SchemaState(current=current, head=SCHEMA_HEAD)


def migrations_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations directory has no head revision"
    return head


def upgrade(engine: Engine, revision: str = "head") -> SchemaState:
    """Apply migrations up to `revision`; a no-op when the schema is already there."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)
    return schema_state(engine)
