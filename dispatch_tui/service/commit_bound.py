"""A bound on how long a commit may wait: a write never hangs for ever on a stalled standby.

With synchronous replication, PostgreSQL writes a commit locally and then waits, holding every
row lock the transaction took, until a synchronous standby confirms it. When no such standby is
connected (it died, or a promoted standby kept `synchronous_standby_names`), that wait has no
end: `statement_timeout` does not cover it (the server disarms it before committing) and
`lock_timeout` only bounds lock waits. Every later write to the same unit then answers "another
desk is holding that record" for as long as the first one hangs.

`COMMIT_SECONDS` after a commit (or a one-statement write, which is its own commit) was sent,
one watchdog thread sends the server a cancel request for it. A cancelled wait ends at once:
the server keeps the commit (it is already written locally), releases the locks, and answers
with a warning. The caller then asks how the transaction ended and says so: saved on the
primary but unconfirmed by any standby (`UNCONFIRMED`, an outcome-unknown answer), or not saved.

The watchdog polls its armed entries every `_TICK_SECONDS` rather than being woken per write,
so arming costs a dict insert: the dispatch's hot path pays no thread switch. After
`_SLEEP_AFTER_SECONDS` with nothing armed it sleeps until the next commit wakes it. A cancel is sent
under the entry's own lock and `disarm` takes that lock, so once `disarm` returns no cancel for
that connection can still be on its way (it would cancel whatever the connection ran next).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COMMIT_SECONDS", "Watch", "bounded"]

log = logging.getLogger(__name__)


def _seconds_from_env() -> float:
    raw = os.environ.get("DISPATCH_COMMIT_SECONDS", "").strip()
    try:
        value = float(raw)
    except ValueError:
        return 10.0
    return value if 0 < value <= 600 else 10.0


# Longer than the database's lock_timeout (5 s, migration 0011): a statement waiting on a lock
# gives up by itself first, and only a commit waiting for a standby meets this bound.
COMMIT_SECONDS = _seconds_from_env()
_TICK_SECONDS = 0.1
# Nothing armed for this long, the watchdog stops looking until a commit arms it again.
_SLEEP_AFTER_SECONDS = 10.0
_CANCEL_TIMEOUT_SECONDS = 3.0


@dataclass(eq=False)
class Watch:
    """One bounded commit: `fired` once the bound passed and the cancel was sent."""

    connection: Any  # a psycopg connection
    deadline: float
    fired: bool = False
    armed: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Watchdog:
    """The one thread that cancels commits past their bound."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._woken = threading.Condition(self._lock)
        self._armed: dict[int, Watch] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._asleep = False  # nothing armed for a while: waiting to be woken, not polling

    def arm(self, connection: Any, seconds: float) -> tuple[int, Watch]:
        watch = Watch(connection, time.monotonic() + seconds)
        key = next(self._ids)
        with self._lock:
            self._armed[key] = watch
            if self._asleep:
                self._woken.notify()  # (under load it never sleeps: no wake-up per write)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="dispatch-commit-bound", daemon=True
                )
                self._thread.start()
        return key, watch

    def disarm(self, key: int, watch: Watch) -> None:
        with self._lock:
            self._armed.pop(key, None)
        with watch.lock:  # waits for a cancel being sent right now
            watch.armed = False

    def _run(self) -> None:
        busy = time.monotonic()  # when something was last armed, as far as it saw
        while True:
            with self._lock:
                if not self._armed and time.monotonic() - busy > _SLEEP_AFTER_SECONDS:
                    self._asleep = True
                    self._woken.wait_for(lambda: bool(self._armed))
                    self._asleep = False
            time.sleep(_TICK_SECONDS)
            now = time.monotonic()
            with self._lock:
                if self._armed:
                    busy = now
                due = [(k, w) for k, w in self._armed.items() if w.deadline <= now]
                for key, _ in due:
                    del self._armed[key]
            for _, watch in due:
                self._cancel(watch)

    @staticmethod
    def _cancel(watch: Watch) -> None:
        with watch.lock:
            if not watch.armed:
                return
            watch.fired = True
            log.warning(
                "a commit outlived its bound of %.1f s: cancelling its wait", COMMIT_SECONDS
            )
            try:
                watch.connection.cancel_safe(timeout=_CANCEL_TIMEOUT_SECONDS)
            except Exception:  # the caller treats a fired watch as in doubt anyway
                log.warning("could not send the cancel request", exc_info=True)


_WATCHDOG = _Watchdog()


@contextmanager
def bounded(connection: Any, seconds: float | None = None) -> Iterator[Watch]:
    """Run the body (a commit on `connection`, a psycopg connection) under the bound; the
    Watch says whether the bound passed. The connection must stay the caller's until this
    returns (not back in a pool), or a late cancel could reach its next user."""
    key, watch = _WATCHDOG.arm(connection, COMMIT_SECONDS if seconds is None else seconds)
    try:
        yield watch
    finally:
        _WATCHDOG.disarm(key, watch)
