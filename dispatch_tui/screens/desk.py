"""The dispatcher's desk: four live panes, single keys, the command bar, one feedback line.

Thin on purpose: a key or a line in the bar becomes a typed command (`rules/commands.py`), run by
the screen's action worker (`screens/live.py`); the executor's one-line answer comes back on the
feedback line. Snapshots from the database are applied to the panes. Rows newer than a snapshot
are never overwritten by it (each snapshot is one consistent read stamped with the database clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label

from dispatch_tui.rules import commands, grammar, permissions, recommend
from dispatch_tui.rules.enums import UnitStatus
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.lifecycle import label
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import CallView, PlaceView, Snapshot, UnitView
from dispatch_tui.screens.confirm import ConfirmScreen
from dispatch_tui.screens.help import HelpScreen
from dispatch_tui.screens.intake import IntakeScreen
from dispatch_tui.screens.live import (
    ActionDone,
    ConnectionChanged,
    DeskContext,
    LiveScreen,
    SnapshotLoaded,
)
from dispatch_tui.screens.pick import PickScreen
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.executor import ACCEPTED, REFUSED
from dispatch_tui.widgets.command_bar import CommandBar
from dispatch_tui.widgets.panes import UNIT_KEYS, ActiveCalls, Hospitals, Pane, PendingCalls, Units
from dispatch_tui.widgets.status_line import StatusLine


class DeskScreen(LiveScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        # The desk's own keys are priority bindings: the app runs them while it handles the key,
        # before it routes the next one, so what a dispatcher types straight after `n` or `:`
        # lands in the form or the bar, not on the pane underneath (see check_action).
        Binding(
            "n", "new_call", "New call", id="new-call", priority=True, tooltip="the intake form"
        ),
        Binding(
            "colon,slash",
            "command_bar",
            "Command",
            id="command-bar",
            priority=True,
            tooltip="d C-1042 M12, os M12, tx M12 MERCY, av M12, cx M12 …",
        ),
        Binding("question_mark", "help", "Keys", id="help", tooltip="this list"),
    ]

    def __init__(self, context: DeskContext) -> None:
        super().__init__(context)
        assert isinstance(context.service, DispatchService), "the desk writes: it needs the service"
        self.places: list[PlaceView] = []
        self.versions: dict[tuple[str, int], datetime] = {}
        self.updated_at: datetime | None = None
        self.select_when_seen: int | None = None
        styles = context.options.status_styles
        self.pending = PendingCalls(styles, context.options.aging_seconds, id="pending")
        self.active = ActiveCalls(styles, id="active")
        self.units = Units(styles, id="units")
        self.hospitals = Hospitals(styles, id="hospitals")

    def compose(self) -> ComposeResult:
        op = self.context.operator
        yield StatusLine(op.username, op.role, self.context.database_label, id="status")
        with Horizontal(id="panes"):
            with Vertical(id="left"):
                yield self.pending
                yield self.active
            with Vertical(id="right"):
                yield self.units
                yield self.hospitals
        yield Label("", id="feedback")
        yield CommandBar(self._words, id="bar", classes="hidden")
        yield Footer()

    def on_mount(self) -> None:
        op = self.context.operator
        for pane in self.panes():
            pane.permit = lambda action, row: permissions.may(
                op.role, action, own_unit=isinstance(row, UnitView) and row.id == op.unit_id
            )
        self.pending.focus()
        if self.context.options.clock:
            self.set_interval(1.0, self._tick)

    # -- live data ----------------------------------------------------------------------------

    @on(SnapshotLoaded)
    def apply(self, event: SnapshotLoaded) -> None:
        snapshot = event.snapshot
        self.clock_from(snapshot)
        calls = self._fresh("call", snapshot.calls, snapshot)
        units = self._fresh("unit", snapshot.units, snapshot)
        hospitals = self._fresh("hospital", snapshot.hospitals, snapshot)
        now = snapshot.db_now
        with self.app.batch_update():
            # A full snapshot removes rows it does not have, unless a newer partial one set them.
            self.pending.sync(calls, full=snapshot.full, now=now)
            self.active.sync(calls, full=snapshot.full, now=now)
            self.units.sync(units, full=snapshot.full, now=now)
            self.hospitals.sync(hospitals, full=snapshot.full, now=now)
        if snapshot.places:
            self.places = list(snapshot.places)
        if self.select_when_seen is not None:
            self._select_call(self.select_when_seen)
        self.updated_at = now
        status = self.query_one(StatusLine)
        status.last_update, status.now = now, now

    def _fresh(self, kind: str, rows: Iterable[Any], snapshot: Snapshot) -> list[Any]:
        kept = []
        for row in rows:
            key = (kind, row.id)
            seen = self.versions.get(key)
            if seen is not None and seen > snapshot.db_now:
                # A newer read already showed this row: keep it, and let a full snapshot keep it too.
                kept.append(self._current(kind, row.id) or row)
                continue
            self.versions[key] = snapshot.db_now
            kept.append(row)
        if snapshot.full:
            given = {row.id for row in kept}
            for (k, row_id), seen in list(self.versions.items()):
                if k == kind and row_id not in given and seen > snapshot.db_now:
                    current = self._current(kind, row_id)
                    if current is not None:
                        kept.append(current)
        return kept

    def _current(self, kind: str, row_id: int) -> Any:
        key = str(row_id)
        if kind == "call":
            return self.pending.rows_by_key.get(key) or self.active.rows_by_key.get(key)
        if kind == "unit":
            return self.units.rows_by_key.get(key)
        return self.hospitals.rows_by_key.get(key)

    def _tick(self) -> None:
        now = self.db_now()
        with self.app.batch_update():
            for pane in (self.pending, self.active, self.units):
                pane.tick(now)
        self.query_one(StatusLine).now = now

    @on(ConnectionChanged)
    def connection(self, event: ConnectionChanged) -> None:
        self.query_one(StatusLine).state = event.state

    @on(ActionDone)
    def feedback(self, event: ActionDone) -> None:
        self.say(event.message, ok=event.ok)
        outcome = event.answer.outcome
        if isinstance(event.command, commands.NewCall) and outcome is not None:
            self._select_call(outcome.data.id)

    def say(self, message: str, *, ok: bool) -> None:
        line = Text(
            f"{ACCEPTED} " if ok else f"{REFUSED} ", style="bold green" if ok else "bold red"
        )
        line.append(message)
        self.query_one("#feedback", Label).update(line)
        if not ok:
            self.app.bell()

    # -- pane actions: each becomes a command ---------------------------------------------------

    def on_pane_action(self, event: Pane.Action) -> None:
        row, argument = event.row, event.argument
        match event.action:
            case "dispatch":
                self.open_dispatch(row, add=False)
            case "add_unit":
                self.open_dispatch(row, add=True)
            case "cancel_call":
                self._confirm_cancel(row)
            case "close_call":
                self.perform(commands.CloseCall(row.number))
            case "status" if argument == UnitStatus.TRANSPORTING:
                self._ask_destination(row)
            case "status":
                self.perform(commands.SetUnitStatus(row.code, argument))
            case "cancel_unit":
                self.perform(commands.CancelUnit(row.code))
            case "hospital":
                self.perform(commands.SetHospitalStatus(row.code, argument))
            case "beds":
                self.action_command_bar(f"hs {row.code} --beds ")

    def _confirm_cancel(self, call: CallView) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.perform(commands.CancelCall(call.number))

        self.app.push_screen(
            ConfirmScreen(f"Cancel {call.number} ({call.nature}) and release its units?"), answered
        )

    def open_dispatch(self, call: CallView, *, add: bool) -> None:
        """Recommended units for the call, ranked from the live rows the desk already holds, so
        the list opens at once (an Enter typed right after `d` lands in it); Enter takes the top
        one. The service checks everything again when the dispatch is sent."""
        recs = recommend.for_call(call, self.units.rows_by_key.values(), limit=8)
        if not recs:
            self.say(recommend.NO_UNIT_AVAILABLE, ok=False)
            return
        options = []
        for r in recs:
            text = Text()
            text.append(f"{r.rank}. {r.unit.code:<5}", style="bold")
            text.append(f" {r.reason}")
            options.append((r.unit.code, text))

        def chosen(unit: str | None) -> None:
            if unit:
                self.perform(commands.Dispatch(call.number, (unit,), add=add))

        verb = "Add a unit to" if add else "Dispatch to"
        self.app.push_screen(
            PickScreen(f"{verb} {call.number}: recommended units", options), chosen
        )

    def _ask_destination(self, unit: UnitView) -> None:
        call = next(
            (c for c in self.active.rows_by_key.values() if c.number == unit.call_number), None
        )
        ranked = recommend.destinations(call, self.hospitals.rows_by_key.values())
        options = []
        for d in ranked:
            h = d.hospital
            text = Text()
            text.append(f"{h.code:<6}", style="bold")
            text.append(f" {h.name}")
            if d.distance_km is not None:
                text.append(f"  {d.distance_km:.1f} km")
            if h.capabilities:
                text.append(f"  [{', '.join(h.capabilities)}]")
            if d.on_diversion:
                text.append("  ON DIVERSION", style="bold yellow")
            if h.beds_available is not None:
                text.append(f"  {h.beds_available} beds")
            if d.chosen:
                text.append("  (call's destination)", style="italic")
            options.append((h.code, text))
        diversion = {d.hospital.code for d in ranked if d.on_diversion}
        code = unit.code

        def transport(hospital: str, override: bool) -> None:
            self.perform(
                commands.SetUnitStatus(
                    code, UnitStatus.TRANSPORTING, hospital=hospital, divert_override=override
                )
            )

        def chosen(hospital: str | None) -> None:
            if not hospital:
                return
            if hospital not in diversion:
                transport(hospital, False)
                return

            def confirmed(yes: bool | None) -> None:
                if yes:
                    transport(hospital, True)

            self.app.push_screen(
                ConfirmScreen(f"{hospital} is on diversion. Transport there anyway?"), confirmed
            )

        self.app.push_screen(PickScreen(f"{code} transporting to:", options), chosen)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("new_call", "command_bar") and isinstance(self.focused, Input):
            return False  # in the command bar `n` and `/` are characters typed
        if action == "new_call":
            return permissions.may(self.context.operator.role, "create_call")
        return True

    # -- global keys --------------------------------------------------------------------------

    def action_new_call(self) -> None:
        def taken(raw: CallIntake | None) -> None:
            if raw is not None:
                self.perform(commands.NewCall(raw))

        self.app.push_screen(IntakeScreen(self.places), taken)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.help_sections()))

    def help_sections(self) -> list[tuple[str, list[Binding]]]:
        """Every key of the desk, read from the bindings themselves (never retyped)."""
        return [
            (
                "Anywhere",
                [
                    *_bindings(self.app.BINDINGS),
                    *_bindings(self.BINDINGS),
                    # Tab / Shift+Tab move between the panes.
                    *(b for b in _bindings(Screen.BINDINGS) if b.action.startswith("app.focus")),
                    Binding(self.app.COMMAND_PALETTE_BINDING, "command_palette", "Every action"),
                ],
            ),
            *((pane.border_title or "", _bindings(pane.BINDINGS)) for pane in self.panes()),
            ("Command bar", _bindings(CommandBar.BINDINGS)),
        ]

    def _select_call(self, call_id: int) -> None:
        """Select a call just taken: now if its row is there, else when its snapshot arrives."""
        if self.pending.select_id(call_id):
            self.pending.focus()
            self.select_when_seen = None
        else:
            self.select_when_seen = call_id

    def action_command_bar(self, prefill: str = "") -> None:
        bar = self.query_one(CommandBar)
        bar.remove_class("hidden")
        bar.value = prefill
        bar.cursor_position = len(prefill)
        self.set_focus(bar)

    @on(CommandBar.Closed)
    def leave_bar(self) -> None:
        bar = self.query_one(CommandBar)
        bar.add_class("hidden")
        self.pending.focus()

    @on(CommandBar.Entered)
    def command(self, event: CommandBar.Entered) -> None:
        try:
            command = grammar.parse_line(event.line)
        except InvalidInput as err:
            self.say(err.message, ok=False)
            return
        if isinstance(command, commands.LISTINGS):
            self.say(
                "the panes show that already; use the CLI for lists and the audit log", ok=False
            )
            return
        self.perform(command)

    def _words(self) -> list[str]:
        units = [r.code for r in self.units.rows_by_key.values()]
        calls = [r.number for p in (self.pending, self.active) for r in p.rows_by_key.values()]
        hospitals = [r.code for r in self.hospitals.rows_by_key.values()]
        return units + calls + hospitals

    def screen_commands(self) -> Iterable[SystemCommand]:
        """The command palette lists every desk action."""
        yield SystemCommand("New call", "Open the intake form", self.action_new_call)
        yield SystemCommand(
            "Command bar", "Type a verb: d C-1042 M12, os M12 …", self.action_command_bar
        )
        yield SystemCommand("Keys", "Every key of the desk", self.action_help)
        for pane, name in (
            (self.pending, "Pending calls"),
            (self.active, "Active calls"),
            (self.units, "Units"),
            (self.hospitals, "Hospitals"),
        ):
            yield SystemCommand(f"Go to {name}", f"Focus the {name.lower()} pane", pane.focus)
        call = self.pending.selected
        if call is not None:
            yield SystemCommand(
                f"Dispatch {call.number}",
                "Recommended units for the selected pending call",
                lambda: self.open_dispatch(call, add=False),
            )
        unit = self.units.selected
        if unit is not None:
            for _, target, _, _ in UNIT_KEYS:
                yield SystemCommand(
                    f"{unit.code} {label(target)}",
                    "Unit status",
                    lambda t=target: self.units.act("status", t.value),
                )

    def panes(self) -> list[Pane[Any]]:
        return [self.pending, self.active, self.units, self.hospitals]


def _bindings(bindings: Iterable[Any]) -> list[Binding]:
    return [b for b in bindings if isinstance(b, Binding)]
