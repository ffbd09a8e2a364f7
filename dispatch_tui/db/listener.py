"""Live refresh: wait for the change notifications the database triggers send.

Migration 0002 makes every INSERT, UPDATE and DELETE on the displayed tables send a small JSON
payload (`{"table", "id", "op"}`, plus `call_id`/`unit_id` for assignments) on `CHANNEL` when its
transaction commits, whoever the writer is. `Listener.run` blocks in a worker thread on its own
autocommit connection and hands the desk coalesced batches of `Change`s; the desk refetches those
rows by id.

Notifications sent while nobody listens are lost, so after every (re)connect the listener asks
for a full resync. When LISTEN is not available (`listen=False`, or a pooler that refuses it) it
falls back to asking for a resync every `poll_seconds`.

This module must not import Textual: the callbacks are plain functions, called on the listener's
thread; the desk hops to its own thread (e.g. `App.call_from_thread`) itself.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeGuard

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dispatch_tui.db.engine import libpq_params, normalise_url

__all__ = ["CHANNEL", "Change", "ConnectionState", "Listener", "conninfo_from_url"]

log = logging.getLogger(__name__)

CHANNEL = "dispatch_changes"
"""The channel the triggers of migration 0002 notify (the migration spells it literally)."""

APPLICATION_NAME = "dispatch-tui listener"

# The longest the loop blocks in one wait, so `stop` is noticed within about this long.
_TICK_SECONDS = 0.25
# A resync that failed (the desk could not read everything) is tried again this often.
_RESYNC_RETRY_SECONDS = 1.0
_FIRST_BACKOFF_SECONDS = 0.1
_CONNECT_TIMEOUT_SECONDS = 3  # libpq and psycopg round anything below 2 up to 2
# A listener's own notification not back within this long: the connection is deaf (`_serve`),
# and polls; it tries listening again after DEAF_RETRY_SECONDS.
PROOF_SECONDS = 5.0
DEAF_RETRY_SECONDS = 60.0

# A half-open TCP connection (peer vanished without a FIN) would leave the heartbeat's SELECT 1
# waiting for the kernel's retransmission timeout, many minutes. These make the kernel give up
# within seconds instead; libpq ignores them on Unix sockets.
_TCP_OPTIONS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # milliseconds
}

_OPS = frozenset({"INSERT", "UPDATE", "DELETE"})


@dataclass(frozen=True, slots=True)
class Change:
    """One committed row change: refetch `table` row `id` (or drop it, for a DELETE)."""

    table: str
    id: int
    op: str
    # For assignments only: the call and unit whose rows the assignment affects.
    call_id: int | None = None
    unit_id: int | None = None


class ConnectionState(StrEnum):
    CONNECTING = "connecting"  # before the first connection
    LIVE = "live"  # listening: changes arrive as they commit
    RECONNECTING = "reconnecting"  # the database is unreachable; retrying with backoff
    POLLING = "polling"  # no LISTEN available: a resync every poll_seconds


def conninfo_from_url(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL (`postgresql+psycopg://...`), with the
    parameters the engine itself connects with (`db.engine.libpq_params`): several hosts become
    libpq's lists (`host=h1,h2 port=5432,5432`), and a space in a value (a socket directory given
    as `?host=/path`) is kept as it is."""
    params = {k: v for k, v in libpq_params(normalise_url(url)).items() if v not in (None, "")}
    return make_conninfo("", **params)


