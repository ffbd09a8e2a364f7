"""The dispatcher's desk: four live panes, single keys, the command bar, one feedback line.

Thin on purpose: a key or a line in the bar becomes a typed command (`rules/commands.py`), run by
the screen's action worker (`screens/live.py`); the executor's one-line answer comes back on the
feedback line. Snapshots from the database are applied to the panes. Rows newer than a snapshot
are never overwritten by it (each snapshot is one consistent read stamped with the database clock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label

from dispatch_tui.rules import commands, grammar, permissions, recommend, validation
from dispatch_tui.rules.enums import Capability, UnitStatus
from dispatch_tui.rules.errors import DispatchError, InvalidInput
from dispatch_tui.rules.lifecycle import UNIT_STEPS, label
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import CallView, PlaceView, Snapshot, UnitView
from dispatch_tui.screens.ask import AskScreen
from dispatch_tui.screens.confirm import ConfirmScreen
from dispatch_tui.screens.find import FindScreen
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
from dispatch_tui.screens.record import RecordScreen
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
        Binding(
            "ctrl+f",
            "find",
            "Find",
            id="find",
            priority=True,
            tooltip="calls by number, address, caller, phone; units by code",
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

    # -- live data ----------------------------------------------------------------------------

    @on(SnapshotLoaded)
    def apply(self, event: SnapshotLoaded) -> None:
        snapshot = event.snapshot
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

    def _last_als_wanted(self, call: CallView, unit_code: str) -> CallView | None:
        """The P1/P2 call still pending when `unit_code`, the last available ALS unit, is about
        to be sent to a P3/P4 call (the dispatcher is asked first); else None."""
        if call.priority <= 2:
            return None
        units = list(self.units.rows_by_key.values())
        chosen = next((u for u in units if u.code == unit_code), None)
        if chosen is None or chosen.capability != Capability.ALS:
            return None
        if any(
            u.capability == Capability.ALS and u.status == UnitStatus.AVAILABLE and u is not chosen
            for u in units
        ):
            return None
        waiting = [
            c for c in self.pending.rows_by_key.values() if c.priority <= 2 and c.id != call.id
        ]
        return min(waiting, key=lambda c: (c.priority, c.received_at)) if waiting else None

    def _find(self, text: str) -> None:
        self._search(text)

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
                self.ask_note(row)
            case "edit":
                self.edit_call(row)
            case "dispatch":
                self.open_dispatch(row, add=False)
            case "add_unit":
                self.open_dispatch(row, add=True)
            case "cancel_call":
                self._confirm_cancel(row)
            case "close_call":
                self.close_call(row)
            case "status" if argument == UnitStatus.TRANSPORTING:
                self._ask_destination(row)
            case "status" if argument == UnitStatus.OUT_OF_SERVICE:
                self._ask_out_of_service(row)
            case "status":
                self.perform(commands.SetUnitStatus(row.code, argument))
            case "cancel_unit":
                self._confirm_cancel_unit(row)
            case "divert":
                self.open_divert(row)
            case "line_up":
                self.line_up(row)
            case "hospital":
                self.perform(commands.SetHospitalStatus(row.code, argument))
            case "beds":
                self.action_command_bar(f"hs {row.code} --beds ")

    def _ask(
        self,
        question: str,
        command: Callable[[str], commands.Command],
        *,
        placeholder: str,
        enter: str,
        max_length: int = validation.REASON_MAX,
    ) -> None:
        """One line asked before an action (why, or a note); Enter runs `command(line)`,
        Escape does nothing. The question names what the action does."""

        def answered(line: str | None) -> None:
            if line:
                self.perform(command(line))

        self.app.push_screen(
            AskScreen(question, placeholder=placeholder, enter=enter, max_length=max_length),
            answered,
        )

    def _pick(
        self,
        title: str,
        options: list[tuple[str, Text]],
        command: Callable[[str], commands.Command],
        *,
        hint: str,
    ) -> None:
        """A list to choose from before an action; Enter runs `command(choice)`, Escape does
        nothing. The title names what the action does."""

        def chosen(choice: str | None) -> None:
            if choice:
                self.perform(command(choice))

        self.app.push_screen(PickScreen(title, options, hint=hint), chosen)

    def _confirm_cancel(self, call: CallView) -> None:
        """Cancel a call: why, and a confirmation naming it and what it releases."""
        units = ", ".join(call.active_units)
        releases = f"; releases {units}" if units else "; no unit is on it"
        self._ask(
            f"Cancel {call.number} (P{call.priority} {call.nature}){releases}. Why?",
            lambda reason: commands.CancelCall(call.number, reason),
            placeholder="e.g. duplicate of C-1041, caller cancelled",
            enter=f"cancel {call.number}",
        )

    def _confirm_cancel_unit(self, unit: UnitView) -> None:
        self._ask(
            f"Cancel {unit.code} from {unit.call_number}: {unit.code} becomes available. Why?",
            lambda reason: commands.CancelUnit(unit.code, reason),
            placeholder="e.g. nearer unit sent, not needed",
            enter=f"cancel {unit.code}",
        )

    def _ask_out_of_service(self, unit: UnitView) -> None:
        self._ask(
            f"Take {unit.code} out of service: it is offered for no call until it is back. Why?",
            lambda reason: commands.SetUnitStatus(
                unit.code, UnitStatus.OUT_OF_SERVICE, reason=reason
            ),
            placeholder="e.g. mechanical, restocking, crew break",
            enter=f"{unit.code} out of service",
        )

    def close_call(self, call: CallView) -> None:
        """Close a call: the dispositions to choose from; choosing one closes it."""
        units = ", ".join(call.active_units)
        releases = f"; clears {units}" if units else ""
        options = [(d, Text(d)) for d in self.context.options.dispositions]

        self._pick(
            f"Close {call.number} (P{call.priority} {call.nature}){releases}: what happened?",
            options,
            lambda disposition: commands.CloseCall(call.number, disposition),
            hint="Enter: close with this disposition · Esc: back, nothing done",
        )

    def ask_note(self, call: CallView) -> None:
        self._ask(
            f"Note on {call.number} ({call.nature}):",
            lambda note: commands.AddNote(call.number, note),
            placeholder="what the caller or crew said; a correction names #N",
            enter="add to the narrative",
            max_length=validation.NARRATIVE_MAX,
        )

    def edit_call(self, call: CallView) -> None:
        """The intake form, filled in with the call: only the fields changed are sent."""

        def edited(raw: CallIntake | None) -> None:
            if raw is None:
                return
            changes = _changes(call, raw, self.record_place(call))
            if changes is None:
                self.say(f"{call.number}: nothing changed", ok=False)
                return
            self.perform(commands.UpdateCall(call.number, changes))

        self.app.push_screen(
            IntakeScreen(self.places, editing=call, place=self.record_place(call)), edited
        )

    def record_place(self, call: CallView) -> str:
        """The named place a call's location came from, if it reads as one."""
        for place in self.places:
            if call.location_text == f"{place.name}, {place.address}":
                return place.name
        return ""

    def reopen_call(self, call: CallView) -> None:
        self._ask(
            f"Re-open {call.number} ({call.nature}, {label(call.status)}): it goes back to "
            "pending. Why?",
            lambda reason: commands.ReopenCall(call.number, reason),
            placeholder="e.g. caller rang back, patient worse",
            enter=f"re-open {call.number}",
        )

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
                self.ask_note(call)
            case "edit":
                self.edit_call(call)
            case "dispatch":
                self.open_dispatch(call, add=bool(call.active_units))
            case "close":
                self.close_call(call)
            case "cancel":
                self._confirm_cancel(call)
            case "reopen":
                self.reopen_call(call)

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
            self.units.focus()

    def open_dispatch(self, call: CallView, *, add: bool) -> None:
        """Recommended units for the call, ranked from the live rows the desk already holds, so
        the list opens at once (an Enter typed right after `d` lands in it); Enter takes the top
        one. The service checks everything again when the dispatch is sent."""
        units = self.units.rows_by_key.values()
        recs = recommend.for_call(call, units, limit=8)
        priority_of = {
            c.number: c.priority
            for p in (self.pending, self.active)
            for c in p.rows_by_key.values()
        }
        best = recs[0].eta_seconds if recs else None
        diverts = recommend.divert_candidates(call, units, priority_of, best)
        if not recs and not diverts:
            self._offer_next_to_clear(call, add=add)
            return
        options = []
        for d in diverts:  # much sooner than any free unit: offered first, marked
            text = Text()
            text.append(f"↪  {d.unit.code:<5}", style="bold yellow")
            text.append(f" {d.reason}")
            options.append((f"divert:{d.unit.code}", text))
        for r in recs:
            text = Text()
            text.append(f"{r.rank}. {r.unit.code:<5}", style="bold")
            text.append(f" {r.reason}")
            options.append((r.unit.code, text))

        def send(unit: str) -> None:
            self.perform(commands.Dispatch(call.number, (unit,), add=add))

        def chosen(unit: str | None) -> None:
            if not unit:
                return
            if unit.startswith("divert:"):
                self._confirm_divert(unit.removeprefix("divert:"), call, diverts)
                return
            waiting = self._last_als_wanted(call, unit)
            if waiting is None:
                send(unit)
                return

            def confirmed(yes: bool | None) -> None:
                if yes:
                    send(unit)

            self.app.push_screen(
                ConfirmScreen(
                    f"{unit} is the last ALS unit available, and {waiting.number} "
                    f"(P{waiting.priority} {waiting.nature}) is pending. "
                    f"Send {unit} to {call.number} (P{call.priority}) anyway?"
                ),
                confirmed,
            )

        verb = "Add a unit to" if add else "Dispatch to"
        self.app.push_screen(
            PickScreen(f"{verb} {call.number}: recommended units", options), chosen
        )

    def _confirm_divert(
        self, unit: str, call: CallView, diverts: list[recommend.DivertCandidate]
    ) -> None:
        found = next(d for d in diverts if d.unit.code == unit)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.perform(commands.Divert(unit, call.number, f"for {call.number}"))

        self.app.push_screen(
            ConfirmScreen(
                f"Divert {unit} from {found.from_call} (P{found.from_priority}) to {call.number} "
                f"(P{call.priority} {call.nature})? {found.from_call} goes back to pending if "
                "no unit is left on it."
            ),
            confirmed,
        )

    def _offer_next_to_clear(self, call: CallView, *, add: bool) -> None:
        """No unit free: the units expected to reach the call first, each a key away from being
        lined up for it (a pending call only)."""
        clearing = recommend.next_to_clear(call, self.units.rows_by_key.values(), self.db_now())
        if not clearing or add or call.status != "RECEIVED":
            self.say(recommend.NO_UNIT_AVAILABLE, ok=False)
            return
        options = []
        for c in clearing:
            text = Text()
            text.append(f"{c.unit.code:<5}", style="bold")
            text.append(f" {c.reason}")
            options.append((c.unit.code, text))

        self._pick(
            f"No unit is free for {call.number} (P{call.priority} {call.nature}). Next to clear:",
            options,
            lambda unit: commands.Queue(unit, call.number),
            hint="Enter: line this unit up; it comes here when it clears · Esc: back",
        )

    def open_divert(self, unit: UnitView) -> None:
        """The open calls a unit may be taken to, most urgent first; Enter diverts it."""
        calls = sorted(
            (
                c
                for pane in (self.pending, self.active)
                for c in pane.rows_by_key.values()
                if c.number != unit.call_number
            ),
            key=lambda c: (c.priority, c.status != "RECEIVED", c.received_at),
        )
        options = []
        for c in calls:
            text = Text()
            text.append(f"{c.number:<8}", style="bold")
            text.append(f" P{c.priority} ")
            text.append("pending  " if c.status == "RECEIVED" else f"{label(c.status):<9}")
            text.append(f"{c.nature[:40]} — {c.location_text[:40]}")
            if c.active_units:
                text.append(f"  ({', '.join(c.active_units)})", style="dim")
            options.append((c.number, text))
        current = next(
            (
                c
                for p in (self.pending, self.active)
                for c in p.rows_by_key.values()
                if c.number == unit.call_number
            ),
            None,
        )
        now_on = f" (P{current.priority} {current.nature[:30]})" if current else ""

        self._pick(
            f"Divert {unit.code} from {unit.call_number}{now_on} to:",
            options,
            lambda number: commands.Divert(unit.code, number),
            hint="Enter: divert to this call (its old call goes back to pending if no unit is "
            "left on it) · Esc: back",
        )

    def line_up(self, unit: UnitView) -> None:
        """A busy unit's next call: the pending calls, most urgent first; Enter lines one up.
        A unit with one lined up already is asked whether to take it back."""
        if unit.queued_call:

            def answered(yes: bool | None) -> None:
                if yes:
                    self.perform(commands.Unqueue(unit.code))

            self.app.push_screen(
                ConfirmScreen(f"{unit.code} has {unit.queued_call} lined up. Take it back?"),
                answered,
            )
            return
        calls = sorted(self.pending.rows_by_key.values(), key=lambda c: (c.priority, c.received_at))
        options = []
        for c in calls:
            text = Text()
            text.append(f"{c.number:<8}", style="bold")
            text.append(f" P{c.priority} {c.nature[:40]} — {c.location_text[:40]}")
            if c.queued_units:
                text.append(f"  ({', '.join(c.queued_units)} lined up)", style="dim")
            options.append((c.number, text))

        self._pick(
            f"Line up {unit.code}'s next call (it is on {unit.call_number}); when it clears it "
            "goes to:",
            options,
            lambda number: commands.Queue(unit.code, number),
            hint="Enter: line this call up · Esc: back",
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
        form = IntakeScreen(self.places, save=self._save_intake)
        self.intake = form

        def closed(_: CallIntake | None) -> None:
            if self.intake is form:
                self.intake = None

        self.app.push_screen(form, closed)
        self._answer(form)

    def _save_intake(self, form: IntakeScreen, raw: CallIntake) -> None:
        command = commands.NewCall(raw)
        form.sent = command
        # One request id for the form: saved again after a lost answer, the call is taken once.
        self.perform(command, form.request_id)

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


# The record's keys, as the permissions name them.
_RECORD_ACTIONS = {
    "note": "note",
    "edit": "update_call",
    "dispatch": "dispatch",
    "close": "close_call",
    "cancel": "cancel",
    "reopen": "reopen_call",
}


def _changes(call: CallView, raw: CallIntake, place: str) -> validation.CallChanges | None:
    """What the edit form changed of `call`, as an edit (None when nothing)."""

    def differs(typed: object, current: object) -> bool:
        return str(typed or "").strip() != str(current or "").strip()

    new_place = raw.place.strip()
    fields: dict[str, object] = {}
    if differs(raw.priority, call.priority):
        fields["priority"] = raw.priority
    if differs(raw.determinant, call.determinant):
        fields["determinant"] = raw.determinant
    if differs(raw.nature, call.nature):
        fields["nature"] = raw.nature
    if new_place and new_place.lower() != place.lower():
        fields["place"] = new_place
    elif differs(raw.location, call.location_text) and not new_place:
        fields["location"] = raw.location
    if differs(raw.caller_name, call.caller_name):
        fields["caller_name"] = raw.caller_name
    if differs(raw.caller_phone, call.caller_phone):
        fields["caller_phone"] = raw.caller_phone
    return validation.CallChanges(**fields) if fields else None  # type: ignore[arg-type]
