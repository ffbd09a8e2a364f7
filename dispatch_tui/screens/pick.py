"""A small modal that picks one item from a list: destination hospital, recommended unit.

`ModalScreen[str | None]`: Enter takes the highlighted item (the first one to begin with),
Escape closes with None, keys do not leak to the desk below.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option


class PickScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, options: list[tuple[str, Text]], hint: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.options = options
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal"):
            yield Label(Text(self.title_text), classes="modal-title")
            if self.options:
                yield OptionList(*(Option(text, id=value) for value, text in self.options))
            else:
                yield Label("nothing to choose from")
            yield Label(Text(self.hint or "Enter: choose · Esc: cancel"), classes="modal-hint")

    def on_mount(self) -> None:
        if self.options:
            option_list = self.query_one(OptionList)
            option_list.highlighted = 0
            option_list.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
