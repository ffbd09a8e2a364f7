"""The commit bound's watchdog: it cancels past the bound, never after a disarm, and wakes from
its sleep for a commit armed while nothing else was (no database: a stand-in connection)."""

from __future__ import annotations

import threading
import time

import pytest

from dispatch_tui.service import commit_bound


class Connection:
    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def cancel_safe(self, timeout: float) -> None:
        self.cancelled.set()


@pytest.fixture
def watchdog(monkeypatch: pytest.MonkeyPatch) -> commit_bound._Watchdog:
    monkeypatch.setattr(commit_bound, "_SLEEP_AFTER_SECONDS", 0.2)
    return commit_bound._Watchdog()


def test_a_commit_past_its_bound_is_cancelled_and_says_so(watchdog: commit_bound._Watchdog) -> None:
    conn = Connection()
    key, watch = watchdog.arm(conn, 0.2)
    assert conn.cancelled.wait(3)
    watchdog.disarm(key, watch)
    assert watch.fired


def test_a_commit_done_in_time_is_never_cancelled(watchdog: commit_bound._Watchdog) -> None:
    conn = Connection()
    key, watch = watchdog.arm(conn, 0.3)
    watchdog.disarm(key, watch)
    time.sleep(0.6)
    assert not conn.cancelled.is_set() and not watch.fired


def test_the_watchdog_asleep_wakes_for_the_next_commit(watchdog: commit_bound._Watchdog) -> None:
    first = Connection()
    key, watch = watchdog.arm(first, 5)
    watchdog.disarm(key, watch)
    deadline = time.monotonic() + 5
    while not watchdog._asleep:  # nothing armed past _SLEEP_AFTER_SECONDS: it sleeps
        assert time.monotonic() < deadline, "the watchdog never went to sleep"
        time.sleep(0.01)
    late = Connection()
    key, watch = watchdog.arm(late, 0.2)
    assert late.cancelled.wait(3)
    watchdog.disarm(key, watch)
    assert watch.fired and not first.cancelled.is_set()
