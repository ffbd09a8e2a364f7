"""Every key of the desk on one screen (`?`)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = [
    ("Anywhere", "n", "new call (intake form)"),
    ("Anywhere", ": or /", "command bar: d C-1042 M12, os M12, tx M12 MERCY, av M12, cx M12 …"),
    ("Anywhere", "Tab / Shift+Tab", "next / previous pane"),
    ("Anywhere", "Ctrl+P", "command palette: every action"),
    ("Anywhere", "?", "this help"),
    ("Anywhere", "q", "quit"),
    ("Pending calls", "d or Enter", "dispatch: recommended units, Enter takes the top one"),
    ("Pending calls", "x", "cancel the call"),
    ("Active calls", "a", "add a unit (recommended units)"),
    ("Active calls", "c", "close the call (a unit reached it)"),
    ("Active calls", "x", "cancel the call and release its units"),
    (
        "Units",
        "e o t h v",
        "en route · on scene · transporting (asks destination) · at hospital · available",
    ),
    ("Units", "s", "out of service / back (only when not on a call)"),
    ("Units", "x", "cancel the unit's assignment (before it arrives)"),
    ("Hospitals", "o v c", "open · diversion · closed"),
    ("Hospitals", "b", "beds available"),
    ("Command bar", "Tab · Up/Down · Esc", "complete · history · close"),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "dismiss_help", "Close")
    ]

    def compose(self) -> ComposeResult:
        table = Table(title="Keys of the desk", expand=True)
        table.add_column("Where")
        table.add_column("Key", style="bold")
        table.add_column("What it does")
        for where, key, what in KEYS:
            table.add_row(where, key, what)
        with VerticalScroll(classes="modal wide"):
            yield Static(table)

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
