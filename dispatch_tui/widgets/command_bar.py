"""The command bar: the CLI's verbs typed at the desk, with Tab completion and history.

Completion uses what the desk already shows (unit numbers, call numbers, hospital codes), so it
never waits on the database, and offers what fits where the cursor is (`words(head)`: the desk
knows that after `d C-1042` come available units, after `tx M12` hospitals). Up/Down walk the history of this session's commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input

from dispatch_tui.rules.grammar import STATUS_SHORTHANDS, VERB_SHORTHANDS, VERBS


class CommandBar(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "tab",
            "complete",
            "Complete",
            show=False,
            priority=True,
            tooltip="verbs, unit and call numbers, hospital codes",
        ),
        Binding("up", "history(-1)", "Previous", show=False, tooltip="this session's commands"),
        Binding("down", "history(1)", "Next", show=False),
        Binding("escape", "leave", "Close bar", show=False),
    ]

    class Entered(Message):
        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    class Closed(Message):
        pass

    def __init__(
        self,
        words: Callable[[str], list[str]],
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(
            placeholder="d C-1042 M12 · os M12 · tx M12 MERCY · av M12 · Esc closes",
            id=id,
            classes=classes,
        )
        self.words = words
        self.history: list[str] = []
        self._position = 0

    def action_complete(self) -> None:
        """Complete the last word from verbs, unit numbers, call numbers and hospital codes."""
        head, _, last = self.value.rpartition(" ")
        if not last:
            return
        vocabulary = self.words(head) if head else [*VERB_SHORTHANDS, *STATUS_SHORTHANDS, *VERBS]
        matches = sorted({w for w in vocabulary if w.upper().startswith(last.upper())})
        if not matches:
            self.app.bell()
            return
        common = matches[0]
        for word in matches[1:]:
            while not word.upper().startswith(common.upper()):
                common = common[:-1]
        completed = common if len(matches) > 1 else matches[0] + " "
        self.value = (head + " " if head else "") + completed
        self.cursor_position = len(self.value)
        if len(matches) > 1:
            self.notify(" ".join(matches[:12]), title="Tab", timeout=2)

    def action_history(self, step: int) -> None:
        if not self.history:
            return
        self._position = max(0, min(len(self.history), self._position + step))
        self.value = self.history[self._position] if self._position < len(self.history) else ""
        self.cursor_position = len(self.value)

    def action_leave(self) -> None:
        self.value = ""
        self.post_message(self.Closed())

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        # The plain Input.Submitted bubbles too; the desk listens to ours only.
        event.stop()
        line = event.value.strip()
        if line:
            if not self.history or self.history[-1] != line:
                self.history.append(line)
            self._position = len(self.history)
            self.value = ""
            self.post_message(self.Entered(line))
