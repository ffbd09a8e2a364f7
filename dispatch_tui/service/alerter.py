"""The alerter: delivers the crew alerts of the outbox (migration 0008), never losing one.

Triggers write an alert in the transaction that dispatched or stood down a unit, so a committed
change always has its alert and a rolled-back one never does. The alerter hands each to the
centre's sender: a command (`DISPATCH_ALERT_COMMAND`, e.g. a pager or SMS gateway script) that
gets the alert as one line of JSON on stdin and exits 0 once the gateway took it.

- **Claiming.** A worker takes the oldest due alert with `FOR UPDATE SKIP LOCKED` and holds that
  row lock while the sender runs, then records the outcome and commits. A unit's alerts leave in
  the order they were written: one waits while an earlier one for the same unit is pending
  (being sent, or waiting to be tried again), so a crew never gets a stand-down before the
  dispatch it stands down. Several alerters (or
  workers) never send the same alert at the same time: the lock is PostgreSQL's, and it ends
  with the worker's connection. An alerter killed midway leaves the alert pending, unchanged, to
  be claimed again: delivery is at least once, and each alert carries a stable id (`id`, a UUID)
  for a gateway to drop a duplicate.
- **Overtaken.** A dispatch alert whose unit was stood down (or cleared) before it was sent, as
  happens while a gateway is down, is not sent: it is `superseded`, with why. Its stand-down is
  always sent: an attempt at the dispatch cut short (an alerter killed mid-send) may have paged
  the crew without leaving a trace, and a stand-down for a call a crew never heard of is only
  puzzling, where a page to a call it no longer has sends it there.
- **Reminders.** A dispatch the crew has not acknowledged (nor reported en route or on scene)
  `remind_after` seconds after its alert went out is paged again, once: a `reminder` alert,
  written by `dispatch_remind` (migration 0021) as the alerter looks for work. One acknowledged
  meanwhile is superseded, not sent.
- **Outcomes.** Exit 0: sent. Another exit, no answer within the timeout (the sender is killed),
  or a command that cannot start: a failed attempt, with its reason; tried again after a backoff
  (doubling) until the attempts run out, then failed for good: every desk shows a failed alert
  loudly.
- **Waking.** The alerter listens for the change notifications (the change to an assignment
  that wrote an alert wakes it at once), looks again after every reconnect, and also polls, so
  an alert is never left waiting for a notification that was lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from dispatch_tui.db.listener import Change, ConnectionState, Listener
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.norms import ACK_SECONDS

log = logging.getLogger(__name__)

# The oldest due alert no other worker holds, locked until this worker commits its outcome,
# with what it tells the crew as it is now (its destination: the assignment's, else the call's).
_CLAIM = text(
    """
SELECT a.id, a.uid, a.kind, a.attempts, a.created_at,
       CASE WHEN s.cancelled_at IS NOT NULL THEN 'stood down'
            WHEN s.cleared_at IS NOT NULL THEN 'cleared'
            WHEN a.kind = 'reminder' AND (s.acknowledged_at IS NOT NULL
                 OR s.en_route_at IS NOT NULL OR s.on_scene_at IS NOT NULL)
            THEN 'acknowledged' END AS ended,
       jsonb_build_object(
           'unit', u.code,
           'call', c.number,
           'priority', c.priority,
           'determinant', c.determinant,
           'nature', c.nature,
           'location', c.location_text,
           'lat', c.lat,
           'lon', c.lon,
           'callback', c.caller_phone,
           'destination', h.code,
           'notified_at', s.notified_at,
           'cancelled_at', s.cancelled_at
       ) AS payload
FROM alerts a
JOIN assignments s ON s.id = a.assignment_id
JOIN calls c ON c.id = a.call_id
JOIN units u ON u.id = a.unit_id
LEFT JOIN hospitals h ON h.id = coalesce(s.hospital_id, c.destination_hospital_id)
WHERE a.state = 'pending' AND a.next_attempt_at <= clock_timestamp()
  -- A unit's alerts leave in order: a stand-down never before the dispatch it stands down.
  AND NOT EXISTS (
      SELECT 1 FROM alerts e WHERE e.state = 'pending' AND e.unit_id = a.unit_id AND e.id < a.id
  )
