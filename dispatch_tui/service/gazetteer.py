"""The gazetteer's reads: the agency's own addresses and streets, offline.

`GazetteerReads` (part of the read service every desk, board and the CLI has): `geocode(text)`
(the places a typed address may be, best first, with scores and positions), `complete(prefix)`
(what the intake's location field offers as it is typed) and `nearest_address(lat, lon)` (what
`unit locate` and the map name a position by), each in one short read transaction; and `placed`,
where a call typed at an address is, in the writer's own transaction. Loading the gazetteer
(`gis import`) is `gazetteer_import`.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.db import gazetteer as reads
from dispatch_tui.rules import addresses, validation
from dispatch_tui.rules.addresses import AddressMatch
from dispatch_tui.service.transactions import reading

# How many matches `geocode` gives, and completions `complete`, at most by default.
GEOCODE_LIMIT = 5
COMPLETE_LIMIT = 8
LIMIT_MAX = 50


class GazetteerReads:
    """The gazetteer's reads: mixed into the read service (`self.sessions`)."""

    sessions: sessionmaker[Session]

    def geocode(self, typed: str, limit: int = GEOCODE_LIMIT) -> list[AddressMatch]:
        """The places `typed` may be, best first (empty when none: the caller says so)."""
        where = validation.text_field("address", typed, validation.LOCATION_MAX, required=True)
        parsed = addresses.parse(where)
        if parsed is None:
            return []
        with reading(self.sessions) as s, s.begin():
            return reads.geocode(s, parsed, _limit(limit))

    def complete(self, typed: str, limit: int = COMPLETE_LIMIT) -> list[AddressMatch]:
        """What a location typed so far may be: addresses with its number on a street whose
        words start as typed (or, no number yet, such streets); when none starts so, the
        addresses the geocoder finds for it (a slip in a word). At most `limit`."""
        where = validation.text_field("address", typed, validation.LOCATION_MAX)
        # A space typed last says the word before it is finished (`408 ` is a whole number).
        prefix = addresses.completion_prefix(where + (" " if typed[-1:].isspace() else ""))
        if prefix is None:
            return []
        with reading(self.sessions) as s, s.begin():
            found = reads.complete(s, prefix, _limit(limit))
            if found or prefix.number is None:
                return found
            # Addresses the data has, whose street was typed with a slip: never a number
            # made up between neighbours, which would offer an address that is not there.
            parsed = addresses.parse(where)
            found = reads.geocode(s, parsed, _limit(limit)) if parsed is not None else []
            return [
                m for m in found if m.quality == "exact" and m.score >= addresses.POSITION_SCORE
            ]

    def nearest_address(self, lat: float | str, lon: float | str) -> AddressMatch | None:
        """The address nearest a position, with how far it is (None: no address near)."""
        position = validation.coordinate(lat, lon)
        with reading(self.sessions) as s, s.begin():
            return reads.nearest(s, *position)

    def settle(self, typed: str) -> addresses.Settled:
        """What a call typed at `typed` is given: a position, verified or not
        (`rules.addresses.settle`)."""
        return addresses.settle(self.geocode(typed))


def _limit(limit: int) -> int:
    return max(1, min(int(limit), LIMIT_MAX))


def placed(s: Session, location: str) -> addresses.Settled:
    """Where a call typed at `location` is, in the caller's transaction (intake, an edit):
    the gazetteer's best match, verified or not (`rules.addresses.settle`)."""
    parsed = addresses.parse(location)
    if parsed is None:
        return addresses.settle([])
    return addresses.settle(reads.geocode(s, parsed, GEOCODE_LIMIT))
