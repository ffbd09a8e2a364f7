"""The unit tier: the pure rules of `dispatch_tui.rules`, no database, runs in seconds."""
