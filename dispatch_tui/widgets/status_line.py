"""The desk's status line: operator, database, connection state, last update, clock.

The connection state is always spelled out (live / reconnecting / polling): a desk that silently
stopped updating is the failure dispatchers fear most.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

STATE_STYLES = {
    "live": "bold green",
    "connecting": "yellow",
    "reconnecting": "bold white on red",
    "polling": "bold black on yellow",
}


class StatusLine(Static):
    state: reactive[str] = reactive("connecting")
    last_update: reactive[datetime | None] = reactive(None)
    now: reactive[datetime | None] = reactive(None)

    def __init__(self, operator: str, role: str, database: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.operator = operator
        self.role = role
        self.database = database

    def render(self) -> Text:
        text = Text()
        text.append(" DISPATCH ", style="bold reverse")
        text.append("  ")
        text.append(self.operator, style="bold")
        text.append(f" ({self.role})  db: ")
        text.append(self.database)
        text.append("  ")
        text.append(f" {self.state.upper()} ", style=STATE_STYLES.get(self.state, ""))
        if self.last_update is not None and self.now is not None:
            seconds = max(0, int((self.now - self.last_update).total_seconds()))
            text.append(f"  updated {seconds}s ago")
        if self.now is not None:
            text.append("  ")
            text.append(self.now.astimezone().strftime("%H:%M:%S"), style="bold")
        return text