ORDER BY a.next_attempt_at, a.id
LIMIT 1
FOR UPDATE OF a SKIP LOCKED
"""
)
_SENT = text(
    """
UPDATE alerts SET state = 'sent', attempts = attempts + 1, sent_at = clock_timestamp(),
    last_attempt_at = clock_timestamp(), last_error = NULL
WHERE id = :id
RETURNING state, extract(epoch FROM clock_timestamp() - created_at)
"""
)
# A dispatch alert overtaken before it was sent (see `Alerter._superseded`): not sent (again).
# The error of an earlier try is kept after why, and the time of that try (the one that may
# have paged the crew); with none, when the alerter settled it (the time its record shows).
_SUPERSEDED = text(
    """
UPDATE alerts SET state = 'superseded',
    last_error = :why || coalesce('; its last try: ' || last_error, ''),
    last_attempt_at = coalesce(last_attempt_at, clock_timestamp())
WHERE id = :id
RETURNING state, extract(epoch FROM clock_timestamp() - created_at)
"""
)
# A failed attempt: tried again after `delay` seconds, or failed for good after the last one.
_FAILED = text(
    """
UPDATE alerts SET attempts = attempts + 1, last_attempt_at = clock_timestamp(),
    last_error = :error,
    state = CASE WHEN attempts + 1 >= :attempts THEN 'failed' ELSE 'pending' END,
    next_attempt_at = clock_timestamp() + make_interval(secs => :delay)
WHERE id = :id
RETURNING state, extract(epoch FROM clock_timestamp() - created_at)
"""
)
# Seconds until the next pending alert is due (None: none is pending).
_NEXT_DUE = text(
    "SELECT extract(epoch FROM min(next_attempt_at) - clock_timestamp())"
    " FROM alerts WHERE state = 'pending'"
)
# Seconds until the next reminder is due (None: none will be, as things stand): read from the
# open assignments, never the history of alerts.
_NEXT_REMINDER = text(
    """
SELECT extract(epoch FROM min(d.sent_at) + make_interval(secs => :after) - clock_timestamp())
FROM assignments s
JOIN alerts d ON d.assignment_id = s.id AND d.kind = 'dispatch' AND d.state = 'sent'
WHERE s.cleared_at IS NULL AND s.cancelled_at IS NULL
  AND s.acknowledged_at IS NULL AND s.en_route_at IS NULL AND s.on_scene_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM alerts r WHERE r.assignment_id = s.id AND r.kind = 'reminder'
  )
