"""Helpers for tests that drive a headless desk (`App.run_test`), written once.

Every wait is on a condition, never a fixed sleep; the generous default limit matters only on a
machine loaded by other work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dispatch_tui.app import DispatchApp
from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
from dispatch_tui.screens.desk import DeskScreen
from dispatch_tui.screens.live import DeskContext
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.widgets.status_line import StatusLine


def desk(world: ReadService, url: str, user: str = "alice", **options: Any) -> DispatchApp:
    """A desk for `user` on the test database, its clock off (tests move time themselves)."""
    opts = DeskOptions(dict(DEFAULT_AGING), dict(DEFAULT_STATUS_STYLES), clock=False, **options)
    context = DeskContext(world, world.operator(user), "test", url, opts)
    return DispatchApp(context)


async def until(pilot: Any, predicate: Callable[[], Any], within: float = 20.0) -> float:
    """Wait, letting the app run, until `predicate` holds; return how long that took."""
    started = time.monotonic()
    deadline = started + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await pilot.pause(0.02)
    return time.monotonic() - started


def screen_of(app: DispatchApp) -> DeskScreen:
    assert isinstance(app.desk, DeskScreen)
    return app.desk


def status_line(app: DispatchApp) -> StatusLine:
    return screen_of(app).query_one(StatusLine)


def feedback(app: DispatchApp) -> str:
    return str(screen_of(app).query_one("#feedback").render())


def pending_numbers(app: DispatchApp) -> list[str]:
    """The pending calls in the order the pane shows them."""
    pane = screen_of(app).pending
    return [pane.get_row_at(i)[0].plain for i in range(pane.row_count)]


def active_numbers(app: DispatchApp) -> set[str]:
    return {c.number for c in screen_of(app).active.rows_by_key.values()}


def unit_status(app: DispatchApp, code: str) -> str | None:
    return next(
        (u.status for u in screen_of(app).units.rows_by_key.values() if u.code == code), None
    )
