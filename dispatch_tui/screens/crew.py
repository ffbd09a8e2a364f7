"""The crew terminal: what a unit's paramedic sees on the unit's tablet (`dispatch-tui crew M12`).

One unit, its status and how long it has been in it, and the call it is on: number, priority and
determinant, nature, location, the caller's callback number, notes and narrative, destination; and
the call lined up next. A new assignment rings the terminal bell and fills the screen until the
crew acknowledges it (`a`); the acknowledgement is stored by the server's clock and every desk
shows it. Single keys report the unit's steps (the same letters as on the desk) and add a note to
the call's narrative, as the crew.

Thin like the desk: keys become typed commands run by the screen's action worker and answered by
the executor in one line (`screens/live.py`). The screen is live like the desk (LISTEN, a resync
after every reconnect, RECONNECTING on the status line) but reads only what it shows: the crew's
own view, again whenever a change touches its unit, its calls or a hospital.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Footer, Label, RichLog, Static

from dispatch_tui.rules import commands, validation
from dispatch_tui.rules.enums import HospitalStatus, UnitStatus
from dispatch_tui.rules.lifecycle import UNIT_STEPS, label, unit_state
from dispatch_tui.rules.norms import clock
from dispatch_tui.rules.views import AssignmentView, CrewView, TimelineEntry
from dispatch_tui.screens.ask import AskScreen
from dispatch_tui.screens.dialogs import ask_destination
from dispatch_tui.screens.help import HelpScreen
from dispatch_tui.screens.live import ActionDone, DeskContext, LiveScreen
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.executor import ACCEPTED, REFUSED
from dispatch_tui.widgets.panes import hazard_text
from dispatch_tui.widgets.status_line import StatusLine

# The crew's status keys: the desk's letters (`widgets/panes.py`), in the crew's words.
CREW_KEYS = (
    ("e", UnitStatus.EN_ROUTE, "En route", "the unit is on its way"),
    ("o", UnitStatus.ON_SCENE, "On scene", "arrived at the call"),
    ("t", UnitStatus.TRANSPORTING, "Transport", "choose the destination, nearest open first"),
    ("h", UnitStatus.AT_HOSPITAL, "At hospital", "arrived at the destination"),
    ("v", UnitStatus.AVAILABLE, "Available", "clears the unit from its call; back in service"),
    ("s", UnitStatus.OUT_OF_SERVICE, "Out of svc", "restocking, fuel, a break: on no call only"),
)

# While a new call waits for its acknowledgement, the bell rings again this often.
REMIND_SECONDS = 15.0


class CrewLoaded(Message):
    """A fresh reading of the crew's view (one snapshot, stamped with the database clock)."""

    def __init__(self, view: CrewView) -> None:
        super().__init__()
        self.view = view


def _time(value: datetime | None) -> str:
    return value.astimezone().strftime("%H:%M:%S") if value is not None else "—"


