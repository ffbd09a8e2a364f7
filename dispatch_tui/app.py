"""The Textual app: it picks the screen (the dispatcher's desk, the supervisor's board, or a
unit's crew terminal).

Nothing else lives here but one setting of the process it runs in (the garbage collector's,
below). Each screen owns its live feed, its workers and its messages (`screens/live.py`), and no
screen imports this module.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from dispatch_tui.screens.live import DeskContext, LiveScreen

# The young generation is collected every this many new objects (Python's default: 700). A storm
# puts ten thousand calls on a desk: some hundred thousand objects (rows, cells, views) that all
# live on, and with the default the collector went through the app's whole heap again and again
# while they were built, a quarter of the desk's first paint. The cost is young cyclic garbage
# kept a little longer (a few MB at most).
YOUNG_GENERATION = 50_000


class DispatchApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "dispatch-tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit", tooltip="the database keeps everything"),
    ]

    def __init__(
        self,
        context: DeskContext,
        *,
        mode: str = "desk",
        clock: Callable[[], datetime] | None = None,
        unit: str | None = None,
    ) -> None:
        super().__init__()
        # Set while the app runs and put back when it ends: a process that opens several apps
        # (the tests) keeps its own collector's settings.
        self._gc_threshold = gc.get_threshold()
        young, older, oldest = self._gc_threshold
        gc.set_threshold(max(young, YOUNG_GENERATION), older, oldest)
        self.context = context
        self.mode = mode
        self.clock = clock  # tests drive the board's timers with their own clock
        self.unit = unit  # the unit whose crew terminal this is (mode "crew")
        self.desk: LiveScreen | None = None

    def on_mount(self) -> None:
        if self.mode == "board":
            from dispatch_tui.screens.board import BoardScreen

            self.desk = BoardScreen(self.context, now=self.clock)
            self.title = "dispatch-tui board"
        elif self.mode == "crew":
            from dispatch_tui.screens.crew import CrewScreen

            assert self.unit is not None, "a crew terminal is a unit's"
            self.desk = CrewScreen(self.context, self.unit)
            self.title = f"dispatch-tui crew {self.unit}"
        else:
            from dispatch_tui.screens.desk import DeskScreen

            self.desk = DeskScreen(self.context)
        self.push_screen(self.desk)

    def on_unmount(self) -> None:
        gc.set_threshold(*self._gc_threshold)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if isinstance(screen, LiveScreen):
            yield from screen.screen_commands()
