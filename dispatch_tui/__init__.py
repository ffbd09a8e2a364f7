"""dispatch-tui: a keyboard-driven terminal dispatch desk for ambulance services."""

__version__ = "0.1.0"
