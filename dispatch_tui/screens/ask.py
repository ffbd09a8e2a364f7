"""One line asked before an action: a note, or why a call or unit is cancelled or taken out.

`ModalScreen[str | None]`: the question names what the action does (the call's number, what it
releases), Enter answers with the line typed, Escape backs out and nothing is done. A required
answer left empty says so and waits.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class AskScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Back")]

    def __init__(
        self,
        question: str,
        *,
        placeholder: str = "",
        required: bool = True,
        enter: str = "confirm",
        max_length: int = 2000,
    ) -> None:
        super().__init__()
        self.question = question
        self.placeholder = placeholder
        self.required = required
        self.enter = enter
        self.max_length = max_length

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal wide"):
            yield Label(Text(self.question), classes="modal-title")
            yield Input(placeholder=self.placeholder, max_length=self.max_length, id="answer")
            yield Label("", id="error", classes="error")
            yield Label(
                Text(f"Enter: {self.enter} · Esc: back, nothing done"), classes="modal-hint"
            )

    def on_mount(self) -> None:
        self.query_one("#answer", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        if self.required and not value:
            self.query_one("#error", Label).update(Text("type it first (Esc: back)"))
            self.app.bell()
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