"""
)
_REMIND = text("SELECT dispatch_remind(:after)")

# The longest a worker sleeps without looking (the poll behind the notifications), and the
# least, when it found nothing to claim yet an alert is due (another worker holds it).
POLL_SECONDS = 5.0
_LEAST_WAIT = 0.25
# A reason is kept this long at most (a sender's stderr can be anything).
_REASON_MAX = 300


@dataclass(frozen=True, slots=True)
class SenderSettings:
    """How alerts leave: the command, and how long and how often it is given."""

    command: tuple[str, ...]
    timeout: float = 10.0  # seconds one delivery may take before the sender is killed
    attempts: int = 5  # tries in all before an alert is failed for good
    backoff: float = 2.0  # seconds before the second try; doubling, at most `backoff_cap`
    backoff_cap: float = 60.0
    workers: int = 2  # alerts delivered at once by one alerter
    # Seconds after a dispatch alert went out with no acknowledgement before the crew is paged
    # again, once (None: never).
    remind_after: float | None = float(ACK_SECONDS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SenderSettings:
        """From DISPATCH_ALERT_COMMAND (required), DISPATCH_ALERT_TIMEOUT, _ATTEMPTS,
        _BACKOFF, _WORKERS and _REMIND_SECONDS (0: no reminders; by default the desk's
        DISPATCH_ACK_SECONDS); a bad value is refused in one line."""
        raw = environ.get("DISPATCH_ALERT_COMMAND", "").strip()
        if not raw:
            raise InvalidInput(
                "set DISPATCH_ALERT_COMMAND to the command that sends an alert "
                "(it gets the alert as JSON on stdin; see the README)"
            )
        try:
            command = tuple(shlex.split(raw))
        except ValueError as err:
            raise InvalidInput(f"DISPATCH_ALERT_COMMAND cannot be read: {err}") from None
        return cls(
            command=command,
            timeout=_number(environ, "DISPATCH_ALERT_TIMEOUT", 10.0, 0.1, 600),
            attempts=int(_number(environ, "DISPATCH_ALERT_ATTEMPTS", 5, 1, 100)),
            backoff=_number(environ, "DISPATCH_ALERT_BACKOFF", 2.0, 0, 3600),
            workers=int(_number(environ, "DISPATCH_ALERT_WORKERS", 2, 1, 32)),
            remind_after=_number(
                environ,
                "DISPATCH_ALERT_REMIND_SECONDS",
                _number(environ, "DISPATCH_ACK_SECONDS", ACK_SECONDS, 1, 3600),
                0,
                3600,
            )
            or None,
        )

    def delay(self, attempts_made: int) -> float:
        """Seconds before the next try, after `attempts_made` tries."""
        return float(min(self.backoff * 2 ** max(attempts_made - 1, 0), self.backoff_cap))


def _number(
    environ: Mapping[str, str], name: str, default: float, low: float, high: float
) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, not '{raw[:24]}'") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be {low:g}–{high:g}, not {value:g}")
    return value


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt at one alert, as it ended."""

    alert_id: str  # the stable id (uid)
    kind: str
    unit: str
    call: str
    attempt: int
    sent: bool
    # The alert's state after this attempt: sent, pending (tried again), failed, or superseded
    # (overtaken before it was sent, and not sent: `error` says why).
    state: str
    error: str | None
    seconds: float  # from the alert's creation to the end of this attempt (server's clock)

    @property
    def settled(self) -> bool:
        """Whether nothing more is owed for it: sent, or superseded (the crew needs no page)."""
        return self.state in ("sent", "superseded")

    def line(self) -> str:
        what = f"{self.kind.replace('_', ' ')} {self.unit} → {self.call} (alert {self.alert_id})"
        if self.state == "superseded":
            return f"not sent: {what}: {self.error}"
        if self.sent:
            return f"sent {what}, attempt {self.attempt}, {self.seconds:.2f} s after the change"
        then = "failed for good" if self.state == "failed" else "will try again"
        return f"attempt {self.attempt} of {what} failed: {self.error}; {then}"


def message(row: Any) -> str:
    """The alert as the sender gets it: one line of JSON, its stable id first."""
    document = {
        "id": str(row.uid),
        "kind": row.kind,
        "attempt": row.attempts + 1,
        "created_at": row.created_at.isoformat(),
        **row.payload,
    }
    return json.dumps(document, separators=(",", ":"), default=str)


