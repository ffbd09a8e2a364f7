"""Reusable desk widgets: the panes, the status line and the command bar."""
