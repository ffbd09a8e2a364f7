"""Every key of the screen on one modal (`?`), read from the bindings themselves.

Nothing here is retyped: each row is a binding's keys, its description and its tooltip, grouped
by where it works (anywhere, each pane, the command bar), so a key added to a pane shows up here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss_help", "Close")
    ]

    def __init__(
        self, sections: Sequence[tuple[str, Sequence[Binding]]], title: str = "Keys of the desk"
    ) -> None:
        super().__init__()
        self.sections = sections
        self.title_text = title

    def compose(self) -> ComposeResult:
        table = Table(title=self.title_text, expand=True)
        table.add_column("Where")
        table.add_column("Key", style="bold")
        table.add_column("What it does")
        for where, bindings in self.sections:
            for keys, what in self._rows(bindings):
                table.add_row(Text(where), Text(keys), Text(what))
        with VerticalScroll(classes="modal wide"):
            yield Static(table)

    def _rows(self, bindings: Sequence[Binding]) -> list[tuple[str, str]]:
        """One row per action: its keys together (`d, Enter`), its description and tooltip."""
        keys: dict[str, list[str]] = {}
        what: dict[str, str] = {}
        for binding in bindings:
            text = binding.description or binding.action.replace("_", " ")
            if binding.tooltip:
                text = f"{text}: {binding.tooltip}"
            if len(text) > len(what.get(binding.action, "")):
                what[binding.action] = text
            for key in binding.key.split(","):
                display = self.app.get_key_display(Binding(key.strip(), binding.action))
                keys.setdefault(binding.action, []).append(display)
        return [(" / ".join(keys[action]), what[action]) for action in keys]

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
