"""Find a call or a unit: type, and the matches list as you type; Enter takes one.

Calls match by number, address, caller or phone (open ones, and ended ones of the last days),
units by code. The desk runs the search off the UI thread (`search`) and hands the result back
with `show`. `ModalScreen[str | None]`: the answer is `call:C-1042` or `unit:M12`, or None.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from dispatch_tui.rules.enums import CallStatus
from dispatch_tui.rules.lifecycle import label, unit_label
from dispatch_tui.rules.views import Found

# Typing pauses this long before a search is sent.
DEBOUNCE_SECONDS = 0.15


class FindScreen(ModalScreen[str | None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Back"),
        Binding("down", "results", "Results", show=False),
    ]

    def __init__(self, search: Callable[[str], None]) -> None:
        """`search(text)`: the desk searches and calls `show` with what it found."""
        super().__init__()
        self.search = search
        self.text = ""
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="modal wide"):
            yield Label(
                Text("Find a call (number, address, caller, phone) or a unit"),
                classes="modal-title",
            )
            yield Input(placeholder="e.g. C-1042, elm street, 555-0142, M12", id="find")
            yield OptionList(id="found")
            yield Label("", id="found-count", classes="modal-hint")
            yield Label(
                Text("Enter: open the first (↓ to choose) · Esc: back"), classes="modal-hint"
            )

    def on_mount(self) -> None:
        self.query_one("#find", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        self.text = event.value.strip()
        if self._timer is not None:
            self._timer.stop()
        if self.text:
            self._timer = self.set_timer(DEBOUNCE_SECONDS, lambda: self.search(self.text))
        else:
            self.query_one("#found", OptionList).clear_options()
            self.query_one("#found-count", Label).update("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        found = self.query_one("#found", OptionList)
        if found.option_count:
            option = found.get_option_at_index(found.highlighted or 0)
            self.dismiss(option.id)
        elif self.text:
            self.search(self.text)  # Enter before the pause: search now

    def show(self, text: str, found: Found) -> None:
        """What the search for `text` found (an older search's answer is dropped)."""
        if text != self.text:
            return
        options = self.query_one("#found", OptionList)
        options.clear_options()
        for call in found.calls:
            line = Text()
            line.append(f"{call.number:<8}", style="bold")
            line.append(f" P{call.priority} {label(call.status):<12} ")
            if not CallStatus(call.status).is_open:
                line.append("ended ", style="dim")
            line.append(f"{call.nature[:30]} — {call.location_text[:40]}")
            if call.caller_name or call.caller_phone:
                line.append(f"  ({call.caller_name} {call.caller_phone})".rstrip(), style="dim")
            options.add_option(Option(line, id=f"call:{call.number}"))
        for unit in found.units:
            line = Text()
            line.append(f"{unit.code:<8}", style="bold")
            line.append(f" unit {unit_label(unit.status, unit.en_route_reported)}")
            if unit.call_number:
                line.append(f" on {unit.call_number}")
            options.add_option(Option(line, id=f"unit:{unit.code}"))
        if options.option_count:
            options.highlighted = 0
        shown, total = len(found.calls), found.total_calls
        cut = f" (showing the newest {shown} of {total}: type more)" if found.truncated else ""
        self.query_one("#found-count", Label).update(
            Text(f"{total} call{'s' if total != 1 else ''}{cut}, {len(found.units)} units")
        )

    def action_results(self) -> None:
        found = self.query_one("#found", OptionList)
        if found.option_count:
            found.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
