"""The child process of benchmark 5: start a desk (or the reference app), report when it painted.

Run as `python -m bench.startup_child desk URL` or `... reference CONNINFO PENDING` (the
reference shows the first PENDING open calls in one table, the others in a second); prints one
JSON line of wall-clock marks (time.time) and memory. Only the standard library is imported
before the first mark, so the imports are measured, not hidden in the interpreter's start.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

SETTLE = 1.0  # seconds after the first paint, for any start-up snapshot still on its way to land
IDLE = 1.5  # then seconds of nothing happening, to measure what the desk burns while idle


def _memory() -> dict[str, float]:
    """VmRSS and VmHWM (peak) of this process, in MiB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _run(make_app: Any, marks: dict[str, Any]) -> None:
    """Make and run an app headless until it has painted, settled and idled; note when, and the
    process's memory."""
    import asyncio

    async def main() -> None:
        marks["app"] = time.time()
        app = make_app()
        async with app.run_test(size=(160, 48)) as pilot:
            while "painted" not in marks:
                await pilot.pause(0.005)
            await pilot.pause(SETTLE)
            cpu = time.process_time()
            await pilot.pause(IDLE)
            marks["idle_cpu"] = (time.process_time() - cpu) / IDLE
            marks.update(_memory())

    asyncio.run(main())


# -- the children --------------------------------------------------------------------------------


def child_desk(url: str) -> dict[str, Any]:
    t0 = time.time()
    import tempfile

    from dispatch_tui.app import DispatchApp
    from dispatch_tui.config import DeskOptions
    from dispatch_tui.db.connect import open_database
    from dispatch_tui.db.engine import make_sessionmaker
    from dispatch_tui.screens.live import DeskContext
    from dispatch_tui.service.dispatch_service import DispatchService
    from dispatch_tui.widgets.panes import Hospitals

    marks: dict[str, Any] = {"start": t0, "imported": time.time()}
    db = open_database(url, Path(tempfile.gettempdir()), application_name="dispatch-tui desk")
    service = DispatchService(make_sessionmaker(db.engine), desk="desk@bench")
    operator = service.operator("alice")
    context = DeskContext(service, operator, db.label, url, DeskOptions.load())
    marks["connected"] = time.time()

    original_sync = Hospitals.sync

    def sync(self: Any, rows: Any, *, full: bool, now: Any) -> None:
        original_sync(self, rows, full=full, now=now)
        if full and "applied" not in marks:
            marks["applied"] = time.time()
            marks["units_shown"] = len(self.screen.units.rows_by_key)
            marks["calls_shown"] = len(self.screen.pending.rows_by_key) + len(
                self.screen.active.rows_by_key
            )
            self.app.call_after_refresh(lambda: marks.setdefault("painted", time.time()))

    Hospitals.sync = sync  # type: ignore[method-assign]

    _run(lambda: DispatchApp(context), marks)
    db.engine.dispose()
    return marks


def child_reference(conninfo: str, pending: int) -> dict[str, Any]:
    t0 = time.time()
    import psycopg
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    marks: dict[str, Any] = {"start": t0, "imported": time.time()}
    with psycopg.connect(conninfo) as conn:
        calls = conn.execute(
            "SELECT number, priority, status, nature, location_text FROM calls"
            # Open: the condition of the open calls' index (migration 0019), as the desk reads.
            " WHERE closed_at IS NULL AND cancelled_at IS NULL ORDER BY priority, received_at"
        ).fetchall()
        units = conn.execute(
            "SELECT code, capability, status, status_since::text, station_id FROM units ORDER BY code"
        ).fetchall()
        hospitals = conn.execute(
            "SELECT code, status, beds_available, capabilities::text FROM hospitals ORDER BY code"
        ).fetchall()
    marks["connected"] = time.time()

    class Reference(App[None]):
        def compose(self) -> ComposeResult:
            for _ in range(4):
                yield DataTable()

        def on_mount(self) -> None:
            tables = list(self.query(DataTable))
            for table, rows in zip(
                tables, (calls[:pending], calls[pending:], units, hospitals), strict=True
            ):
                table.add_columns(*(f"c{i}" for i in range(len(rows[0]))))
                table.add_rows([[str(v) for v in row] for row in rows])
            marks["applied"] = time.time()
            self.call_after_refresh(lambda: marks.setdefault("painted", time.time()))

    _run(Reference, marks)
    marks["units_shown"], marks["calls_shown"] = len(units), len(calls)
    return marks


if __name__ == "__main__":
    kind, target = sys.argv[1], sys.argv[2]
    print(
        json.dumps(
            child_desk(target) if kind == "desk" else child_reference(target, int(sys.argv[3]))
        )
    )
