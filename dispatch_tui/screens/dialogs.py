"""The desk's questions before an action: what to choose, why, whether to go ahead.

Each names what the action does (the call, what it releases) and runs the typed command only on
an answer; Escape backs out and changes nothing. The desk (`screens/desk.py`) hands them the
selected row; they read the rows the desk already holds (never the database) and run commands
through it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from rich.text import Text
from textual.app import App

from dispatch_tui.config import DeskOptions
from dispatch_tui.rules import commands, recommend, validation
from dispatch_tui.rules.enums import Capability, UnitStatus
from dispatch_tui.rules.lifecycle import label
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import CallView, HospitalView, PlaceView, UnitView
from dispatch_tui.screens.ask import AskScreen
from dispatch_tui.screens.confirm import ConfirmScreen
from dispatch_tui.screens.intake import IntakeScreen
from dispatch_tui.screens.pick import PickScreen
from dispatch_tui.widgets.panes import ActiveCalls, Hospitals, PendingCalls, Units


class Desk(Protocol):
    """What the questions need of the desk."""

    places: list[PlaceView]
    pending: PendingCalls
    active: ActiveCalls
    units: Units
    hospitals: Hospitals

    @property
    def app(self) -> App[Any]: ...

    @property
    def options(self) -> DeskOptions: ...

    def perform(self, command: commands.Command, request_id: str | None = None) -> None: ...

    def say(self, message: str, *, ok: bool) -> None: ...

    def db_now(self) -> datetime: ...


class DeskDialogs:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def _last_als_wanted(self, call: CallView, unit_code: str) -> CallView | None:
        """The P1/P2 call still pending when `unit_code`, the last available ALS unit, is about
        to be sent to a P3/P4 call (the dispatcher is asked first); else None."""
        if call.priority <= 2:
            return None
        units = list(self.desk.units.rows_by_key.values())
        chosen = next((u for u in units if u.code == unit_code), None)
        if chosen is None or chosen.capability != Capability.ALS:
            return None
        if any(
            u.capability == Capability.ALS and u.status == UnitStatus.AVAILABLE and u is not chosen
            for u in units
        ):
            return None
        waiting = [
            c for c in self.desk.pending.rows_by_key.values() if c.priority <= 2 and c.id != call.id
        ]
        return min(waiting, key=lambda c: (c.priority, c.received_at)) if waiting else None

    def ask(
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
                self.desk.perform(command(line))

        self.desk.app.push_screen(
            AskScreen(question, placeholder=placeholder, enter=enter, max_length=max_length),
            answered,
        )

    def pick(
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
                self.desk.perform(command(choice))

        self.desk.app.push_screen(PickScreen(title, options, hint=hint), chosen)

    def duplicate(
        self,
        raw: CallIntake,
        candidates: tuple[tuple[str, str], ...],
        send: Callable[[commands.Command], None],
    ) -> None:
        """A new call that may be one already open (the service refused it with `candidates`):
        add the caller to one of them (its narrative; no new call), or take it as a new call
        anyway. Escape goes back to the form, everything typed kept."""
        new = "\n"  # (no call number can be a line break)
        options = [(number, Text(f"Add the caller to {line}")) for number, line in candidates]
        options.append((new, Text("Take it as a new call anyway (audited)")))

        def chosen(choice: str | None) -> None:
            if choice == new:
                send(commands.NewCall(raw, new_anyway=True))
            elif choice:
                send(commands.AttachCaller(choice, raw))

        self.desk.app.push_screen(
            PickScreen(
                "This may be a call already open",
                options,
                hint="Enter: choose · Esc: back to the form",
            ),
            chosen,
        )

    def cancel_call(self, call: CallView) -> None:
        """Cancel a call: why, and a confirmation naming it and what it releases."""
        units = ", ".join(call.active_units)
        releases = f"; releases {units}" if units else "; no unit is on it"
        self.ask(
            f"Cancel {call.number} (P{call.priority} {call.nature}){releases}. Why?",
            lambda reason: commands.CancelCall(call.number, reason),
            placeholder="e.g. duplicate of C-1041, caller cancelled",
            enter=f"cancel {call.number}",
        )

    def cancel_unit(self, unit: UnitView) -> None:
        self.ask(
            f"Cancel {unit.code} from {unit.call_number}: {unit.code} becomes available. Why?",
            lambda reason: commands.CancelUnit(unit.code, reason),
            placeholder="e.g. nearer unit sent, not needed",
            enter=f"cancel {unit.code}",
        )

    def out_of_service(self, unit: UnitView) -> None:
        self.ask(
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
        options = [(d, Text(d)) for d in self.desk.options.dispositions]

        self.pick(
            f"Close {call.number} (P{call.priority} {call.nature}){releases}: what happened?",
            options,
            lambda disposition: commands.CloseCall(call.number, disposition),
            hint="Enter: close with this disposition · Esc: back, nothing done",
        )

    def note(self, call: CallView) -> None:
        self.ask(
            f"Note on {call.number} ({call.nature}):",
            lambda note: commands.AddNote(call.number, note),
            placeholder="what the caller or crew said; a correction names #N",
            enter="add to the narrative",
            max_length=validation.NARRATIVE_MAX,
        )

    def edit(self, call: CallView) -> None:
        """The intake form, filled in with the call: only the fields changed are sent."""

        def edited(raw: CallIntake | None) -> None:
            if raw is None:
                return
            changes = _changes(call, raw, self.record_place(call))
            if changes is None:
                self.desk.say(f"{call.number}: nothing changed", ok=False)
                return
            self.desk.perform(commands.UpdateCall(call.number, changes))

        self.desk.app.push_screen(
            IntakeScreen(self.desk.places, editing=call, place=self.record_place(call)), edited
        )

    def record_place(self, call: CallView) -> str:
        """The named place a call's location came from, if it reads as one."""
        for place in self.desk.places:
            if call.location_text == f"{place.name}, {place.address}":
                return place.name
        return ""

    def reopen(self, call: CallView) -> None:
        self.ask(
            f"Re-open {call.number} ({call.nature}, {label(call.status)}): it goes back to "
            "pending. Why?",
            lambda reason: commands.ReopenCall(call.number, reason),
            placeholder="e.g. caller rang back, patient worse",
            enter=f"re-open {call.number}",
        )

    def dispatch(self, call: CallView, *, add: bool) -> None:
        """Recommended units for the call, ranked from the live rows the desk already holds, so
        the list opens at once (an Enter typed right after `d` lands in it); Enter takes the top
        one. The service checks everything again when the dispatch is sent."""
        priority_of = {
            c.number: c.priority
            for p in (self.desk.pending, self.desk.active)
            for c in p.rows_by_key.values()
        }
        offered = recommend.choices(
            call,
            self.desk.units.rows_by_key.values(),
            priority_of,
            self.desk.db_now(),
            limit=8,
            stale_seconds=self.desk.options.stale_position_seconds,
        )
        # No unit free: those expected to clear first (a pending call's only, `choices`), each
        # a key away from being lined up for the call, after any worth diverting.
        recs, diverts, clearing = offered.recommended, offered.diverts, offered.clearing
        if not recs and not diverts and not clearing:
            self.desk.say(recommend.NO_UNIT_AVAILABLE, ok=False)
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
        for c in clearing:
            text = Text()
            text.append(f"⇥  {c.unit.code:<5}", style="bold")
            text.append(f" {c.reason}")
            options.append((f"queue:{c.unit.code}", text))

        def send(unit: str) -> None:
            self.desk.perform(commands.Dispatch(call.number, (unit,), add=add))

        def chosen(unit: str | None) -> None:
            if not unit:
                return
            if unit.startswith("divert:"):
                self._confirm_divert(unit.removeprefix("divert:"), call, diverts)
                return
            if unit.startswith("queue:"):
                self.desk.perform(commands.Queue(unit.removeprefix("queue:"), call.number))
                return
            waiting = self._last_als_wanted(call, unit)
            if waiting is None:
                send(unit)
                return

            def confirmed(yes: bool | None) -> None:
                if yes:
                    send(unit)

            self.desk.app.push_screen(
                ConfirmScreen(
                    f"{unit} is the last ALS unit available, and {waiting.number} "
                    f"(P{waiting.priority} {waiting.nature}) is pending. "
                    f"Send {unit} to {call.number} (P{call.priority}) anyway?"
                ),
                confirmed,
            )

        verb = "Add a unit to" if add else "Dispatch to"
        if recs:
            title, hint = f"{verb} {call.number}: recommended units", ""
        else:
            ways = [
                (way, enter)
                for way, enter, offered_any in (
                    ("divert one on its way (↪)", "↪ diverts it here (asks first)", diverts),
                    (
                        "line up one that clears next (⇥)",
                        "⇥ lines the unit up; it comes here when it clears",
                        clearing,
                    ),
                )
                if offered_any
            ]
            title = f"No unit is free for {call.number} (P{call.priority} {call.nature}): " + (
                ", or ".join(way for way, _ in ways)
            )
            hint = "Enter: " + ", ".join(enter for _, enter in ways) + " · Esc: back"
        self.desk.app.push_screen(PickScreen(title, options, hint=hint), chosen)

    def _confirm_divert(
        self, unit: str, call: CallView, diverts: list[recommend.DivertCandidate]
    ) -> None:
        found = next(d for d in diverts if d.unit.code == unit)

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.desk.perform(commands.Divert(unit, call.number, f"for {call.number}"))

        self.desk.app.push_screen(
            ConfirmScreen(
                f"Divert {unit} from {found.from_call} (P{found.from_priority}) to {call.number} "
                f"(P{call.priority} {call.nature})? {found.from_call} goes back to pending if "
                "no unit is left on it."
            ),
            confirmed,
        )

    def divert(self, unit: UnitView) -> None:
        """The open calls a unit may be taken to, most urgent first; Enter diverts it."""
        calls = sorted(
            (
                c
                for pane in (self.desk.pending, self.desk.active)
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
                for p in (self.desk.pending, self.desk.active)
                for c in p.rows_by_key.values()
                if c.number == unit.call_number
            ),
            None,
        )
        now_on = f" (P{current.priority} {current.nature[:30]})" if current else ""

        self.pick(
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
                    self.desk.perform(commands.Unqueue(unit.code))

            self.desk.app.push_screen(
                ConfirmScreen(f"{unit.code} has {unit.queued_call} lined up. Take it back?"),
                answered,
            )
            return
        calls = sorted(
            self.desk.pending.rows_by_key.values(), key=lambda c: (c.priority, c.received_at)
        )
        options = []
        for c in calls:
            text = Text()
            text.append(f"{c.number:<8}", style="bold")
            text.append(f" P{c.priority} {c.nature[:40]} — {c.location_text[:40]}")
            if c.queued_units:
                text.append(f"  ({', '.join(c.queued_units)} lined up)", style="dim")
            options.append((c.number, text))

        self.pick(
            f"Line up {unit.code}'s next call (it is on {unit.call_number}); when it clears it "
            "goes to:",
            options,
            lambda number: commands.Queue(unit.code, number),
            hint="Enter: line this call up · Esc: back",
        )

    def transport(self, unit: UnitView) -> None:
        call = next(
            (c for c in self.desk.active.rows_by_key.values() if c.number == unit.call_number), None
        )
        ask_destination(
            self.desk.app,
            self.desk.perform,
            unit.code,
            call,
            self.desk.hospitals.rows_by_key.values(),
        )


def ask_destination(
    app: App[Any],
    perform: Callable[[commands.Command], None],
    code: str,
    call: CallView | None,
    hospitals: Iterable[HospitalView],
) -> None:
    """Where unit `code` transports its patient (the desk's `t`, and the crew's): the call's
    chosen destination first, then open hospitals nearest the scene, those on diversion marked
    (and asked about again before going there); Enter sets the unit transporting."""
    ranked = recommend.destinations(call, hospitals)
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

    def transport(hospital: str, override: bool) -> None:
        perform(
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

        app.push_screen(
            ConfirmScreen(f"{hospital} is on diversion. Transport there anyway?"), confirmed
        )

    app.push_screen(PickScreen(f"{code} transporting to:", options), chosen)


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
