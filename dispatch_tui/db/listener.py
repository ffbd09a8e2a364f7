"""Live refresh: wait for the change notifications the database triggers send.

Migration 0002 makes every INSERT, UPDATE and DELETE on the displayed tables send a small JSON
payload (`{"table", "id", "op"}`, plus `call_id`/`unit_id` for assignments) on `CHANNEL` when its
transaction commits, whoever the writer is. `Listener.run` blocks in a worker thread on its own
autocommit connection and hands the desk coalesced batches of `Change`s; the desk refetches those
rows by id.

Notifications sent while nobody listens are lost, so after every (re)connect the listener asks
for a full resync. When LISTEN is not available (`listen=False`, or a pooler that refuses it) it
falls back to asking for a resync every `poll_seconds`.

**The relay** (`relay=`): so that a change costs the server one read, not one per desk, the
listeners of logins that may read everything take part in a relay. The one holding the relay's
advisory lock (`RELAY_LOCK`) hears the plain notifications, reads the changed rows once
(`Relaying.publish`) and sends them as they now are on the rows channel, whose name is a secret
of the database (`relay_channel`, migration 0015); every other one (a follower) listens there
only, and applies what arrives without reading (`Relaying.receive`). The relay says it is alive
every `RELAY_BEAT_SECONDS`; a follower that hears nothing on the rows channel for
`RELAY_SILENCE_SECONDS` takes the lock (it is the relay now) or, if the relay holds it but is
silent, goes back to hearing plain notifications and reading for itself; either way it reloads
everything first, since what the relay did not send meanwhile is lost to it.

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
from typing import Protocol, TypeGuard

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from dispatch_tui.db.engine import libpq_params, normalise_url
from dispatch_tui.rules.wire import Assembler

__all__ = [
    "CHANNEL",
    "Change",
    "ConnectionState",
    "Listener",
    "RelayRole",
    "Relaying",
    "conninfo_from_url",
    "touched",
]

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

# The relay: one session-level advisory lock per database names the relay (an arbitrary key,
# "dispatch relay" in ASCII); it beats this often when quiet; a follower that hears nothing on
# the rows channel for this long looks for a new relay.
RELAY_LOCK = 0x6469737061746368
RELAY_BEAT_SECONDS = 1.0
RELAY_SILENCE_SECONDS = 3.0
_BEAT = '{"beat":1}'
_RELOAD = '{"reload":1}'
# Whether this login may read the rows channel's name (migration 0015), and the name: asked in
# two statements, or the server would log a refusal on every connect of a paramedic's or a
# board's login (it checks a table's rights before running a statement that names it).
MAY_RELAY = (
    "SELECT to_regclass('relay_channel') IS NOT NULL"
    " AND has_table_privilege('relay_channel', 'SELECT')"
)
RELAY_CHANNEL = "SELECT name FROM relay_channel"


class RelayRole(StrEnum):
    NONE = "none"  # not in the relay: reads what plain notifications name (crew, polling)
    RELAY = "relay"  # reads each change once and sends the rows to the followers
    FOLLOWER = "follower"  # applies the rows the relay sends
    ALONE = "alone"  # the relay is silent: reads for itself until it is heard again


class Relaying(Protocol):
    """What a listener in the relay is given (`service.relay.Relay`); called on its thread."""

    def publish(self, changes: list[Change]) -> list[str]:
        """The payloads that carry these changes' rows as they now are (read once)."""
        ...

    def receive(self, payloads: list[str]) -> None:
        """Apply one relayed change (all its parts, in order); ValueError if malformed."""
        ...


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