def parse_payload(payload: str) -> Change | None:
    """The Change a notification payload describes, or None if it is not one of ours."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    table, row_id, op = data.get("table"), data.get("id"), data.get("op")
    call_id, unit_id = data.get("call_id"), data.get("unit_id")
    if not isinstance(table, str) or not table or op not in _OPS or not _is_id(row_id):
        return None
    if not (call_id is None or _is_id(call_id)) or not (unit_id is None or _is_id(unit_id)):
        return None
    return Change(table=table, id=row_id, op=op, call_id=call_id, unit_id=unit_id)


def _is_id(value: object) -> TypeGuard[int]:
    # bool is an int subclass; `true` is not a row id.
    return isinstance(value, int) and not isinstance(value, bool)


class _Backoff:
    """Exponential delays between reconnection attempts: 0.1 s, 0.2 s, ... up to `cap`."""

    def __init__(self, cap: float) -> None:
        self._cap = max(cap, 0.0)
        self._next = min(_FIRST_BACKOFF_SECONDS, self._cap)

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._cap)
        return delay

    def reset(self) -> None:
        self._next = min(_FIRST_BACKOFF_SECONDS, self._cap)


class Listener:
    """Turns the database's change notifications into callbacks, surviving connection loss.

    All callbacks run on the thread that calls `run`. An exception in a callback is logged and
    the loop goes on: a bug in a refresh must not stop the desk from hearing about later changes.
    """

    def __init__(
        self,
        url: str,
        *,
        on_changes: Callable[[list[Change]], None],
        on_state: Callable[[ConnectionState], None],
        on_resync: Callable[[], None],
        coalesce_seconds: float = 0.0,
        heartbeat_seconds: float = 5.0,
        max_backoff_seconds: float = 5.0,
        poll_seconds: float = 2.0,
        listen: bool = True,
    ) -> None:
        # Parse now, so a malformed URL fails in the caller and not silently in the thread.
        params = conninfo_to_dict(conninfo_from_url(url))
        for key, value in _TCP_OPTIONS.items():
            params.setdefault(key, value)  # the URL's own settings win
        self._conninfo = make_conninfo("", **params)
        self._on_changes = on_changes
        self._on_state = on_state
        self.server: str | None = None  # the server of the current connection (`_connect`)
        self._on_resync = on_resync
        self._coalesce = max(coalesce_seconds, 0.0)
        self._heartbeat = max(heartbeat_seconds, 0.01)
        self._max_backoff = max_backoff_seconds
        self._poll = max(poll_seconds, 0.01)
        self._listen = listen
        self._state: ConnectionState | None = None
        self._resync_due: float | None = None  # when to retry a failed resync (monotonic)

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Listen until `stop` is set; returns within about `_TICK_SECONDS` of that.

        A connection attempt in progress is not interrupted: against an unreachable TCP host
        `stop` may wait for the connect timeout (3 s).
        """
        self._state = None
        self._set_state(ConnectionState.CONNECTING)
        listening = self._listen
        backoff = _Backoff(self._max_backoff)
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        try:
            while not stop.is_set():
                if conn is None:
                    try:
                        conn = self._connect()
                        if listening:
                            listening = self._start_listening(conn)
                    except psycopg.OperationalError as exc:
                        self._lost(conn, exc)
                        conn = None
                        stop.wait(backoff.next())
                        continue
                    backoff.reset()
                    self._set_state(ConnectionState.LIVE if listening else ConnectionState.POLLING)
                    # Changes committed before LISTEN took effect (or while we were away) sent
                    # their notifications to nobody: the desk must reload everything.
                    self._resync()
                try:
                    if not listening:
                        self._poll_loop(conn, stop)
                    elif not self._serve(conn, stop):
                        # Deaf: poll, and try listening again now and then (a pooler's
                        # server connection may come back to this one).
                        self._set_state(ConnectionState.POLLING)
                        self._resync()
                        self._poll_loop(conn, stop, for_seconds=DEAF_RETRY_SECONDS)
                except psycopg.Error as exc:
                    # Any error on this connection (AdminShutdown, "consuming input failed",
                    # "the connection is closed") means it is gone: start over on a new one.
                    self._lost(conn, exc)
                    conn = None
                    stop.wait(backoff.next())
        finally:
            if conn is not None:
                conn.close()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        conn = psycopg.connect(
            self._conninfo,
            autocommit=True,  # LISTEN takes effect at commit; autocommit commits it at once
            connect_timeout=_CONNECT_TIMEOUT_SECONDS,
            application_name=APPLICATION_NAME,
        )
        log.debug("listener connected (backend pid %s)", conn.info.backend_pid)
        # Which server answered: with several in the URL, the one in use now.
        host = conn.info.host
        self.server = "local socket" if host.startswith("/") else f"{host}:{conn.info.port}"
        return conn

    def _start_listening(self, conn: psycopg.Connection[tuple[object, ...]]) -> bool:
        """LISTEN on `conn`; False if the server (or a pooler in front of it) refuses.

        OperationalError (connection trouble) propagates to the reconnect logic.
        """
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as exc:
            log.warning("LISTEN %s refused (%s); falling back to polling", CHANNEL, exc)
            return False
        return True

    def _serve(self, conn: psycopg.Connection[tuple[object, ...]], stop: threading.Event) -> bool:
        """Deliver notifications until `stop` (True), or until the connection is found deaf
        (False: the caller polls instead); raises psycopg.Error when the connection dies.

        A connection that accepted LISTEN may still hear nothing: behind a transaction pooler
        the LISTEN ran on a server connection that is no longer this one, and a silent drop
        looks the same. So the listener proves its path: when quiet, it notifies a channel of
        its own on this connection (`proof`), which doubles as the heartbeat that finds a
        vanished server; if that does not come back within PROOF_SECONDS, it is deaf.

        `notifies()` holds the connection's lock while it runs, so the proof is sent only
        between two calls. Notifications that arrive during it are not lost: psycopg keeps them
        and the next `notifies()` yields them first.
        """
        tick = min(_TICK_SECONDS, self._heartbeat)
        proof = f"dispatch_proof_{uuid.uuid4().hex[:16]}"
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(proof)))
        sent_at: float | None = None  # an unanswered proof, sent then
        quiet_since = -self._heartbeat  # so the first proof goes at once
        while not stop.is_set():
            if self._resync_due is not None and time.monotonic() >= self._resync_due:
                self._resync()
            # stop_after=1 returns after the first network packet of notifications, never in the
            # middle of one: breaking out of the generator would drop the rest of that packet.
            received = list(conn.notifies(timeout=tick, stop_after=1))
            now = time.monotonic()
            if received:
                # A single write sends one notification per row it touches (a dispatch: call,
                # unit, assignment...), all sent together at its commit, and more may have come
                # in while the desk refetched the last batch: whatever has arrived joins this
                # batch. With coalesce_seconds 0 that is a poll that never waits; more only
                # delays every change by that much.
                received.extend(conn.notifies(timeout=self._coalesce))
                quiet_since = now
                if any(n.channel == proof for n in received):
                    sent_at = None
                batch = self._batch(n.payload for n in received if n.channel == CHANNEL)
                if batch:
                    self._call(self._on_changes, batch)
            if sent_at is not None and now - sent_at > PROOF_SECONDS:
                late = list(conn.notifies(timeout=0.2))
                batch = self._batch(n.payload for n in late if n.channel == CHANNEL)
                if batch:
                    self._call(self._on_changes, batch)
                if any(n.channel == proof for n in late):
                    sent_at = None  # late, but heard
                    continue
                log.warning(
                    "listener heard nothing of its own notification in %.0f s: the connection "
                    "is deaf (a transaction pooler in front of the server?); polling instead",
                    PROOF_SECONDS,
                )
                return False
            if sent_at is None and now - quiet_since >= self._heartbeat:
                # Also how a server that vanished without closing the socket is found: ask.
                conn.execute("SELECT pg_notify(%s, '')", (proof,))
                sent_at = quiet_since = time.monotonic()
        return True

    def _poll_loop(
        self,
        conn: psycopg.Connection[tuple[object, ...]],
        stop: threading.Event,
        for_seconds: float | None = None,
    ) -> None:
        """Resync every poll_seconds until `stop` (or for `for_seconds`); raises psycopg.Error
        when the connection dies.

        The probe tells "database unreachable" (RECONNECTING) apart from a resync that failed for
        another reason, which the desk reports itself.
        """
        until = None if for_seconds is None else time.monotonic() + for_seconds
        while not stop.wait(self._poll):
            conn.execute("SELECT 1")
            self._set_state(ConnectionState.POLLING)
            self._resync()
            if until is not None and time.monotonic() >= until:
                return

    # -- helpers -----------------------------------------------------------------------------

    def _batch(self, payloads: Iterable[str]) -> list[Change]:
        """The distinct changes in `payloads`, first occurrence first; malformed ones skipped."""
        changes: dict[Change, None] = {}
        for payload in payloads:
            change = parse_payload(payload)
            if change is None:
                # Truncated: anyone may NOTIFY this channel, and the log is not the place for it.
                log.warning("ignoring malformed %s notification: %.200r", CHANNEL, payload)
                continue
            changes.setdefault(change, None)
        return list(changes)

    def _lost(
        self, conn: psycopg.Connection[tuple[object, ...]] | None, exc: psycopg.Error
    ) -> None:
        # Warn once per outage; each failed retry of the same outage is only debug noise.
        if self._state is not ConnectionState.RECONNECTING:
            log.warning("listener lost the database: %s", str(exc).strip() or type(exc).__name__)
        else:
            log.debug("listener still cannot reach the database: %s", exc)
        if conn is not None:
            conn.close()
        self._set_state(ConnectionState.RECONNECTING)

    def _set_state(self, state: ConnectionState) -> None:
        # Report changes only: the desk's status line need not hear "reconnecting" per attempt.
        if state is self._state:
            return
        self._state = state
        log.info("listener %s", state.value)
        self._call(self._on_state, state)

    def _resync(self) -> None:
        """Ask for a full reload; if that fails, ask again every _RESYNC_RETRY_SECONDS.

        Until a resync succeeds the desk may show rows that changed while nobody listened (or,
        at start, nothing at all): no notification would ever correct them.
        """
        try:
            self._on_resync()
        except Exception:
            if self._resync_due is None:
                log.exception("listener resync failed; retrying every %s s", _RESYNC_RETRY_SECONDS)
            else:
                log.debug("listener resync failed again", exc_info=True)
            self._resync_due = time.monotonic() + _RESYNC_RETRY_SECONDS
        else:
            self._resync_due = None

    @staticmethod
    def _call(callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("listener callback %r failed", callback)