def send(settings: SenderSettings, line: str) -> str | None:
    """Run the sender with the alert on stdin: None when it took it, else why not. A sender
    that does not answer within the timeout is killed (its whole process group)."""
    try:
        process = subprocess.Popen(  # the centre's own configured command
            settings.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own group, so a timeout kills its children too
        )
    except OSError as err:
        return f"cannot run {settings.command[0]}: {err.strerror or err}"
    try:
        _, err_bytes = process.communicate(line.encode() + b"\n", timeout=settings.timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        return f"no answer in {settings.timeout:g} s (the sender was stopped)"
    if process.returncode == 0:
        return None
    said = err_bytes.decode(errors="replace").strip().splitlines()
    why = f": {said[-1]}" if said else ""
    code = process.returncode
    ended = f"killed by signal {-code}" if code < 0 else f"exit {code}"
    return f"{ended}{why}"[:_REASON_MAX]


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.kill()
    try:
        process.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        # A descendant that left the group still holds its pipes: let go of them rather
        # than wait for it (the alert's outcome is recorded either way).
        for pipe in (process.stdin, process.stdout, process.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        process.wait(timeout=5)


def _delivery(row: Any, attempt: int, state: str, error: str | None, age: float) -> Delivery:
    """What became of a claimed alert, as the alerter reports it; `age` by the server's clock,
    as the alert's creation was."""
    payload: dict[str, Any] = row.payload
    return Delivery(
        alert_id=str(row.uid),
        kind=row.kind,
        unit=str(payload.get("unit", "?")),
        call=str(payload.get("call", "?")),
        attempt=attempt,
        sent=state == "sent",
        state=state,
        error=error,
        seconds=float(age),
    )


class Alerter:
    """Delivers due alerts with `settings.workers` workers until stopped."""

    def __init__(
        self,
        engine: Engine,
        settings: SenderSettings,
        *,
        listen_url: str | None = None,
        report: Callable[[Delivery], None] = lambda _: None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.listen_url = listen_url
        self.report = report
        self._wake = threading.Condition()
        self._woken = 0  # bumped by every wake-up, so a worker sees one that came while it worked
        # When reminders were last written (monotonic): one look a second is enough; and
        # whether they could be, the last time (their times wake the workers only then).
        self._reminded = float("-inf")
        self._reminding = threading.Lock()
        self._reminders_work = True

    def deliver_one(self) -> Delivery | None:
        """Claim the oldest due alert, send it, record the outcome; None when none is due."""
        with self.engine.connect() as conn, conn.begin():
            row = conn.execute(_CLAIM).one_or_none()
            if row is None:
                return None
            if row.kind in ("dispatch", "reminder") and row.ended is not None:
                return self._superseded(conn, row)
            error = send(self.settings, message(row))
            try:
                if error is None:
                    state, age = conn.execute(_SENT, {"id": row.id}).one()
                else:
                    delay = self.settings.delay(row.attempts + 1)
                    state, age = conn.execute(
                        _FAILED,
                        {
                            "id": row.id,
                            "error": error,
                            "attempts": self.settings.attempts,
                            "delay": delay,
                        },
                    ).one()
            except DBAPIError:
                # Its lock ends with the connection: the alert is pending again, and is sent
                # again (at least once; the gateway drops the duplicate by its id).
                log.warning(
                    "alert %s: attempt %d %s, but the outcome could not be recorded; it will be "
                    "delivered again",
                    row.uid,
                    row.attempts + 1,
                    "was sent" if error is None else "failed",
                )
                raise
        return _delivery(row, row.attempts + 1, state, error, age)

    def _superseded(self, conn: Any, row: Any) -> Delivery:
        """A dispatch alert whose unit was stood down or cleared before it was sent (or a
        reminder the crew no longer needs): not sent, so the crew is not paged to a call it no
        longer has. A stand-down written with it is next in the unit's order, and is sent."""
        who = (
            "the crew had the call" if row.ended == "acknowledged" else f"the unit was {row.ended}"
        )
        if row.attempts == 0:
            why = f"{who} before it was sent"
        else:  # a try that failed may still have reached the crew: say so
            tries = "1 try" if row.attempts == 1 else f"{row.attempts} tries"
            paged = "" if row.ended == "acknowledged" else " (the crew may have been paged)"
            why = f"{who} before it went through; not tried again after {tries}{paged}"
        state, age = conn.execute(_SUPERSEDED, {"id": row.id, "why": why}).one()
        log.info("alert %s (%s) superseded: %s", row.uid, row.kind, why)
        return _delivery(row, row.attempts, state, why, age)

    def remind(self, *, every: float = 1.0) -> int:
        """Write the reminders due now (`dispatch_remind`), at most once every `every` seconds
        across the workers; how many were written. Reminders that cannot be written (the
        server gone, the function not granted to this login) are said in the log and never
        hold up the alerts themselves: the delivery goes on, and the reminders' times stop
        waking the workers (`_next_due`) until they can be written again."""
        after = self.settings.remind_after
        if after is None:
            return 0
        with self._reminding:
            if time.monotonic() - self._reminded < every:
                return 0
            self._reminded = time.monotonic()
        try:
            with self.engine.begin() as conn:
                written = int(conn.execute(_REMIND, {"after": after}).scalar_one())
        except DBAPIError as err:
            if self._reminders_work:
                log.warning("reminders could not be written: %s", str(err).splitlines()[0])
            self._reminders_work = False
            return 0
        self._reminders_work = True
        if written:
            log.info("%d unacknowledged dispatch(es) to page again", written)
        return written

    def deliver_due(self) -> list[Delivery]:
        """Deliver every alert due now (one worker, in turn): for `alerter --once` and tests."""
        self.remind(every=0)
        done: list[Delivery] = []
        while (delivery := self.deliver_one()) is not None:
            done.append(delivery)
            self.report(delivery)
        return done

    def wake(self) -> None:
        with self._wake:
            self._woken += 1
            self._wake.notify_all()

    def _on_changes(self, changes: list[Change]) -> None:
        # An alert is written by a change to an assignment (a dispatch, a stand-down), whose
        # notification wakes the alerter; a spare look finds nothing due and costs one query.
        if any(c.table == "assignments" for c in changes):
            self.wake()

    def _on_state(self, state: ConnectionState) -> None:
        log.info("alerter's notifications: %s", state.value)

    def _next_due(self) -> float:
        """Seconds to sleep before looking again: until the next retry is due, at most the
        poll interval."""
        try:
            with self.engine.connect() as conn:
                due = conn.execute(_NEXT_DUE).scalar_one_or_none()
                after = self.settings.remind_after
                if after is not None and self._reminders_work:
                    reminder = conn.execute(_NEXT_REMINDER, {"after": after}).scalar_one_or_none()
                    if reminder is not None:
                        due = reminder if due is None else min(due, reminder)
        except DBAPIError:
            return 1.0
        if due is None:
            return POLL_SECONDS
        # Due now, yet not claimed: another worker holds it, or an earlier alert of its unit
        # is pending. Look again shortly (a wake-up comes sooner), never in a busy loop.
        return min(max(float(due), _LEAST_WAIT), POLL_SECONDS)

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self._wake:
                seen = self._woken
            try:
                self.remind()
                delivery = self.deliver_one()
            except DBAPIError as err:
                # The server went away (or refused): the claimed alert, if any, is pending
                # again when the connection ends. Wait a little and look again.
                log.warning("alerter lost the database: %s", str(err).splitlines()[0])
                stop.wait(1.0)
                continue
            except Exception:
                # Anything else is a bug; the worker carries on (its alert, if it held one, is
                # pending again) rather than end without a word.
                log.exception("alerter worker failed; going on")
                stop.wait(1.0)
                continue
            if delivery is not None:
                self.report(delivery)
                continue
            wait = self._next_due()
            with self._wake:
                if self._woken == seen and not stop.is_set():
                    self._wake.wait(wait)

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; returns once the workers finish their deliveries."""
        threads = [
            threading.Thread(target=self._work, args=(stop,), name=f"alerter-{i}", daemon=True)
            for i in range(self.settings.workers)
        ]
        listener: threading.Thread | None = None
        if self.listen_url is not None:
            feed = Listener(
                self.listen_url,
                on_changes=self._on_changes,
                on_state=self._on_state,
                on_resync=self.wake,  # after a (re)connect: anything may have been missed
                poll_seconds=POLL_SECONDS,
            )
            listener = threading.Thread(
                target=feed.run, args=(stop,), name="alerter-listener", daemon=True
            )
            listener.start()
        for thread in threads:
            thread.start()
        try:
            stop.wait()
        finally:
            self.wake()
            for thread in threads:
                thread.join()
            if listener is not None:
                listener.join()
