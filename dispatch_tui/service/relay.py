"""The relay's two ends: read a change's rows once and write them as payloads; decode them.

A listener in the relay (`db.listener`) calls `publish` when it is the relay and `receive` for
every change the relay sends (its own included). What a change's rows are is read by the same
`ReadService.changed` a desk used to call itself, so the rows a follower applies are exactly the
ones it would have read.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

from dispatch_tui.db.listener import Change, touched
from dispatch_tui.rules import wire
from dispatch_tui.service.read_service import ReadService

__all__ = ["Relay"]

log = logging.getLogger(__name__)


class Relay:
    """`service` reads the rows (as the relay); `apply` takes each relayed change."""

    def __init__(self, service: ReadService, apply: Callable[[wire.Relayed], None]) -> None:
        self._service = service
        self._apply = apply
        self._seq = itertools.count(1)

    def publish(self, changes: list[Change]) -> list[str]:
        calls, units, hospitals = touched(changes)
        if not (calls or units or hospitals):
            return []  # nothing a desk shows
        snapshot = self._service.changed(call_ids=calls, unit_ids=units, hospital_ids=hospitals)
        return wire.encode(next(self._seq), snapshot)

    def receive(self, payloads: list[str]) -> None:
        self._apply(wire.decode(payloads))
