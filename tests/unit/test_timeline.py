"""A crew alert's delivery as the call's timeline says it (pure words)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dispatch_tui.rules.timeline import delivery, merge
from dispatch_tui.rules.views import AlertView

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


def alert(
    kind: str = "dispatch", state: str = "sent", attempts: int = 1, error: str | None = None
) -> AlertView:
    sent = T0 if state == "sent" else None
    tried = T0 if attempts else None
    return AlertView(7, "M1", kind, state, attempts, sent, tried, error)


@pytest.mark.parametrize(
    ("view", "said"),
    [
        (alert(), "alert to M1 sent"),
        (alert(attempts=3), "alert to M1 sent (after 3 tries)"),
        (alert("stand_down"), "stand-down alert to M1 sent"),
        (
            alert(state="pending", attempts=2, error="no answer in 10 s"),
            "alert to M1: try 2 failed: no answer in 10 s; trying again",
        ),
        (
            alert(state="failed", attempts=5, error="exit 1: gateway down"),
            "alert to M1 FAILED after 5 tries: exit 1: gateway down",
        ),
    ],
)
def test_each_outcome_in_words(view: AlertView, said: str) -> None:
    assert delivery(view) == said


def test_an_alert_not_tried_yet_is_not_in_the_timeline() -> None:
    waiting = alert(state="pending", attempts=0)
    assert merge([], [], [waiting]) == ()
    (entry,) = merge([], [], [alert()])
    assert (entry.at, entry.source, entry.who) == (T0, "alert", "alerter")
