"""Reads of the gazetteer (migration 0014): typed addresses to places, and places to addresses.

Each function takes an open Session and does a bounded number of indexed queries:

- `geocode`: the streets a typed street may be (exactly; with one slip of two neighbouring
  letters, looked up exactly; or alike by trigrams, on the few thousand rows of
  `gazetteer_streets`), then the number on each (exactly, through `ix_address_points_number`;
  or placed between its neighbours, through `ix_address_points_house`).
- `complete`: the address points with the number typed on a street whose words start as typed
  (the number first: a few hundred rows at most in a county), or the streets when no number is
  typed yet.
- `nearest`: the address point nearest a position, looked for in a box that grows
  (`ix_address_points_lat_lon`).

How good a match is (`score`, `quality`) is said here; what a call makes of it is
`rules.addresses.settle`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    Integer,
    Text,
    any_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.orm import Session

from dispatch_tui.db.models import AddressPoint, gazetteer_streets
from dispatch_tui.rules import addresses
from dispatch_tui.rules.addresses import AddressMatch, ParsedAddress
from dispatch_tui.rules.recommend import haversine_km

# How a street was found, as a score: exactly; with two neighbouring letters swapped; alike by
# trigrams (at most this, times the similarity).
EXACT_STREET = 1.0
SWAPPED_STREET = 0.9
ALIKE_STREET = 0.85
# How the number was found, as a factor of the street's score.
QUALITY = {"exact": 1.0, "interpolated": 0.8, "nearest": 0.6, "street": 0.5}
# A typed city or postcode that is not the point's.
# Below `addresses.VERIFIED_SCORE`: an address found in another town than the one typed is
# offered, never taken as verified.
OTHER_CITY = 0.75
OTHER_POSTCODE = 0.9
# The streets a typed street is looked for on, best first.
STREETS_TRIED = 5

_G = gazetteer_streets.c
_KEYS = bindparam("keys", type_=ARRAY(Text))
_STREET_SCORE = case(
    (_G.street_key == bindparam("key"), literal(EXACT_STREET)),
    (_G.street_key == any_(_KEYS), literal(SWAPPED_STREET)),
    else_=ALIKE_STREET
    * func.greatest(
        func.similarity(_G.street_key, bindparam("key")),
        func.word_similarity(bindparam("key"), _G.street_key),
    ),
)
# `%`: alike by trigrams; `<%`: the typed words alike some run of the street's words (a street
# typed without its direction or its type, `maple` for `w maple st`). Both use the trigram index.
_CANDIDATE_STREETS = (
    select(_G.street_key, func.max(_STREET_SCORE).label("score"))
    .where(
        or_(
            _G.street_key == bindparam("key"),
            _G.street_key == any_(_KEYS),
            _G.street_key.op("%")(bindparam("key")),
            bindparam("key").op("<%")(_G.street_key),
        )
    )
    .group_by(_G.street_key)
    .order_by(text("score DESC"), _G.street_key)
    .limit(STREETS_TRIED)
)

_POINT = (
    AddressPoint.id,
    AddressPoint.number,
    AddressPoint.street,
    AddressPoint.unit,
    AddressPoint.city,
    AddressPoint.postcode,
    AddressPoint.lat,
    AddressPoint.lon,
    AddressPoint.street_key,
)
_EXACT = select(*_POINT).where(
    AddressPoint.number == bindparam("number"),
    AddressPoint.street_key == any_(bindparam("streets", type_=ARRAY(Text))),
)
# A number's neighbours on a street: the nearest below and above, on the same side of the
# street (same parity) if the street has any there.
_NEIGHBOURS = text(
    """
