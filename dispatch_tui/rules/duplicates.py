"""Duplicate calls: is a new call the same incident as an open one? Pure rules.

A crash on a main road brings several callers within minutes. Before a new call is saved, the
open calls received in the last `minutes` within `metres` of it, or at the same address, are its
candidates; the dispatcher attaches the new caller to one of them, or takes the call as a new
one anyway (audited). "The same address" is the typed location with case, punctuation and the
usual abbreviations set aside (`12 N. Main Street` is `12 n main st`); a named place gives a call
its position, so two calls at one place are 0 m apart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatch_tui.rules.addresses import normalise_address
from dispatch_tui.rules.enums import CallStatus
from dispatch_tui.rules.recommend import haversine_km
from dispatch_tui.rules.views import CallView

__all__ = ["Candidate", "DuplicateRule", "candidates", "normalise_address"]

METRES = 150
MINUTES = 30


@dataclass(frozen=True, slots=True)
class DuplicateRule:
    """How near, and how recent, an open call must be to be a possible duplicate."""

    metres: int = METRES
    minutes: int = MINUTES


@dataclass(frozen=True, slots=True)
class Candidate:
    """An open call that may be the same incident, and why it was found."""

    call: CallView
    metres: float | None  # its distance, when both calls have a position
    same_address: bool

    def line(self, now: datetime) -> str:
        """`C-1003 P1 Chest pain, Riverton Mall · 80 m · 4 min ago`."""
        call = self.call
        where = "same address" if self.same_address else f"{self.metres:.0f} m"
        minutes = max(0, int((now - call.received_at).total_seconds() // 60))
        ago = "just now" if minutes == 0 else f"{minutes} min ago"
        return (
            f"{call.number} P{call.priority} {call.nature}, {call.location_text} · {where} · {ago}"
        )


def candidates(
    position: tuple[float, float] | None,
    location: str,
    calls: Iterable[CallView],
    now: datetime,
    rule: DuplicateRule,
) -> list[Candidate]:
    """The open calls received in the last `rule.minutes` within `rule.metres` of the new call,
    or at the same address; nearest first (a named place gives both calls its position). A rule
    of 0 minutes finds none; of 0 metres, only the same address."""
    if rule.minutes <= 0:
        return []
    since = now - timedelta(minutes=rule.minutes)
    address = normalise_address(location)
    found: list[Candidate] = []
    for call in calls:
        if not CallStatus(call.status).is_open or call.received_at < since:
            continue
        metres = None
        if position is not None and call.lat is not None and call.lon is not None:
            metres = haversine_km(position, (call.lat, call.lon)) * 1000
        same = bool(address) and normalise_address(call.location_text) == address
        if same or (metres is not None and rule.metres > 0 and metres <= rule.metres):
            found.append(Candidate(call, metres, same))
    return sorted(found, key=lambda c: (c.metres if c.metres is not None else 0.0, c.call.id))
