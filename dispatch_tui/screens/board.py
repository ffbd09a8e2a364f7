"""The supervisor's wall board: read-only, glanceable, live.

No key or command on it changes anything, and its database sessions are read-only in PostgreSQL
itself. It shows KPIs against the norms (90th percentiles, never means) for the last hour, the
shift and 24 h; pending calls by priority; units available by capability, with a loud warning when
no ALS unit is free; hospitals on diversion; active calls; and the overdue timers, ringing the
terminal bell once when a timer first goes overdue. `m` shows the map below the status line in
their place (units, calls and hospitals on the streets), and `m` again the board; the timers
ring the bell all the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import ClassVar

from rich import box
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Footer, Static

from dispatch_tui.rules import norms, recommend
from dispatch_tui.rules.enums import CallStatus
from dispatch_tui.rules.lifecycle import unit_state
from dispatch_tui.rules.norms import clock
from dispatch_tui.rules.views import CallView, HospitalView, UnitView
from dispatch_tui.screens.live import DeskContext, LiveScreen, SnapshotLoaded
from dispatch_tui.widgets.map_view import MapView
from dispatch_tui.widgets.panes import status_text, unit_times
from dispatch_tui.widgets.status_line import StatusLine

WINDOWS = ("last hour", "shift", "24 h")
# The timers the board lists by name; the rest are counted in one row.
TIMER_ROWS = 12


class KpisLoaded(Message):
    def __init__(self, kpis: dict[str, dict[str, list[norms.Kpi]]]) -> None:
        super().__init__()
        self.kpis = kpis


def _seconds(value: float | None) -> str:
    return "—" if value is None else clock(value)


class BoardScreen(LiveScreen):
    # Out of the relay: it may read a standby while it listens to the primary, and the rows it
    # would send every desk must be the primary's.
    in_relay = False

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh_kpis", "Refresh KPIs", id="refresh"),
        Binding(
            "m",
            "map",
            "Map",
            id="board-map",
            tooltip="units, calls and hospitals on the streets; m again: the board",
        ),
    ]

    def __init__(self, context: DeskContext, *, now: Callable[[], datetime] | None = None) -> None:
        super().__init__(context)
        self.calls: dict[int, CallView] = {}
        self.units: dict[int, UnitView] = {}
        self.hospitals: dict[int, HospitalView] = {}
        self.kpis: dict[str, dict[str, list[norms.Kpi]]] = {}
        self.overdue_seen: set[str] = set()
        self._now = now
        # The map, in the place of all below the status line while it is shown (`m`): on a
        # 100×30 board nothing less leaves it room. A board selects nothing, so its map has
        # no `c`; `]` goes from call to call.
        self.map = MapView(
            context.options.status_styles,
            stale_seconds=context.options.stale_position_seconds,
            id="board-map",
        )
        self.map.display = False

    def now(self) -> datetime:
        return self._now() if self._now is not None else self.db_now()

    def compose(self) -> ComposeResult:
        op = self.context.operator
        yield StatusLine(
            op.username, f"{op.role}, read-only board", self.context.database_label, id="status"
        )
        yield Static(id="kpis")
        with Horizontal(id="board-middle"):
            yield Static(id="situation", classes="board-box")
            yield Static(id="timers", classes="board-box")
        yield Static(id="board-active", classes="board-box")
        yield self.map
        yield Footer()

    def on_mount(self) -> None:
        self.load_kpis()
        self.set_interval(30.0, self.load_kpis)
        if self.context.options.clock:
            self.set_interval(1.0, self.render_all)

    # -- data ---------------------------------------------------------------------------------

    @on(SnapshotLoaded)
    def apply(self, event: SnapshotLoaded) -> None:
        snapshot = event.snapshot
        self.clock_from(snapshot)
        if snapshot.full:
            self.calls, self.units, self.hospitals = {}, {}, {}
        for call in snapshot.calls:
            if not CallStatus(call.status).is_open:
                self.calls.pop(call.id, None)
            else:
                self.calls[call.id] = call
        self.units.update({u.id: u for u in snapshot.units})
        self.hospitals.update({h.id: h for h in snapshot.hospitals})
        status = self.query_one(StatusLine)
        status.last_update = status.now = snapshot.db_now
        if snapshot.full:
            status.standby_age = snapshot.standby_age
        if any(not CallStatus(c.status).is_open for c in snapshot.calls):
            self.load_kpis()  # a call just finished: the numbers moved
        if self.map.display:
            self.map.show(
                self.units.values(), self.calls.values(), self.hospitals.values(), self.now()
            )
        self.render_all()

    @on(KpisLoaded)
    def kpis_loaded(self, event: KpisLoaded) -> None:
        self.kpis = event.kpis
        self.render_all()

    @work(thread=True, exit_on_error=False, group="kpis", exclusive=True)
    def load_kpis(self) -> None:
        now = self.now()
        windows = {
            "last hour": (now - timedelta(hours=1), now),
            "shift": (norms.shift_start(now), now),
            "24 h": (now - timedelta(hours=24), now),
        }
        self.post_message(KpisLoaded(self.context.service.kpis(windows)))

    def action_refresh_kpis(self) -> None:
        self.load_kpis()

    def action_map(self) -> None:
        """The map in the board's place, or the board again."""
        showing = not self.map.display
        self.map.display = showing
        for part in ("#kpis", "#board-middle", "#board-active"):
            self.query_one(part).display = not showing
        if showing:
            self.map.show(
                self.units.values(), self.calls.values(), self.hospitals.values(), self.now()
            )
            self.map.focus()

    # -- rendering ----------------------------------------------------------------------------

    def render_all(self) -> None:
        now = self.now()
        self.query_one(StatusLine).now = now
        self.query_one("#kpis", Static).update(self._kpi_table())
        self.query_one("#situation", Static).update(self._situation(now))
        self.query_one("#timers", Static).update(self._timer_table(now))
        self.query_one("#board-active", Static).update(self._active(now))
        if self.map.display:
            self.map.tick(now)

    def _kpi_table(self) -> RenderableType:
        table = Table(
            title="Performance: 90th percentile against the goal · share within goal · count",
            expand=True,
            title_style="bold",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        table.add_column("Interval", style="bold")
        table.add_column("Goal")
        for window in WINDOWS:
            table.add_column(window.capitalize(), justify="right")
        for index, norm in enumerate(norms.NORMS):
            cells: list[Text] = []
            for window in WINDOWS:
                kpi = self.kpis.get(window, {}).get("all", [None] * len(norms.NORMS))[index]
                cells.append(self._kpi_cell(kpi))
            table.add_row(Text(norm.label), Text(clock(norm.goal_seconds)), *cells)
        return table

    @staticmethod
    def _kpi_cell(kpi: norms.Kpi | None) -> Text:
        if kpi is None or kpi.count == 0:
            return Text("no data", style="dim")
        share = f"{kpi.share:.0%}" if kpi.share is not None else "—"
        verdict = "MET" if kpi.ok else "MISSED"
        text = Text(f"{_seconds(kpi.p90)} ")
        text.append(verdict, style="bold green" if kpi.ok else "bold reverse red")
        text.append(f" {share} n={kpi.count}", style="dim")
        return text

    def _situation(self, now: datetime) -> RenderableType:
        parts: list[RenderableType] = []
        pending = [c for c in self.calls.values() if c.status == "RECEIVED"]
        # The counts on one line and the oldest calls' ages on the next: on one line they did
        # not fit half of a 100-column board, and wrapped mid-phrase.
        line = Text("Pending  ", style="bold")
        ages = Text("  oldest  ", style="dim")
        for priority in (1, 2, 3, 4):
            these = [c for c in pending if c.priority == priority]
            urgent = priority == 1 and bool(these)
            line.append(f"P{priority} {len(these)}", style="bold reverse red" if urgent else "bold")
            line.append("  ")
            if these:
                oldest = max((now - c.received_at).total_seconds() for c in these)
                ages.append(f"P{priority} {_seconds(oldest)}  ")
        parts.append(line)
        if pending:
            parts.append(ages)
        available = Counter(u.capability for u in self.units.values() if u.status == "AVAILABLE")
        line = Text("Available  ", style="bold")
        line.append(f"ALS {available['ALS']}  ", style="bold")
        line.append(f"BLS {available['BLS']}", style="bold")
        parts.append(line)
        if available["ALS"] == 0:
            parts.append(Text(" ⚠ NO ALS UNIT AVAILABLE ", style="bold reverse red"))
        parts.extend(self._next_to_clear(pending, now))
        by_status = Counter(unit_state(u.status, u.en_route_reported) for u in self.units.values())
        # Each state with its count is one piece that wraps whole (ON SCENE 1 never splits).
        statuses = [Text("Units", style="bold")]
        for status, count in sorted(by_status.items()):
            piece = status_text(status, self.context.options.status_styles)
            piece.append(f" {count}")
            statuses.append(piece)
        parts.append(Columns(statuses, padding=(0, 2)))
        closed = [h for h in self.hospitals.values() if h.status != "OPEN"]
        hospitals = Text("Hospitals  ", style="bold")
        if not closed:
            hospitals.append("all open", style="green")
        for h in sorted(closed, key=lambda h: h.code):
            hospitals.append(f"{h.code} ")
            hospitals.append_text(status_text(h.status, self.context.options.status_styles))
            hospitals.append("  ")
        parts.append(hospitals)
        return Group(*parts)

    def _next_to_clear(self, pending: list[CallView], now: datetime) -> list[Text]:
        """For the most urgent pending P1/P2 calls no free unit suits: who clears first."""
        units = list(self.units.values())
        free_als = any(u.status == "AVAILABLE" and u.capability == "ALS" for u in units)
        if free_als:
            return []
        lines = []
        urgent = sorted(
            (c for c in pending if c.priority <= 2), key=lambda c: (c.priority, c.received_at)
        )
        for call in urgent[:3]:
            clearing = recommend.next_to_clear(call, units, now, limit=2)
            if not clearing:
                continue
            line = Text(f"{call.number} P{call.priority} next to clear: ", style="bold")
            line.append(
                " · ".join(
                    f"{c.unit.code} ~{round(c.free_in / 60)} min"
                    + (f" (there ~{round(c.eta / 60)})" if c.eta is not None else "")
                    for c in clearing
                )
            )
            lines.append(line)
        return lines

    def _timer_table(self, now: datetime) -> RenderableType:
        rules = norms.timer_rules(self.context.options.ack_seconds)
        found = norms.timers(self.calls.values(), now, rules)
        newly = {t.key for t in found if t.overdue} - self.overdue_seen
        if newly:
            self.app.bell()  # once per timer, when it first goes overdue
        self.overdue_seen = {t.key for t in found if t.overdue} | (
            self.overdue_seen & {t.key for t in found}
        )
        table = Table(
            title="Timers", expand=True, title_style="bold", box=box.SIMPLE_HEAD, padding=(0, 1)
        )
        table.add_column("What", no_wrap=True)
        table.add_column("Call", no_wrap=True)
        table.add_column("Unit", no_wrap=True)
        table.add_column("Time", justify="right", no_wrap=True)
        table.add_column("", no_wrap=True, min_width=8)
        for t in found[:TIMER_ROWS]:
            flag = (
                Text("OVERDUE", style="bold reverse red")
                if t.overdue
                else Text(f"of {clock(t.rule.seconds)}", style="dim")
            )
            table.add_row(
                Text(t.rule.label),
                Text(t.call_number),
                Text(t.unit_code or ""),
                Text(clock(t.elapsed)),
                flag,
            )
        if len(found) > TIMER_ROWS:  # said, never cut silently
            more = len(found) - TIMER_ROWS
            overdue = sum(t.overdue for t in found[TIMER_ROWS:])
            table.add_row(Text(f"+ {more} more ({overdue} overdue)", style="bold"), "", "", "", "")
        if not found:
            table.add_row(Text("no running timers", style="dim"), "", "", "", "")
        return table

    def _active(self, now: datetime) -> RenderableType:
        table = Table(
            title="Active calls",
            expand=True,
            title_style="bold",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        for column in ("Call", "P", "Status", "Units: status, time in status", "Nature"):
            table.add_column(column)
        active = sorted(
            (c for c in self.calls.values() if c.status != "RECEIVED"),
            key=lambda c: (c.priority, c.received_at),
        )
        for c in active:
            table.add_row(
                Text(c.number),
                Text(f"P{c.priority}"),
                status_text(c.status, self.context.options.status_styles),
                Text(unit_times(c, now, ack_seconds=self.context.options.ack_seconds)),
                Text(c.nature),
            )
        return table