SELECT s.key, n.side, n.id, n.number, n.street, n.unit, n.city, n.postcode, n.lat, n.lon, n.house
FROM unnest(CAST(:streets AS text[])) AS s(key)
CROSS JOIN LATERAL (
    (SELECT 'at' AS side, p.* FROM address_points p
     WHERE p.street_key = s.key AND p.house = :house ORDER BY p.number LIMIT 1)
    UNION ALL
    (SELECT 'below' AS side, p.* FROM address_points p
     WHERE p.street_key = s.key AND p.house < :house
     ORDER BY p.house % 2 = :parity DESC, p.house DESC LIMIT 1)
    UNION ALL
    (SELECT 'above' AS side, p.* FROM address_points p
     WHERE p.street_key = s.key AND p.house > :house
     ORDER BY p.house % 2 = :parity DESC, p.house LIMIT 1)
) AS n
"""
)
_STREET_CENTRES = select(_G.street_key, _G.name, _G.city, _G.lat, _G.lon).where(
    _G.street_key == any_(bindparam("streets", type_=ARRAY(Text)))
)


def label(number: str | None, street: str, unit: str | None, city: str | None) -> str:
    """`123 W Maple St #4, Riverton`: an address as the desk writes it."""
    text_ = f"{number} {street}" if number else street
    if unit:
        text_ += f" {unit}" if any(ch.isalpha() for ch in unit.split()[0]) else f" #{unit}"
    return f"{text_}, {city}" if city else text_


def _match(row: Any, score: float, quality: str, note: str = "") -> AddressMatch:
    return AddressMatch(
        id=row.id,
        label=label(row.number, row.street, row.unit, row.city),
        number=row.number,
        street=row.street,
        unit=row.unit,
        city=row.city,
        postcode=row.postcode,
        lat=row.lat,
        lon=row.lon,
        score=round(score, 3),
        quality=quality,
        note=note,
    )


def candidate_streets(session: Session, key: str) -> dict[str, float]:
    """The streets `key` may be, each with how well it matches (best first)."""
    rows = session.execute(
        _CANDIDATE_STREETS, {"key": key, "keys": addresses.typo_variants(key)}
    ).all()
    return {row.street_key: float(row.score) for row in rows}


def geocode(session: Session, typed: ParsedAddress, limit: int) -> list[AddressMatch]:
    """The places `typed` may be, best first, at most `limit`."""
    streets = candidate_streets(session, typed.street_key)
    if not streets:
        return []
    found: list[AddressMatch] = []
    numbered: set[str] = set()
    if typed.number:
        rows = session.execute(
            _EXACT, {"number": typed.number.upper(), "streets": list(streets)}
        ).all()
        for row in _one_per_building(rows, typed.unit):
            numbered.add(row.street_key)
            found.append(_match(row, streets[row.street_key], "exact"))
    house = typed.house
    missing = [key for key in streets if key not in numbered]
    if house is not None and missing:
        found += _between(session, missing, house, typed.number or str(house), streets)
    if typed.number is None or house is None:
        found += _street_only(session, list(streets), streets)
    ranked = [_as_typed(m, typed) for m in found]
    ranked.sort(key=lambda m: (-m.score, m.label))
    return ranked[:limit]


def _one_per_building(rows: Sequence[Any], unit: str | None) -> list[Any]:
    """Of the rows for one number on one street (and city), the unit typed, else the building
    (no unit), else the first: a block of flats is one match, not forty."""
    wanted = _unit_key(unit) if unit else None

    def rank(row: Any) -> tuple[bool, bool, int]:
        return (_unit_key(row.unit) != wanted if wanted else True, bool(row.unit), row.id)

    best: dict[tuple[str, str], Any] = {}
    for row in sorted(rows, key=rank):
        best.setdefault((row.street_key, row.city or ""), row)
    return list(best.values())


_UNIT_WORDS = {"apt", "unit", "ste", "rm", "fl", "bldg", "no"}


def _unit_key(unit: str | None) -> str:
    return " ".join(w for w in addresses.words(unit or "") if w not in _UNIT_WORDS)


def _between(
    session: Session, streets: list[str], house: int, typed: str, score: dict[str, float]
) -> list[AddressMatch]:
    """A number the data lacks (`typed`, its house number `house`), on each of `streets` that
    has numbers: at the building with the same house number and another suffix (`456½` at
    456), else placed between its neighbours on the same side (interpolated), or at the
    nearest when it has one only."""
    rows = session.execute(
        _NEIGHBOURS, {"streets": streets, "house": house, "parity": house % 2}
    ).all()
    sides: dict[str, dict[str, Any]] = {}
    for row in rows:
        sides.setdefault(row.key, {})[row.side] = row
    found = []
    for key, side in sides.items():
        below, above, at = side.get("below"), side.get("above"), side.get("at")
        if at is not None:
            note = f"no {typed} in the data: at {at.number}, the same house number"
            found.append(_match(at, score[key] * QUALITY["interpolated"], "interpolated", note))
        elif below is not None and above is not None:
            share = (house - below.house) / (above.house - below.house)
            where = _along(below, above, share)
            found.append(
                AddressMatch(
                    id=None,
                    label=label(str(house), below.street, None, below.city),
                    number=str(house),
                    street=below.street,
                    unit=None,
                    city=below.city,
                    postcode=below.postcode,
                    lat=where[0],
                    lon=where[1],
                    score=round(score[key] * QUALITY["interpolated"], 3),
                    quality="interpolated",
                    note=f"no {typed} in the data: between {below.number} and {above.number}",
                )
            )
        else:
            near = below if below is not None else above
            found.append(
                _match(
                    near,
                    score[key] * QUALITY["nearest"],
                    "nearest",
                    f"no {typed} in the data: its nearest number",
                )
            )
    return found


def _along(a: Any, b: Any, share: float) -> tuple[float, float]:
    return a.lat + (b.lat - a.lat) * share, a.lon + (b.lon - a.lon) * share


def _street(row: Any, score: float, note: str) -> AddressMatch:
    """A street as a match (no number): at its middle."""
    city = row.city or None
    return AddressMatch(
        id=None,
        label=label(None, row.name, None, city),
        number=None,
        street=row.name,
        unit=None,
        city=city,
        postcode=None,
        lat=row.lat,
        lon=row.lon,
        score=score,
        quality="street",
        note=note,
    )


def _street_only(
    session: Session, streets: list[str], score: dict[str, float]
) -> list[AddressMatch]:
    """Each street at its middle: what a street typed without a number can be given."""
    found = [
        _street(
            row,
            round(score[row.street_key] * QUALITY["street"], 3),
            "the street's middle: no number given",
        )
        for row in session.execute(_STREET_CENTRES, {"streets": streets})
    ]
    return found


def _as_typed(match: AddressMatch, typed: ParsedAddress) -> AddressMatch:
    """A match's score less what the typed city or postcode says against it."""
    factor = 1.0
    if typed.city and match.city and addresses.words(typed.city) != addresses.words(match.city):
        factor *= OTHER_CITY
    if typed.postcode and match.postcode and typed.postcode[:5] != match.postcode[:5]:
        factor *= OTHER_POSTCODE
    if factor == 1.0:
        return match
    return AddressMatch(**{**_fields(match), "score": round(match.score * factor, 3)})


