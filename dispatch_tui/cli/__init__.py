"""The `dispatch-tui` command: argument parsing, sessions it opens, output (text or --json)."""

from dispatch_tui.cli.main import main

__all__ = ["main"]
