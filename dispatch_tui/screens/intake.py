"""The intake form: a new call, validated before it leaves the desk; also a call's edit form.

The same validation as the CLI (`rules.validation.intake`) runs on every submit, so the form says
what is wrong in one line and keeps what was typed. Named places complete as you type (from the
places the desk already holds) and fill in the coordinates.

A new call: the desk records when the form opened (`answered_at`, the database's clock), and the
call is received then. Ctrl+S hands the call to the desk (`save`); the form stays open, with
everything typed, until the desk says the call was saved, or says why not (`refused`) so that it
can be saved again, under the same request id (never taken twice). Editing a call, the form is
filled in with it and answers with what it holds when closed with Ctrl+S.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

from dispatch_tui.rules.commands import Command
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.validation import CallIntake, intake
from dispatch_tui.rules.views import AddressFacts, AnswerTicket, CallView, PlaceView

FIELDS = [
    ("nature", "Nature *", "what happened: chest pain, fall, collision…"),
    ("priority", "Priority", "1–4 (or leave empty and give a determinant)"),
    ("determinant", "MPDS", "determinant, e.g. 10-D-1"),
    ("place", "Place", "named place (completes with →)"),
    ("location", "Location", "address or description (or a named place above)"),
    ("caller", "Caller", "caller's name"),
    ("phone", "Phone", "call-back number"),
    ("notes", "Notes", ""),
]


# How long typing must pause before the address is looked up.
ADDRESS_PAUSE_SECONDS = 0.4


class IntakeScreen(ModalScreen[CallIntake | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        # Not a priority binding: it waits its turn behind the keys typed before it, so a
        # Ctrl+S typed in the same burst as the last characters saves them too.
        Binding("ctrl+s", "take", "Save"),
        # Handled as a priority binding, not Input.Submitted: focus moves before the next key is
        # routed, so a fast typist's next field never lands in the previous one.
        Binding("enter", "next_field", "Next field", show=False, priority=True),
    ]

    def __init__(
        self,
        places: list[PlaceView],
        *,
        save: Callable[[IntakeScreen, CallIntake], None] | None = None,
        look_up: Callable[[IntakeScreen, str], object] | None = None,
        editing: CallView | None = None,
        place: str = "",
    ) -> None:
        """`save(form, call)`: the desk saves a new call (the form waits for its answer).
        `editing`: the call this form edits (`place`: its named place, if any)."""
        super().__init__()
        self.places = {p.name.lower(): p for p in places}
        self.place_names = [p.name for p in places]
        self.save = save
        # The desk looks the address up as it is typed (`address_facts` answers).
        self.look_up = look_up
        self._asked = ""
        self.editing = editing
        self.editing_place = place
        self.request_id = str(uuid.uuid4())  # one for every save of this form
        self.sent: Command | None = None  # the command the desk is saving
        self.answered: AnswerTicket | None = None

    def compose(self) -> ComposeResult:
        editing = self.editing
        title = (
            f"Edit {editing.number} — Enter: next field · Ctrl+S: save · Esc: back, nothing changed"
            if editing is not None
            else "New call — Enter: next field · Ctrl+S: take call · Esc: cancel"
        )
        with Vertical(classes="modal wide"):
            yield Label(Text(title), classes="modal-title")
            if editing is None:
                yield Label("", id="answered", classes="modal-hint")
            with Grid(classes="form"):
                for key, title, hint in FIELDS:
                    if editing is not None and key == "notes":
                        continue  # after intake, what is learnt goes to the narrative
                    yield Label(title)
                    suggester = (
                        SuggestFromList(self.place_names, case_sensitive=False)
                        if key == "place"
                        else None
                    )
                    yield Input(
                        placeholder=hint, id=key, suggester=suggester, max_length=4000, compact=True
                    )
            yield Label("", id="place-info", classes="modal-hint")
            yield Label("", id="address-facts", classes="error")
            yield Label("", id="error", classes="error")

    def on_mount(self) -> None:
        call = self.editing
        if call is not None:
            values = {
                "nature": call.nature,
                "priority": str(call.priority),
                "determinant": call.determinant or "",
                "place": self.editing_place,
                "location": "" if self.editing_place else call.location_text,
                "caller": call.caller_name,
                "phone": call.caller_phone,
            }
            for key, value in values.items():
                self.query_one(f"#{key}", Input).value = value
        self.query_one("#nature", Input).focus()

    def answered_at(self, ticket: AnswerTicket | None) -> None:
        """When the call was answered (the form opened), by the database; None if unknown.
        Too late to count (the form closed, or its call is being saved already): ignored."""
        if not self.is_attached or self.sent is not None:
            return
        self.answered = ticket
        text = (
            f"Answered {ticket.at.astimezone():%H:%M:%S}: the call is received then"
            if ticket is not None
            else "Answer time not recorded (database unreachable): received when saved"
        )
        self.query_one("#answered", Label).update(Text(text))

    def refused(self, message: str, *, settled: bool = False) -> None:
        """The desk could not save the call: say why, keep everything, let it be saved again.
        `settled`: a save in doubt was found not to have gone through; its request id was given
        up, so the next save takes a new one."""
        self.sent = None
        if settled:
            self.request_id = str(uuid.uuid4())
        self._error(message)

    def waiting(self, message: str) -> None:
        """A save whose outcome is unknown: say so; the form holds until the desk knows."""
        self._error(message)

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "place":
            place = self._place(event.value)
            info = (
                f"{place.name}: {place.address} ({place.lat:.4f}, {place.lon:.4f})" if place else ""
            )
            self.query_one("#place-info", Label).update(Text(info))
        if event.input.id in ("place", "location") and self.look_up is not None:
            # Asked once typing pauses: a lookup per key would be a query per key.
            self.set_timer(ADDRESS_PAUSE_SECONDS, self._ask_about_address)

    def _address(self) -> str:
        """The address as the call would be saved with it: the location typed, else the named
        place's."""
        typed = self.query_one("#location", Input).value.strip()
        if typed:
            return typed
        place = self._place(self.query_one("#place", Input).value)
        return f"{place.name}, {place.address}" if place else ""

    def _ask_about_address(self) -> None:
        address = self._address()
        if self.look_up is not None and address and address != self._asked:
            self._asked = address
            self.look_up(self, address)
        elif not address:
            self._asked = ""
            self.address_facts(address, AddressFacts())

    def address_facts(self, address: str, facts: AddressFacts) -> None:
        """What the desk found of `address`: its hazards and calls, loudly (ignored when the
        address has changed meanwhile)."""
        if not self.is_attached or address != self._address():
            return
        self.query_one("#address-facts", Label).update(Text(facts.line()))

    def _place(self, name: str) -> PlaceView | None:
        key = name.strip().lower()
        if not key:
            return None
        if key in self.places:
            return self.places[key]
        matches = [p for n, p in self.places.items() if n.startswith(key)]
        return matches[0] if len(matches) == 1 else None

    def action_next_field(self) -> None:
        inputs = list(self.query(Input))
        if self.focused is inputs[-1]:
            self.action_take()
        else:
            self.focus_next(Input)

    def action_take(self) -> None:
        values = {i.id: i.value for i in self.query(Input) if i.id}
        place = self._place(values["place"])
        if values["place"].strip() and place is None:
            self._error(f"no single named place matches '{values['place'].strip()}'")
            self.query_one("#place", Input).focus()
            return
        raw = CallIntake(
            nature=values["nature"],
            priority=values["priority"] or None,
            determinant=values["determinant"],
            place=place.name if place else "",
            location=values["location"],
            caller_name=values["caller"],
            caller_phone=values["phone"],
            notes=values.get("notes", ""),
            answered=self.answered.id if self.answered is not None else None,
        )
        try:
            intake(raw)
        except InvalidInput as err:
            self._error(err.message)
            return
        if self.save is None:
            self.dismiss(raw)
            return
        if self.sent is not None:
            return  # saving already: its answer closes the form or says why not
        self.query_one("#error", Label).update(Text("saving…"))
        self.save(self, raw)

    def _error(self, message: str) -> None:
        self.query_one("#error", Label).update(Text(message))
        self.app.bell()

    def action_cancel(self) -> None:
        self.dismiss(None)
