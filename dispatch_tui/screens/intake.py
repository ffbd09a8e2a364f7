"""The intake form: a new call, validated before it leaves the desk; also a call's edit form.

The same validation as the CLI (`rules.validation.intake`) runs on every submit, so the form says
what is wrong in one line and keeps what was typed. Named places complete as you type (from the
places the desk already holds) and fill in the coordinates. The location completes from the
gazetteer once typing pauses (the desk asks it off the UI thread, `complete`): ↓ and ↑ choose
an address in the list, Enter takes it (its position goes with the call, verified) and moves on;
Enter alone takes the one address listed that begins with what was typed.
An address not in the list is taken as typed; the service looks it up again when the call is
saved, and marks the call UNVERIFIED if it is not found.

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
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from dispatch_tui.rules.addresses import AddressMatch
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
# How long typing must pause before the location is completed: short, as the list is what the
# dispatcher reads next (a completion is one indexed read).
COMPLETE_PAUSE_SECONDS = 0.15


class IntakeScreen(ModalScreen[CallIntake | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        # Not a priority binding: it waits its turn behind the keys typed before it, so a
        # Ctrl+S typed in the same burst as the last characters saves them too.
        Binding("ctrl+s", "take", "Save"),
        # Handled as a priority binding, not Input.Submitted: focus moves before the next key is
        # routed, so a fast typist's next field never lands in the previous one.
        Binding("enter", "next_field", "Next field", show=False, priority=True),
        # In the location field, with addresses offered: move through them (Enter takes one).
        Binding("down", "completion(1)", "Next address", show=False),
        Binding("up", "completion(-1)", "Previous address", show=False),
    ]

    def __init__(
        self,
        places: list[PlaceView],
        *,
        save: Callable[[IntakeScreen, CallIntake], None] | None = None,
        look_up: Callable[[IntakeScreen, str], object] | None = None,
        editing: CallView | None = None,
        place: str = "",
        complete: Callable[[IntakeScreen, str], object] | None = None,
    ) -> None:
        """`save(form, call)`: the desk saves a new call (the form waits for its answer).
        `editing`: the call this form edits (`place`: its named place, if any).
        `complete(form, typed)`: the desk asks the gazetteer what the location typed so far may
        be (`completions` answers)."""
        super().__init__()
        self.places = {p.name.lower(): p for p in places}
        self.place_names = [p.name for p in places]
        self.save = save
        # The desk looks the address up as it is typed (`address_facts` answers).
        self.look_up = look_up
        self._asked = ""
        self.complete = complete
        self._completing = ""  # the location last asked about
        self._dismissed: str | None = None  # the location whose list Escape closed
        self.matches: list[AddressMatch] = []  # the addresses offered for it
        self.chosen: AddressMatch | None = None  # the address taken from them
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
            yield OptionList(id="completions", classes="hidden")
            yield Label("", id="location-info", classes="modal-hint")
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
        # The list is read, not typed in: the keys stay in the location field (↓ ↑ Enter).
        self.query_one("#completions", OptionList).can_focus = False
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
        if event.input.id == "location":
            self._location_typed(event.value)

    # -- the location, completed from the gazetteer ----------------------------------------------

    def _location_typed(self, value: str) -> None:
        if self.chosen is not None and value != self.chosen.label:
            self.chosen = None  # typed over: no longer the address taken
            self._location_info("")
        if self.complete is None or self.chosen is not None:
            return
        if value.strip():
            self.set_timer(COMPLETE_PAUSE_SECONDS, self._ask_completions)
        else:
            self._completing = ""
            self.completions("", [])

    def _ask_completions(self) -> None:
        value = self.query_one("#location", Input).value
        fresh = value.strip() and value != self._completing and self.chosen is None
        if self.complete is not None and fresh:
            self._completing = value
            self.complete(self, value)

    def completions(self, typed: str, matches: list[AddressMatch]) -> None:
        """The addresses the gazetteer offers for `typed` (ignored when the location has
        changed meanwhile): listed under the form, none chosen until ↓ says so."""
        value = self.query_one("#location", Input).value if self.is_attached else None
        if typed != value or typed == self._dismissed:
            return  # changed meanwhile, or its list closed with Escape while it was on the way
        self.matches = list(matches)
        shown = self.query_one("#completions", OptionList)
        shown.clear_options()
        shown.add_options(Option(Text(m.label)) for m in self.matches)
        shown.set_class(not self.matches, "hidden")
        only = self._only_completion() if self.matches else None
        if only is not None:
            others = " (↓ ↑ choose another)" if len(self.matches) > 1 else ""
            self._location_info(f"Enter takes {only.label}{others}")
        elif self.matches:
            self._location_info("↓ ↑ choose an address, Enter takes it")
        elif typed.strip():
            self._location_info(
                "not in the gazetteer: taken as typed, UNVERIFIED if not found when saved"
            )
        else:
            self._location_info("")

    def _location_info(self, text: str) -> None:
        self.query_one("#location-info", Label).update(Text(text))

    def _offering(self) -> bool:
        """Addresses are listed for the location field, which has the focus."""
        shown = self.query_one("#completions", OptionList)
        return (
            bool(self.matches)
            and not shown.has_class("hidden")
            and self.focused is self.query_one("#location", Input)
        )

    def _only_completion(self) -> AddressMatch | None:
        """The one address listed whose words begin with what was typed (`456 w map` for
        `456 W Maple St, Riverton`), when it is the only such one: Enter takes it without ↓, as
        a dispatcher expects; with two or more, or none, Enter moves on as typed."""
        if not self._offering():
            return None
        typed = " ".join(self.query_one("#location", Input).value.split()).lower()
        if not typed:
            return None
        extending = [
            m
            for m in self.matches
            if m.quality != "street" and " ".join(m.label.split()).lower().startswith(typed)
        ]
        return extending[0] if len(extending) == 1 else None

    def action_completion(self, step: int) -> None:
        shown = self.query_one("#completions", OptionList)
        last = len(self.matches) - 1
        now = shown.highlighted
        shown.highlighted = 0 if now is None else max(0, min(last, now + step))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._take_address(self.matches[event.option_index])

    def _take_address(self, match: AddressMatch) -> None:
        """Put a listed address in the location field. An address point goes with its position
        (the call is verified) and the form moves on; a street is written for its number to be
        typed before it."""
        location = self.query_one("#location", Input)
        self.matches = []
        self.query_one("#completions", OptionList).add_class("hidden")
        if match.quality == "street":
            location.value = f" {match.street}"
            location.cursor_position = 0
            self._location_info("type the number")
            return
        self.chosen = match
        location.value = match.label
        self._location_info(f"in the gazetteer: {match.label} ({match.lat:.5f}, {match.lon:.5f})")
        self.focus_next(Input)

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

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "completion":
            return self._offering()
        return True

    def action_next_field(self) -> None:
        highlighted = self.query_one("#completions", OptionList).highlighted
        if self._offering() and highlighted is not None:
            self._take_address(self.matches[highlighted])
            return
        only = self._only_completion()
        if only is not None:
            self._take_address(only)
            return
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
        # An address taken from the gazetteer's list, as it was taken: its position goes too.
        chosen = self.chosen if self.chosen and self.chosen.label == values["location"] else None
        raw = CallIntake(
            nature=values["nature"],
            priority=values["priority"] or None,
            determinant=values["determinant"],
            place=place.name if place else "",
            location=values["location"],
            caller_name=values["caller"],
            caller_phone=values["phone"],
            notes=values.get("notes", ""),
            lat=chosen.lat if chosen else None,
            lon=chosen.lon if chosen else None,
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
        if self._offering():  # Escape closes the list of addresses first, not the form
            # An answer still on its way for what is typed now must not open it again.
            self._dismissed = self.query_one("#location", Input).value
            self.matches = []
            self.query_one("#completions", OptionList).add_class("hidden")
            self._location_info("")
            return
        self.dismiss(None)