def _fields(match: AddressMatch) -> dict[str, Any]:
    return {name: getattr(match, name) for name in AddressMatch.__dataclass_fields__}


# -- completion ---------------------------------------------------------------------------------

_PATTERNS = bindparam("patterns", type_=ARRAY(Text))
_CITY = func.coalesce(AddressPoint.city, literal_column("''"))
# One row per building (the one without a unit first), by street.
_COMPLETE_NUMBER = (
    select(*_POINT)
    .where(
        AddressPoint.number == bindparam("number"), AddressPoint.street_key.like(any_(_PATTERNS))
    )
    .ext(distinct_on(AddressPoint.street_key, _CITY))
    .order_by(
        AddressPoint.street_key,
        _CITY,
        AddressPoint.unit.is_not(None),
        AddressPoint.id,
    )
    .limit(bindparam("limit", type_=Integer))
)
_COMPLETE_STREET = (
    select(_G.street_key, _G.name, _G.city, _G.lat, _G.lon)
    .where(_G.street_key.like(any_(_PATTERNS)))
    .order_by(_G.points.desc(), _G.street_key, _G.city)
    .limit(bindparam("limit", type_=Integer))
)


def complete(session: Session, prefix: addresses.Prefix, limit: int) -> list[AddressMatch]:
    """What a location typed so far may be: addresses with its number on a street whose words
    start as typed, or (no number yet) such streets. At most `limit`, in street order."""
    params = {"patterns": list(prefix.patterns), "limit": limit}
    if prefix.number is not None:
        rows = session.execute(_COMPLETE_NUMBER, {**params, "number": prefix.number.upper()})
        return [_match(row, 1.0, "exact") for row in rows]
    return [
        _street(row, 1.0, "a street: type the number")
        for row in session.execute(_COMPLETE_STREET, params)
    ]


# -- the nearest address ------------------------------------------------------------------------

# Half the side of the box looked in first, in degrees of latitude (~110 m), and how many times
# it is made four times larger before giving up (~28 km).
NEAREST_FIRST_BOX = 0.001
NEAREST_GROWTHS = 4
_NEAREST = (
    select(*_POINT)
    .where(
        AddressPoint.lat.between(
            bindparam("lat") - bindparam("d"), bindparam("lat") + bindparam("d")
        ),
        AddressPoint.lon.between(
            bindparam("lon") - bindparam("dl"), bindparam("lon") + bindparam("dl")
        ),
    )
    .order_by(
        func.power(AddressPoint.lat - bindparam("lat"), 2)
        + func.power((AddressPoint.lon - bindparam("lon")) * bindparam("k"), 2),
        AddressPoint.unit.is_not(None),
        AddressPoint.id,
    )
    .limit(1)
)


def nearest(session: Session, lat: float, lon: float) -> AddressMatch | None:
    """The address point nearest (`lat`, `lon`), with how far it is; None when there is none
    within about 28 km (a gazetteer of another area, or none at all)."""
    k = max(math.cos(math.radians(lat)), 0.01)  # a degree of longitude, in degrees of latitude
    d = NEAREST_FIRST_BOX
    for _ in range(NEAREST_GROWTHS + 1):
        row = _nearest_in(session, lat, lon, d, k)
        if row is not None:
            # The nearest in the box may not be the nearest: one just outside its side can be
            # nearer than one in its corner. Look again as far as the one found.
            reach = math.hypot(row.lat - lat, (row.lon - lon) * k)
            if reach > d:
                row = _nearest_in(session, lat, lon, reach, k) or row
            metres = haversine_km((lat, lon), (row.lat, row.lon)) * 1000
            return _match(row, 1.0, "nearby", f"{metres:.0f} m away")
        d *= 4
    return None


def _nearest_in(session: Session, lat: float, lon: float, d: float, k: float) -> Any:
    params = {"lat": lat, "lon": lon, "d": d, "dl": d / k, "k": k}
    return session.execute(_NEAREST, params).first()