class CrewScreen(LiveScreen):
    in_relay = False  # it reads its own unit's record for a change, under the crew's login

    DEFAULT_CSS = """
    CrewScreen #crew-unit {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    CrewScreen #crew-alert {
        height: 1fr;
        padding: 1 2;
        border: thick $error;
        display: none;
    }
    CrewScreen #crew-call {
        height: 1fr;
    }
    CrewScreen #crew-details {
        height: auto;
        padding: 0 1;
    }
    CrewScreen #crew-narrative {
        height: 1fr;
        min-height: 3;
        padding: 0 1;
        border: round $panel-lighten-2;
        border-title-style: bold;
        display: none;
    }
    CrewScreen.on-call #crew-narrative {
        display: block;
    }
    CrewScreen #crew-next {
        height: auto;
        padding: 0 1;
        display: none;
    }
    CrewScreen #feedback {
        height: 1;
        width: 1fr;
        padding: 0 1;
    }
    CrewScreen.alerting #crew-alert {
        display: block;
    }
    CrewScreen.alerting #crew-call {
        display: none;
    }
    CrewScreen.lined-up #crew-next {
        display: block;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "a",
            "acknowledge",
            "Acknowledge",
            id="acknowledge",
            tooltip="the crew has the call; every desk sees it",
        ),
        *(
            Binding(key, f"status('{target.value}')", text, id=f"status-{key}", tooltip=what)
            for key, target, text, what in CREW_KEYS
        ),
        Binding("n", "note", "Note", id="note", tooltip="a line in the call's narrative"),
        Binding("question_mark", "help", "Keys", id="help", tooltip="this list"),
    ]

    def __init__(self, context: DeskContext, unit: str) -> None:
        super().__init__(context)
        assert isinstance(context.service, DispatchService), "the crew reports: it needs writes"
        self.unit_code = validation.unit_code(unit)
        self.view: CrewView | None = None
        self.rung: set[int] = set()  # the assignments whose arrival rang the bell
        self.rang_at = 0.0  # when the bell last rang for an unacknowledged call (monotonic)
        self.cleared: int | None = None  # the assignment the crew itself cleared last
        self.shown_timeline: tuple[TimelineEntry, ...] | None = None

    def compose(self) -> ComposeResult:
        op = self.context.operator
        yield StatusLine(
            op.username,
            op.role,
            self.context.database_label,
            title=f"CREW {self.unit_code}",
            id="status",
        )
        yield Static(Text(f"{self.unit_code}: reading…"), id="crew-unit")
        yield Static(id="crew-alert")
        with Vertical(id="crew-call"):
            yield Static(id="crew-details")
            yield RichLog(id="crew-narrative", wrap=True, markup=False, highlight=False)
        yield Static(id="crew-next")
        yield Label("", id="feedback")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#crew-narrative", RichLog).border_title = "Narrative"
        if self.context.options.clock:
            self.set_interval(1.0, self._tick)

    # -- reads: only the crew's own view (on the listener's thread) -----------------------------

    def read_everything(self) -> Message:
        return CrewLoaded(self._read())

    def read_changes(self, calls: set[int], units: set[int], hospitals: set[int]) -> Message | None:
        view = self.view
        if view is None:
            return None  # the first resync is on its way
        watched = {c.id for c in (view.record.call if view.record else None, view.next_call) if c}
        if view.unit.id in units or hospitals or calls & watched:
            return CrewLoaded(self._read())
        return None

    def _read(self) -> CrewView:
        return self.context.service.crew(self.context.operator.username, self.unit_code)

    # -- showing it -----------------------------------------------------------------------------

    @on(CrewLoaded)
    def apply(self, event: CrewLoaded) -> None:
        view, before = event.view, self.view
        if before is not None and view.db_now < before.db_now:
            return  # an older reading (an action's and the listener's crossed)
        self.view = view
        self.db_offset = view.db_now - datetime.now(UTC)
        self._ring_or_tell(before, view)
        self._show(view)
        status = self.query_one(StatusLine)
        status.last_update, status.now = view.db_now, view.db_now
        self.refresh_bindings()  # the keys that apply follow the unit's step

    def _ring_or_tell(self, before: CrewView | None, view: CrewView) -> None:
        """A new assignment rings; one taken off the unit by dispatch rings and says so."""
        now = view.assignment
        if now is not None and now.acknowledged_at is None and now.id not in self.rung:
            self.rung.add(now.id)
            self._ring()
        was = before.assignment if before is not None else None
        if was is not None and (now is None or now.id != was.id) and self.cleared != was.id:
            self._ring()
            self.say(f"{self.unit_code} is off {was.call_number} now (changed by dispatch)")

    def _ring(self) -> None:
        self.rang_at = time.monotonic()
        self.app.bell()

    def unacknowledged(self) -> AssignmentView | None:
        """The unit's assignment, while the crew has not acknowledged it."""
        view = self.view
        assignment = view.assignment if view is not None else None
        return assignment if assignment is not None and assignment.acknowledged_at is None else None

    def _show(self, view: CrewView) -> None:
        self._show_unit()
        alert = self.unacknowledged()
        self.set_class(alert is not None, "alerting")
        self.set_class(view.record is not None, "on-call")
        if alert is not None:
            self.query_one("#crew-alert", Static).update(self._alert_text(view, alert))
        self.query_one("#crew-details", Static).update(self._details_text(view))
        self._show_narrative(view)
        lined_up = view.next_call
        self.set_class(lined_up is not None, "lined-up")
        if lined_up is not None:
            line = Text("Next  ", style="bold cyan")
            line.append(f"{lined_up.number}  P{lined_up.priority}  ", style="bold")
            if lined_up.hazard:  # its record says which when it comes
                line.append_text(hazard_text(lined_up)).append("  ")
            line.append(lined_up.nature)
            line.append(" · ")
            line.append(lined_up.location_text)
            self.query_one("#crew-next", Static).update(line)

    def _show_unit(self) -> None:
        view = self.view
        if view is None:
            return
        unit = view.unit
        state = unit_state(unit.status, unit.en_route_reported)
        line = Text()
        line.append(unit.code, style="bold")
        line.append(f"  {unit.capability}  ")
        line.append(
            f" {label(state).upper()} ",
            style=f"bold {self.context.options.status_styles.get(state, '')} reverse",
        )
        seconds = (self.db_now() - unit.status_since).total_seconds()
        line.append(f"  for {clock(seconds)}")
        if view.record is not None:
            line.append("  on ")
            line.append(view.record.call.number, style="bold")
            if view.record.call.hazard:  # below, under the address, it says which
                line.append("  ").append_text(hazard_text(view.record.call))
        self.query_one("#crew-unit", Static).update(line)

    def _alert_text(self, view: CrewView, assignment: AssignmentView) -> Text:
        """The new call, big enough to read at arm's length, and the one key it waits for."""
        assert view.record is not None
        call = view.record.call
        text = Text()
        text.append(" NEW CALL ", style="bold white on red")
        text.append(f"  {call.number}  ", style="bold")
        text.append(f"P{call.priority}", style="bold red" if call.priority == 1 else "bold")
        if call.determinant:
            text.append(f"  {call.determinant}", style="bold")
        text.append("\n\n")
        text.append(call.nature, style="bold")
        text.append("\n")
        text.append(call.location_text)
        for hazard in view.record.hazards:  # what the crew must know before it arrives
            text.append("\n")
            text.append(f" {hazard.line()} ", style="bold reverse red")
        for name, value in self._fields(view)[1:]:
            text.append(f"\n{name:<12}", style="dim")
            text.append(value)
        text.append(f"\n\nNotified {_time(assignment.notified_at)}", style="dim")
        text.append("\n\nPress ")
        text.append(" a ", style="bold reverse")
        text.append(" to acknowledge")
        return text

    def _fields(self, view: CrewView) -> list[tuple[str, str]]:
        """The call's fields as the crew reads them (name, value); the location first."""
        assert view.record is not None
        call = view.record.call
        callback = call.caller_phone or "—"
        if call.caller_name:
            callback += f"  ({call.caller_name})"
        fields = [("Location", call.location_text), ("Callback", callback)]
        assignment = view.assignment
        destination = (assignment.hospital_code if assignment else None) or call.destination_code
        if destination:
            hospital = next((h for h in view.hospitals if h.code == destination), None)
            shown = destination
            if hospital is not None:
                shown += f"  {hospital.name}"
                if hospital.status != HospitalStatus.OPEN:
                    shown += f"  ({label(hospital.status).upper()})"
            fields.append(("Destination", shown))
        if call.notes:
            fields.append(("Notes", call.notes))
        return fields

    def _details_text(self, view: CrewView) -> Text:
        if view.record is None:
            text = Text("No call. ", style="bold")
            text.append("A dispatch rings here and fills the screen.")
            if view.unit.station_code:
                text.append(f"\n{'Station':<12}", style="dim")
                text.append(view.unit.station_code)
            # What the crew would otherwise hear only on the radio: where not to go.
            shut = [
                f"{h.code} {label(h.status)}"
                for h in view.hospitals
                if h.status != HospitalStatus.OPEN
            ]
            text.append(f"\n{'Hospitals':<12}", style="dim")
            text.append(" · ".join(shut) if shut else "all open")
            return text
        call = view.record.call
        text = Text()
        text.append(f"{call.number}  P{call.priority}", style="bold")
        if call.determinant:
            text.append(f"  {call.determinant}", style="bold")
        text.append("  ")
        text.append(call.nature, style="bold")
        for name, value in self._fields(view):
            text.append(f"\n{name:<12}", style="dim")
            text.append(value)
            if name == "Location":
                for hazard in view.record.hazards:  # right under the address, loudly
                    text.append("\n")
                    text.append(f" {hazard.line()} ", style="bold reverse red")
                if view.record.prior_count:  # has this house called before: the last five
                    text.append(f"\n{'Prior calls':<12}", style="dim")
                    text.append(f"{view.record.prior_count} in 12 months")
                    for prior in view.record.prior[:5]:
                        text.append(f"\n{'':<12}{prior.line()}")
        assignment = view.assignment
        if assignment is not None:
            # The bar's short words for the steps (en, os, tx, ah): one line at 80 columns.
            steps = [
                ("notified", assignment.notified_at),
                ("ack", assignment.acknowledged_at),
                ("en", assignment.en_route_at),
                ("os", assignment.on_scene_at),
                ("tx", assignment.transporting_at),
                ("ah", assignment.at_destination_at),
            ]
            shown = [f"{name} {_time(at)}" for name, at in steps if at is not None]
            text.append(f"\n{'Times':<12}", style="dim")
            text.append(" · ".join(shown))
        return text

    def _show_narrative(self, view: CrewView) -> None:
        entries = tuple(
            e for e in (view.record.timeline if view.record else ()) if e.source != "audit"
        )
        if entries == self.shown_timeline:
            return
        self.shown_timeline = entries
        log = self.query_one("#crew-narrative", RichLog)
        log.clear()
        for entry in entries:
            line = Text(f"{_time(entry.at)} ", style="dim")
            line.append(f"{entry.who} ", style="bold")
            if entry.source == "note":
                line.append(f"#{entry.ref} ", style="cyan")
            line.append(entry.text)
            log.write(line)
        if not entries:
            log.write(Text("nothing yet" if view.record else "", style="dim"))

    def _tick(self) -> None:
        self._show_unit()
        self.query_one(StatusLine).now = self.db_now()
        if self.unacknowledged() is not None and time.monotonic() - self.rang_at > REMIND_SECONDS:
            self._ring()

    @on(ActionDone)
    def feedback(self, event: ActionDone) -> None:
        self.say(event.message, ok=event.ok)

    def say(self, message: str, *, ok: bool | None = None) -> None:
        """One line: accepted (✓), refused (✗, with the bell), or news from dispatch (!)."""
        mark, style = {
            True: (ACCEPTED, "bold green"),
            False: (REFUSED, "bold red"),
            None: ("!", "bold yellow"),
        }[ok]
        line = Text(f"{mark} ", style=style)
        # News from dispatch (a stand-down) is the whole line, loud: the crew may be driving.
        line.append(message, style="bold black on yellow" if ok is None else "")
        self.query_one("#feedback", Label).update(line)
        if ok is False:
            self.app.bell()

    # -- keys ------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys that apply now are offered: `a` while a call waits for it; the steps
        the unit can take from where it is; a note while it is on a call."""
        view = self.view
        waiting = self.unacknowledged() is not None
        if action == "acknowledge":
            return waiting
        if action == "status":
            if view is None or waiting:
                return False
            current, target = UnitStatus(view.unit.status), UnitStatus(str(parameters[0]))
            if (current, target) == (UnitStatus.EN_ROUTE, UnitStatus.EN_ROUTE):
                return not view.unit.en_route_reported
            return (current, target) in UNIT_STEPS
        if action == "note":
            return view is not None and view.record is not None and not waiting
        return True

    def action_acknowledge(self) -> None:
        if self.unacknowledged() is not None:
            self.perform(commands.Acknowledge(self.unit_code))

    def action_status(self, status: str) -> None:
        view = self.view
        if view is None:
            return
        target = UnitStatus(status)
        if target == UnitStatus.TRANSPORTING:
            call = view.record.call if view.record else None
            ask_destination(self.app, self.perform, self.unit_code, call, view.hospitals)
            return
        if target == UnitStatus.AVAILABLE and view.assignment is not None:
            self.cleared = view.assignment.id  # the crew's own clear: no news from dispatch
        self.perform(commands.SetUnitStatus(self.unit_code, target))

    def action_note(self) -> None:
        view = self.view
        if view is None or view.record is None:
            return
        number = view.record.call.number

        def answered(line: str | None) -> None:
            if line:
                self.perform(commands.AddNote(number, line))

        self.app.push_screen(
            AskScreen(
                f"Note on {number} ({view.record.call.nature}), as {self.unit_code}'s crew:",
                placeholder="what the crew found or did; a correction names #N",
                enter="add to the narrative",
                max_length=validation.NARRATIVE_MAX,
            ),
            answered,
        )

    def action_help(self) -> None:
        self.app.push_screen(
            HelpScreen(
                [("Crew terminal", self.help_bindings())],
                title=f"Keys of {self.unit_code}'s crew terminal",
            )
        )

    def help_bindings(self) -> list[Binding]:
        """Every key of the crew terminal, read from the bindings themselves."""
        return [b for b in (*self.app.BINDINGS, *self.BINDINGS) if isinstance(b, Binding)]

    def screen_commands(self) -> Iterable[Any]:
        yield SystemCommand("Acknowledge", "The crew has the call", self.action_acknowledge)
        yield SystemCommand("Note", "A line in the call's narrative", self.action_note)
        yield SystemCommand("Keys", "Every key of the crew terminal", self.action_help)
