"""The intake form: a new call, validated before it leaves the desk.

The same validation as the CLI (`rules.validation.intake`) runs on every submit, so the form says
what is wrong in one line and keeps what was typed. Named places complete as you type (from the
places the desk already holds) and fill in the coordinates.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label

from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.rules.validation import CallIntake, intake
from dispatch_tui.rules.views import PlaceView

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


class IntakeScreen(ModalScreen[CallIntake | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "take", "Take call", priority=True),
        # Handled as a priority binding, not Input.Submitted: focus moves before the next key is
        # routed, so a fast typist's next field never lands in the previous one.
        Binding("enter", "next_field", "Next field", show=False, priority=True),
    ]

    def __init__(self, places: list[PlaceView]) -> None:
        super().__init__()
        self.places = {p.name.lower(): p for p in places}
        self.place_names = [p.name for p in places]

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal wide"):
            yield Label(
                "New call — Enter: next field · Ctrl+S: take call · Esc: cancel",
                classes="modal-title",
            )
            with Grid(classes="form"):
                for key, title, hint in FIELDS:
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
            yield Label("", id="error", classes="error")

    def on_mount(self) -> None:
        self.query_one("#nature", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "place":
            place = self._place(event.value)
            info = (
                f"{place.name}: {place.address} ({place.lat:.4f}, {place.lon:.4f})" if place else ""
            )
            self.query_one("#place-info", Label).update(Text(info))

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
            notes=values["notes"],
        )
        try:
            intake(raw)
        except InvalidInput as err:
            self._error(err.message)
            return
        self.dismiss(raw)

    def _error(self, message: str) -> None:
        self.query_one("#error", Label).update(Text(message))
        self.app.bell()

    def action_cancel(self) -> None:
        self.dismiss(None)
