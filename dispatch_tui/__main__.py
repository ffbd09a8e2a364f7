"""`python -m dispatch_tui` runs the same entry point as the `dispatch-tui` script."""

from dispatch_tui.cli import main

raise SystemExit(main())