def touched(changes: Iterable[Change]) -> tuple[set[int], set[int], set[int]]:
    """Which calls, units and hospitals a batch of notifications touches."""
    calls: set[int] = set()
    units: set[int] = set()
    hospitals: set[int] = set()
    for change in changes:
        if change.table == "calls":
            calls.add(change.id)
        elif change.table == "units":
            units.add(change.id)
        elif change.table == "hospitals":
            hospitals.add(change.id)
        elif change.table == "narrative" and change.call_id is not None:
            calls.add(change.call_id)  # an open record follows its call's narrative
        elif change.table in ("assignments", "queued", "alerts"):
            if change.call_id is not None:
                calls.add(change.call_id)
            if change.unit_id is not None:
                units.add(change.unit_id)
    return calls, units, hospitals


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
        relay: Relaying | None = None,
        on_role: Callable[[RelayRole], None] | None = None,
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
        # The relay (see the module's docstring): this listener's part in it, the rows channel
        # (None: this login may not read its name, or no relay), the parts of a change not yet
        # all in, when the rows channel was last heard, when the relay last beat.
        self._relay = relay
        self._on_role = on_role  # told when its part in the relay changes
        self.role = RelayRole.NONE
        self._rows: str | None = None
        self._assembler = Assembler()
        self._rows_heard = 0.0
        self._beat_at = 0.0

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
                        if listening:
                            self._join_relay(conn)
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
                self._deliver(conn, received)
            self._relay_upkeep(conn)
            if sent_at is not None and now - sent_at > PROOF_SECONDS:
                late = list(conn.notifies(timeout=0.2))
                self._deliver(conn, late)
                if any(n.channel == proof for n in late):
                    sent_at = None  # late, but heard
                    continue
                log.warning(
                    "listener heard nothing of its own notification in %.0f s: the connection "
                    "is deaf (a transaction pooler in front of the server?); polling instead",
                    PROOF_SECONDS,
                )
                self._leave_relay(conn)
                return False
            if sent_at is None and now - quiet_since >= self._heartbeat:
                # Also how a server that vanished without closing the socket is found: ask.
                conn.execute("SELECT pg_notify(%s, '')", (proof,))
                sent_at = quiet_since = time.monotonic()
        return True

    def _deliver(
        self, conn: psycopg.Connection[tuple[object, ...]], received: list[psycopg.Notify]
    ) -> None:
        """Hand on what arrived: plain changes to read (or, for the relay, to publish), and
        the relay's rows to apply."""
        batch = self._batch(n.payload for n in received if n.channel == CHANNEL)
        if batch:
            if self.role is RelayRole.RELAY:
                self._publish(conn, batch)
            elif self.role is not RelayRole.FOLLOWER:
                # (A follower hears plain changes only before its UNLISTEN takes effect; the
                # relay sends those.)
                self._call(self._on_changes, batch)
        if self._rows is None:
            return
        for notification in received:
            if notification.channel == self._rows:
                self._rows_heard = time.monotonic()
                self._relayed(conn, notification.payload)

    def _relayed(self, conn: psycopg.Connection[tuple[object, ...]], payload: str) -> None:
        """One notification on the rows channel: a beat, a call to reload, or a part of a
        change, applied once all its parts are in."""
        assert self._relay is not None
        if self.role is RelayRole.ALONE:
            log.info("listener hears the relay again: following it")
            conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(CHANNEL)))
            self._set_role(RelayRole.FOLLOWER)
        if payload == _BEAT:
            return
        if payload == _RELOAD:
            if self.role is not RelayRole.RELAY:  # (the relay reloaded as it sent it)
                self._resync()
            return
        parts = self._assembler.add(payload)
        if self._assembler.broken:
            self._assembler.broken = False
            log.warning("parts of a relayed change were lost: reloading everything")
            self._resync()
        if parts is None:
            return
        try:
            self._relay.receive(parts)
        except ValueError as exc:
            # (Not its content: the rows carry callers' names and addresses.)
            log.warning("a relayed change was refused (%s): reloading everything", exc)
            self._resync()
        except Exception:
            # Applied in part, or not at all: only a reload makes the desk right again.
            log.exception("applying a relayed change failed: reloading everything")
            self._resync()

    def _publish(self, conn: psycopg.Connection[tuple[object, ...]], batch: list[Change]) -> None:
        """As the relay: read the changed rows once and send them to every follower (and to
        itself: every listener applies the rows channel alike). A read that fails tells every
        follower to reload instead; a connection that fails raises, and the relay is free."""
        assert self._relay is not None and self._rows is not None
        try:
            payloads = self._relay.publish(batch)
        except Exception:
            log.exception("the relay could not read or write a change: every desk reloads")
            payloads = []
        try:
            if payloads:
                self._notify_rows(conn, payloads)
                return
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            log.exception("the relay could not send a change: every desk reloads")
        self._resync()
        self._notify_rows(conn, [_RELOAD])

    def _notify_rows(
        self, conn: psycopg.Connection[tuple[object, ...]], payloads: list[str]
    ) -> None:
        """Send payloads on the rows channel in one transaction: they arrive together, in
        order, or not at all."""
        assert self._rows is not None
        with conn.transaction():
            for payload in payloads:
                conn.execute("SELECT pg_notify(%s, %s)", (self._rows, payload))
        self._beat_at = time.monotonic()

    def _join_relay(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """On a new connection: find the rows channel, then be the relay if no one is, else
        follow it (plain notifications are then not this listener's concern)."""
        self._set_role(RelayRole.NONE)
        self._rows = None
        if self._relay is None:
            return
        try:
            allowed = conn.execute(MAY_RELAY).fetchone()
            row = conn.execute(RELAY_CHANNEL).fetchone() if allowed and allowed[0] else None
            if row is None:
                # A paramedic's or a board's login, or a database before migration 0015.
                log.info("listener is not in the relay: it reads what it is told")
                return
            if not self._proven(conn):
                log.warning("listener's notifications do not come back: not in the relay")
                return
            self._rows = str(row[0])
            self._assembler = Assembler()
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._rows)))
            self._rows_heard = time.monotonic()
            if self._take_relay(conn):
                return
            conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(CHANNEL)))
            self._set_role(RelayRole.FOLLOWER)
        except psycopg.OperationalError:
            raise
        except psycopg.Error:
            log.exception("listener could not join the relay: it reads what it is told")
            self._leave_relay(conn)

    def _proven(self, conn: psycopg.Connection[tuple[object, ...]]) -> bool:
        """Whether a notification of this connection's own comes back on it (not behind a
        transaction pooler): only then may it hold the relay's lock, which is its session's."""
        channel = f"dispatch_join_{uuid.uuid4().hex[:16]}"
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        conn.execute("SELECT pg_notify(%s, '')", (channel,))
        back = any(n.channel == channel for n in conn.notifies(timeout=2.0, stop_after=1))
        conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(channel)))
        return back

    def _leave_relay(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Out of the relay on this connection: its lock given back, plain notifications heard."""
        if self.role is RelayRole.RELAY:
            conn.execute("SELECT pg_advisory_unlock(%s)", (RELAY_LOCK,))
        if self.role in (RelayRole.RELAY, RelayRole.FOLLOWER):
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        if self._rows is not None:
            conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(self._rows)))
        self._set_role(RelayRole.NONE)
        self._rows = None

    def _set_role(self, role: RelayRole) -> None:
        if role is self.role:
            return
        self.role = role
        if self._on_role is not None:
            self._call(self._on_role, role)

    def _take_relay(self, conn: psycopg.Connection[tuple[object, ...]]) -> bool:
        row = conn.execute("SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,)).fetchone()
        if not (row and row[0]):
            return False
        log.info("listener is the relay now (backend pid %s)", conn.info.backend_pid)
        self._set_role(RelayRole.RELAY)
        self._assembler = Assembler()
        # Every follower reloads: what changed while no relay listened was sent to nobody. (It
        # hears plain notifications already, so its reload, at its caller, misses nothing.)
        self._notify_rows(conn, [_RELOAD])
        return True

    def _relay_upkeep(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """The relay beats when quiet; a follower that hears no relay takes its place, or
        reads for itself until it hears one again (reloading first: what the relay did not
        send meanwhile is lost to it)."""
        if self._rows is None:
            return
        now = time.monotonic()
        if self.role is RelayRole.RELAY:
            if now - self._beat_at >= RELAY_BEAT_SECONDS:
                conn.execute("SELECT pg_notify(%s, %s)", (self._rows, _BEAT))
                self._beat_at = now
            return
        if now - self._rows_heard < RELAY_SILENCE_SECONDS:
            return
        self._rows_heard = now  # (alone: try for the relay again after as long)
        if self.role is RelayRole.FOLLOWER:
            log.warning("listener has not heard the relay for %.0f s", RELAY_SILENCE_SECONDS)
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
            if not self._take_relay(conn):
                self._set_role(RelayRole.ALONE)
                self._assembler = Assembler()
            self._resync()
        elif self.role is RelayRole.ALONE:
            self._take_relay(conn)

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
        self._set_role(RelayRole.NONE)  # its lock went with its session
        self._rows = None
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
