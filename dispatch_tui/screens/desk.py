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
from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label

from dispatch_tui.config import DeskOptions
from dispatch_tui.rules import commands, grammar, permissions
from dispatch_tui.rules.enums import UnitStatus
from dispatch_tui.rules.errors import DispatchError, InvalidInput
from dispatch_tui.rules.lifecycle import UNIT_STEPS, label
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import CallView, HospitalView, PlaceView, Snapshot, UnitView
from dispatch_tui.screens.dialogs import DeskDialogs
from dispatch_tui.screens.find import FindScreen
from dispatch_tui.screens.help import HelpScreen
from dispatch_tui.screens.intake import IntakeScreen
from dispatch_tui.screens.live import (
    ActionDone,
    DeskContext,
    LiveScreen,
    SnapshotLoaded,
)
from dispatch_tui.screens.record import RecordScreen
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.executor import ACCEPTED, REFUSED
from dispatch_tui.widgets.command_bar import CommandBar
from dispatch_tui.widgets.map_canvas import call_key, hospital_key, unit_key
from dispatch_tui.widgets.map_view import MapView
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
        Binding(
            "ctrl+f",
            "find",
            "Find",
            id="find",
            priority=True,
            tooltip="calls by number, address, caller, phone; units by code",
        ),
        Binding(
            "m",
            "map",
            "Map",
            id="map",
            tooltip="units, calls and hospitals on the streets; m again: the panes",
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
        # The call record open over the desk, if any (it follows the call's changes), and the
        # intake form waiting for its call to be saved.
        self.record_screen: RecordScreen | None = None
        self.intake: IntakeScreen | None = None
        self.find_screen: FindScreen | None = None
        # The questions before an action (a disposition, a reason, a unit to send).
        self.dialogs = DeskDialogs(self)
        styles = context.options.status_styles
        self.pending = PendingCalls(styles, context.options.aging_seconds, id="pending")
        self.active = ActiveCalls(styles, context.options.ack_seconds, id="active")
        self.units = Units(styles, context.options.stale_position_seconds, id="units")
        self.hospitals = Hospitals(styles, id="hospitals")
        # The map, in the panes' place while it is shown (`m`); `map_from` is the pane whose
        # selected row it centres on (`c`).
        self.map = MapView(
            styles,
            stale_seconds=context.options.stale_position_seconds,
            selection=self._selection_key,
            id="map",
        )
        self.map.display = False
        self.map_from: Pane[Any] = self.pending

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
        yield self.map
        yield Label("", id="feedback")
        yield CommandBar(self._words, id="bar", classes="hidden")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        op = self.context.operator
        for pane in self.panes():
            pane.permit = lambda action, row: permissions.may(
                op.role, action, own_unit=isinstance(row, UnitView) and row.id == op.unit_id
            )
        self.pending.focus()
        if self.context.options.clock:
            self.set_interval(1.0, self._tick)

    @property
    def options(self) -> DeskOptions:
        return self.context.options

    # -- live data ----------------------------------------------------------------------------

    @on(SnapshotLoaded)
    def apply(self, event: SnapshotLoaded) -> None:
        snapshot = event.snapshot
        if not event.relayed:
            self.clock_from(snapshot)
        calls = self._fresh("call", snapshot.calls, snapshot)
        units = self._fresh("unit", snapshot.units, snapshot)
        hospitals = self._fresh("hospital", snapshot.hospitals, snapshot)
        now = snapshot.db_now
        before = set(self.pending.rows_by_key) if not snapshot.full else None
        with self.app.batch_update():
            # A full snapshot removes rows it does not have, unless a newer partial one set them.
            self.pending.sync(calls, full=snapshot.full, now=now)
            self.active.sync(calls, full=snapshot.full, now=now)
            self.units.sync(units, full=snapshot.full, now=now)
            self.hospitals.sync(hospitals, full=snapshot.full, now=now)
            if self.map.display:
                self._feed_map()
        if snapshot.places:
            self.places = list(snapshot.places)
        if self.select_when_seen is not None:
            self._select_call(self.select_when_seen)
        record = self.record_screen
        if record is not None and (
            snapshot.full or record.call_id is None or record.call_id in {c.id for c in calls}
        ):
            self._load_record(record.number)
        if before is not None:
            self._tell_new_above([c for c in calls if str(c.id) not in before])
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

    def _tell_new_above(self, calls: list[CallView]) -> None:
        """A call that arrives above the selected pending call is said on the status line: the
        selection stays on its call, which moves down, and the new one could go unseen."""
        pane = self.pending
        if pane.row_count < 2 or pane.cursor_row <= 0:
            return
        selected = pane.cursor_row
        above = [
            c
            for c in calls
            if str(c.id) in pane.rows_by_key and pane.get_row_index(str(c.id)) < selected
        ]
        if above:
            top = min(above, key=lambda c: (c.priority, c.received_at))
            more = f" (+{len(above) - 1})" if len(above) > 1 else ""
            self.query_one(StatusLine).notify_above(
                f"new P{top.priority} {top.number}{more} above the selection: Home goes to the top"
            )

    def _find(self, text: str) -> None:
        self._search(text)

    def _tick(self) -> None:
        now = self.db_now()
        with self.app.batch_update():
            for pane in (self.pending, self.active, self.units):
                pane.tick(now)
            if self.map.display:
                self.map.tick(now)
        self.query_one(StatusLine).now = now

    @on(ActionDone)
    def feedback(self, event: ActionDone) -> None:
        form = self.intake
        if form is not None and event.command is form.sent:
            # The intake form's call: saved, the form closes; not saved, it stays open with
            # everything typed, and says why; in doubt, it waits (saving is held) until the
            # desk has found out, and then closes or takes the call again under a new id (the
            # check gave the old one up).
            if event.ok:
                form.dismiss(None)
            elif event.answer.in_doubt:
                form.waiting(event.message)
            elif event.answer.duplicates and isinstance(event.command, commands.NewCall):
                form.refused(event.message)
                raw = event.command.intake
                self.dialogs.duplicate(
                    raw,
                    event.answer.duplicates,
                    lambda then: self._save_intake(form, raw, then),
                )
            else:
                form.refused(event.message, settled=event.answer.settled)
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
        if self.record_screen is not None:
            self.record_screen.say(line)
        if not ok:
            self.app.bell()

    # -- pane actions: each becomes a command ---------------------------------------------------

    def on_pane_action(self, event: Pane.Action) -> None:
        row, argument = event.row, event.argument
        match event.action:
            case "record":
                self.open_record(row.number)
            case "note":
                self.dialogs.note(row)
            case "edit":
                self.dialogs.edit(row)
            case "dispatch":
                self.dialogs.dispatch(row, add=False)
            case "add_unit":
                self.dialogs.dispatch(row, add=True)
            case "cancel_call":
                self.dialogs.cancel_call(row)
            case "close_call":
                self.dialogs.close_call(row)
            case "status" if argument == UnitStatus.TRANSPORTING:
                self.dialogs.transport(row)
            case "status" if argument == UnitStatus.OUT_OF_SERVICE:
                self.dialogs.out_of_service(row)
            case "status":
                self.perform(commands.SetUnitStatus(row.code, argument))
            case "cancel_unit":
                self.dialogs.cancel_unit(row)
            case "divert":
                self.dialogs.divert(row)
            case "line_up":
                self.dialogs.line_up(row)
            case "hospital":
                self.perform(commands.SetHospitalStatus(row.code, argument))
            case "beds":
                self.action_command_bar(f"hs {row.code} --beds ")

    # -- the call record ------------------------------------------------------------------------

    def open_record(self, number: str) -> None:
        """Open a call's record over the desk; it follows the call while open."""
        if self.record_screen is not None:
            self.record_screen.dismiss(None)
        role = self.context.operator.role
        screen = RecordScreen(
            number,
            self._record_act,
            lambda action: permissions.may(role, _RECORD_ACTIONS.get(action, action)),
        )
        self.record_screen = screen

        def closed(_: None) -> None:
            if self.record_screen is screen:
                self.record_screen = None

        self.app.push_screen(screen, closed)
        self._load_record(number)

    @work(thread=True, exit_on_error=False, group="record", exclusive=True)
    def _load_record(self, number: str) -> None:
        try:
            record = self.context.service.record(number)
        except DispatchError as err:
            self.app.call_from_thread(self.say, err.message, ok=False)
            return
        screen = self.record_screen
        if screen is not None and screen.number == number and screen.is_attached:
            self.app.call_from_thread(screen.show, record)

    def _record_act(self, action: str, call: CallView) -> None:
        match action:
            case "note":
                self.dialogs.note(call)
            case "edit":
                self.dialogs.edit(call)
            case "dispatch":
                self.dialogs.dispatch(call, add=bool(call.active_units))
            case "close":
                self.dialogs.close_call(call)
            case "cancel":
                self.dialogs.cancel_call(call)
            case "reopen":
                self.dialogs.reopen(call)

    # -- find -----------------------------------------------------------------------------------

    def action_find(self, text: str = "") -> None:
        def chosen(found: str | None) -> None:
            self.find_screen = None
            if not found:
                return
            kind, _, name = found.partition(":")
            if kind == "call":
                self.open_record(name)
            else:
                self._select_unit(name)

        screen = FindScreen(self._find)
        self.find_screen = screen
        self.app.push_screen(screen, chosen)
        if text:
            screen.call_after_refresh(screen.query_one("#find", Input).insert_text_at_cursor, text)

    @work(thread=True, exit_on_error=False, group="find", exclusive=True)
    def _search(self, text: str) -> None:
        try:
            found = self.context.service.find(text)
        except DispatchError as err:
            self.app.call_from_thread(self.say, err.message, ok=False)
            return
        screen = self.find_screen
        if screen is not None and screen.is_attached:
            self.app.call_from_thread(screen.show, text, found)

    def _select_unit(self, code: str) -> None:
        unit = next((u for u in self.units.rows_by_key.values() if u.code == code), None)
        if unit is not None and self.units.select_id(unit.id):
            self._focus_pane(self.units)
            if self.map.display:
                self.map.centre_on(unit_key(code))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("new_call", "command_bar") and isinstance(self.focused, Input):
            return False  # in the command bar `n` and `/` are characters typed
        if action == "new_call":
            return permissions.may(self.context.operator.role, "create_call")
        return True

    def on_key(self, event: events.Key) -> None:
        """`n` on a desk whose operator may not take calls says so (the key is not offered)."""
        if event.key == "n" and not permissions.may(self.context.operator.role, "create_call"):
            event.stop()
            self.say(
                permissions.refusal(
                    self.context.operator.username, self.context.operator.role, "create_call"
                ).message,
                ok=False,
            )

    # -- global keys --------------------------------------------------------------------------

    def action_new_call(self) -> None:
        """The intake form. Opening it records the answer time (the call is received then);
        Ctrl+S saves, and the form stays open with everything typed until the call is saved."""
        form = IntakeScreen(
            self.places, save=self._save_intake, look_up=self._look_up, complete=self._complete
        )
        self.intake = form

        def closed(_: CallIntake | None) -> None:
            if self.intake is form:
                self.intake = None

        self.app.push_screen(form, closed)
        self._answer(form)

    def _save_intake(
        self, form: IntakeScreen, raw: CallIntake, then: commands.Command | None = None
    ) -> None:
        command = then or commands.NewCall(raw)
        form.sent = command
        # One request id for the form: saved again after a lost answer, the call is taken once.
        self.perform(command, form.request_id)

    @work(thread=True, exit_on_error=False, group="address", exclusive=True)
    def _look_up(self, form: IntakeScreen, address: str) -> None:
        """The hazards and the calls of an address typed on the intake form."""
        try:
            facts = self.context.service.address_facts(address)
        except DispatchError:
            return  # the form goes on without them; saving says what is wrong
        self.app.call_from_thread(form.address_facts, address, facts)

    @work(thread=True, exit_on_error=False, group="complete", exclusive=True)
    def _complete(self, form: IntakeScreen, typed: str) -> None:
        """What the gazetteer offers for a location typed on the intake form."""
        try:
            found = self.context.service.complete(typed)
        except DispatchError:
            return  # the form goes on without a list; the address is looked up when saved
        self.app.call_from_thread(form.completions, typed, found)

    @work(thread=True, exit_on_error=False, group="answer")
    def _answer(self, form: IntakeScreen) -> None:
        service = self.context.service
        assert isinstance(service, DispatchService)
        try:
            ticket = service.answer(self.context.operator.username)
        except DispatchError:
            # The call is then received when it is saved; the form says so.
            self.app.call_from_thread(form.answered_at, None)
            return
        self.app.call_from_thread(form.answered_at, ticket)

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
            *((pane.pane_title, _bindings(pane.BINDINGS)) for pane in self.panes()),
            ("Map", _bindings(MapView.BINDINGS)),
            ("Command bar", _bindings(CommandBar.BINDINGS)),
        ]

    def _select_call(self, call_id: int) -> None:
        """Select a call just taken: now if its row is there, else when its snapshot arrives."""
        if self.pending.select_id(call_id):
            self._focus_pane(self.pending)
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
        if self.map.display:
            self.map.focus()
        else:
            self.pending.focus()

    @on(CommandBar.Entered)
    def command(self, event: CommandBar.Entered) -> None:
        try:
            command = grammar.parse_line(event.line)
        except InvalidInput as err:
            self.say(err.message, ok=False)
            return
        match command:
            case commands.ShowCall(number):
                self.open_record(number)
            case commands.Audit(number) if number:
                self.open_record(number)  # its timeline is the call's audit, in words
            case commands.Find(text):
                self.action_find(text)
            case commands.Audit():
                self.say(
                    "a call's audit is its record's timeline: audit --call C-1042 (or Enter on "
                    "the call); the whole log: dispatch-tui audit",
                    ok=False,
                )
            case commands.Show(what):
                self.say(
                    f"the panes show the {what}; dispatch-tui show {what} lists them", ok=False
                )
            case _:
                self.perform(command)

    def _words(self, head: str) -> list[str]:
        """What Tab offers after `head`: the units, calls or hospitals that fit there."""
        words = head.lower().split()
        verb, given = (words[0], len(words)) if words else ("", 0)
        units = list(self.units.rows_by_key.values())
        calls = [r.number for p in (self.pending, self.active) for r in p.rows_by_key.values()]
        hospitals = [r.code for r in self.hospitals.rows_by_key.values()]
        if verb in ("d", "disp", "dispatch"):
            return calls if given == 1 else [u.code for u in units if u.status == "AVAILABLE"]
        if verb in grammar.STATUS_SHORTHANDS:
            if given >= 2:
                return hospitals if verb in ("tx", "t") else []
            target = UnitStatus(grammar.STATUS_SHORTHANDS[verb].upper())
            return [u.code for u in units if (UnitStatus(u.status), target) in UNIT_STEPS]
        if verb == "cx":
            return [u.code for u in units if u.status == UnitStatus.EN_ROUTE]
        if verb in ("hs", "hospital"):
            return hospitals
        if verb in ("note", "update", "reopen", "call", "rec", "recommend", "audit"):
            return calls
        return [u.code for u in units] + calls + hospitals

    def screen_commands(self) -> Iterable[SystemCommand]:
        """The command palette lists every desk action."""
        yield SystemCommand("New call", "Open the intake form", self.action_new_call)
        yield SystemCommand(
            "Command bar", "Type a verb: d C-1042 M12, os M12 …", self.action_command_bar
        )
        yield SystemCommand("Keys", "Every key of the desk", self.action_help)
        yield SystemCommand(
            "Map", "Units, calls and hospitals on the streets (or back)", self.action_map
        )
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
                lambda: self.dialogs.dispatch(call, add=False),
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

    # -- the map ----------------------------------------------------------------------------------

    def action_map(self) -> None:
        """Show the map in the panes' place, or the panes again. The map opens on what the
        panes show now, with their selected row marked; the panes keep their selection."""
        panes = self.query_one("#panes")
        if self.map.display:
            self.map.display = False
            panes.display = True
            self.map_from.focus()
            return
        if isinstance(self.focused, Pane):
            self.map_from = self.focused
        self.map.selected = self._selection_key()
        panes.display = False
        self.map.display = True
        self._feed_map()
        self.map.focus()

    def _feed_map(self) -> None:
        """The map drawn from the rows the panes hold (the desk's live snapshot)."""
        calls = [*self.pending.rows_by_key.values(), *self.active.rows_by_key.values()]
        now = self.units.now or self.db_now()
        self.map.show(
            self.units.rows_by_key.values(), calls, self.hospitals.rows_by_key.values(), now
        )

    def _selection_key(self) -> str | None:
        """The map's key of the row selected in the pane the map was opened from."""
        row = self.map_from.selected
        if isinstance(row, CallView):
            return call_key(row.number)
        if isinstance(row, UnitView):
            return unit_key(row.code)
        if isinstance(row, HospitalView):
            return hospital_key(row.code)
        return None

    @on(MapView.Chosen)
    def map_chose(self, event: MapView.Chosen) -> None:
        """A call the map centred on by its own keys is selected in its pane too: back on the
        panes (m), `d` dispatches it."""
        kind, _, name = event.key.partition(":")
        if kind != "call":
            return
        for pane in (self.pending, self.active):
            row = next((c for c in pane.rows_by_key.values() if c.number == name), None)
            if row is not None and pane.select_id(row.id):
                self.map_from = pane
                return

    def _focus_pane(self, pane: Pane[Any]) -> None:
        """Focus `pane`; while the map is shown, make it the pane the map follows instead."""
        if self.map.display:
            self.map_from = pane
            self.map.selected = self._selection_key()
        else:
            pane.focus()


def _bindings(bindings: Iterable[Any]) -> list[Binding]:
    return [b for b in bindings if isinstance(b, Binding)]


# The record's keys, as the permissions name them.
_RECORD_ACTIONS = {
    "note": "note",
    "edit": "update_call",
    "dispatch": "dispatch",
    "close": "close_call",
    "cancel": "cancel",
    "reopen": "reopen_call",
}
