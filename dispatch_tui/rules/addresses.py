"""US-style addresses as typed and as compared: parsed, normalised, matched. Pure rules.

A dispatcher types `123 West Maple Street`, a caller's phone gives `123 W MAPLE ST, RIVERTON`,
the agency's GIS data has `123 W Maple St`: one address. Every comparison goes through the words
here: lower case, punctuation set aside, the usual abbreviations in one form (`street` is `st`,
`north` is `n`, `first` is `1st`). Two keys are made from those words, each in one place:

- `street_key(street)`: a street as compared. The gazetteer stores it for every address point and
  street line (`service.gazetteer_import`), and a typed address is looked up by it.
- `normalise_address(text)`: a whole location as compared (a call's `address_key`, a premise's
  hazard notes, duplicate calls). A typed address is parsed first, so that what does not name
  the place is left out: `123 W Maple St, Riverton OH 43210` and `Riverton Mall, 123 West Maple
  Street` are both `123 w maple st`. Text that is not an address (`car park behind the mall`)
  is compared by all its words.

Typed addresses are parsed with `usaddress` (conditional random fields, trained on US addresses):
a pure parser with no IO, the one package besides the standard library this layer imports (the
import-linter contract in pyproject.toml allows it). What it cannot read as a street address is
treated as words.

`settle` says what a list of gazetteer matches means for a call: a position, verified or not.
The gazetteer's answers (`AddressMatch`, `GazetteerImport`) are plain frozen records, as the
views in `rules/views.py` are, kept here beside the rules that read them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass

import usaddress  # a pure parser (no IO): see the module's docstring

from dispatch_tui.rules.recommend import haversine_km


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """A place the gazetteer found for a typed address: where, how well it matches (`score`,
    0 to 1) and how it was found (`quality`: `exact`, the address point itself;
    `interpolated`, a number missing from the data placed between its neighbours on the street;
    `nearest`, the nearest number the street has; `street`, the street alone), with `note`
    saying so in words. `id` is the address point's (None for a position made up)."""

    id: int | None
    label: str  # `123 W Maple St, Riverton`
    number: str | None
    street: str
    unit: str | None
    city: str | None
    postcode: str | None
    lat: float
    lon: float
    score: float
    quality: str
    note: str = ""

    def line(self) -> str:
        """`123 W Maple St, Riverton · 40.01503, -83.01977 · exact 1.00`."""
        how = f"{self.quality} {self.score:.2f}" + (f" ({self.note})" if self.note else "")
        return f"{self.label} · {self.lat:.5f}, {self.lon:.5f} · {how}"


@dataclass(frozen=True, slots=True)
class GazetteerImport:
    """What `gis import` did with a file: rows read, address points and street lines written
    (new or changed), rows left as they were (imported before, unchanged), and the rows
    refused, counted by why (`bad coordinates`, `no street`, ...), with a few examples."""

    source: str
    rows: int
    points: int
    segments: int
    unchanged: int
    refused: dict[str, int]
    examples: tuple[str, ...] = ()
    # With `--replace`: the source's points and lines the file no longer has, removed; and a
    # word when there was nothing to replace (no rows kept as the source before).
    retired_points: int = 0
    retired_lines: int = 0
    note: str = ""

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())


# Words as a typed US-style address writes them, and the one form each stands for (USPS
# Publication 28's street suffixes and directionals, and what intake forms see most).
ABBREVIATIONS = {
    "street": "st",
    "str": "st",
    "avenue": "ave",
    "av": "ave",
    "boulevard": "blvd",
    "boul": "blvd",
    "road": "rd",
    "drive": "dr",
    "lane": "ln",
    "court": "ct",
    "place": "pl",
    "square": "sq",
    "highway": "hwy",
    "parkway": "pkwy",
    "terrace": "ter",
    "circle": "cir",
    "alley": "aly",
    "crescent": "cres",
    "expressway": "expy",
    "freeway": "fwy",
    "plaza": "plz",
    "trail": "trl",
    "route": "rte",
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
    "apartment": "apt",
    "suite": "ste",
    "building": "bldg",
    "floor": "fl",
    "room": "rm",
    "first": "1st",
    "second": "2nd",
    "third": "3rd",
    "fourth": "4th",
    "fifth": "5th",
    "sixth": "6th",
    "seventh": "7th",
    "eighth": "8th",
    "ninth": "9th",
    "tenth": "10th",
}
_WORD = re.compile(r"[a-z0-9]+")
# A house number's digits: at most nine (a longer run is no house number to place, never cut).
_HOUSE = re.compile(r"^\s*(\d{1,9})(?!\d)")

# usaddress's labels that say where a place is: a street address's number, street and unit,
# and an intersection's two streets. The rest (a city, a state, a postcode, a building's or a
# landmark's name, a recipient) names no place by itself and is left out of the comparison.
_NUMBER = ("AddressNumberPrefix", "AddressNumber", "AddressNumberSuffix")
_STREET = (
    "StreetNamePreModifier",
    "StreetNamePreDirectional",
    "StreetNamePreType",
    "StreetName",
    "StreetNamePostType",
    "StreetNamePostDirectional",
    "StreetNamePostModifier",
)
_UNIT = ("OccupancyType", "OccupancyIdentifier", "SubaddressType", "SubaddressIdentifier")
_SECOND_STREET = ("IntersectionSeparator", *(f"Second{label}" for label in _STREET))
# Labels that mean the text is a description with an address-like part, not an address.
_NOT_AN_ADDRESS = ("Recipient", "NotAddress")


def words(text: str) -> list[str]:
    """The words of `text` as compared: lower case, letters and digits, one abbreviation each."""
    return [ABBREVIATIONS.get(w, w) for w in _WORD.findall(text.lower())]


def street_key(street: str) -> str:
    """A street as compared (`W. Maple Street` is `w maple st`): the gazetteer's key."""
    return " ".join(words(street))


def house_number(number: str) -> int | None:
    """The leading whole number of a house number (`123`, `123A`, `123-125` are 123), by
    which a number missing from the gazetteer is placed between its neighbours."""
    found = _HOUSE.match(number)
    return int(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class ParsedAddress:
    """A typed address read as its parts (each as typed; `street_key` as compared)."""

    number: str | None
    street: str
    street_key: str
    unit: str | None = None
    city: str | None = None
    state: str | None = None
    postcode: str | None = None

    @property
    def house(self) -> int | None:
        return house_number(self.number) if self.number else None


@functools.lru_cache(maxsize=4096)
def _tagged(text: str) -> tuple[tuple[tuple[str, str], ...], str] | None:
    """usaddress's reading of `text`: its labelled parts, in order, and what kind of address it
    is; None when it cannot tell (a label twice, as in two addresses run together). Cached: a
    desk compares the same recent locations on every new call."""
    try:
        parts, kind = usaddress.tag(text)
    except usaddress.RepeatedLabelError:
        return None
    return tuple(parts.items()), kind


def parse(text: str) -> ParsedAddress | None:
    """`text` as a street address, or None when it is not one (no street, a description, an
    intersection). The number may be missing (`Maple St`)."""
    tagged = _tagged(text.strip()[:300])
    if tagged is None:
        return None
    parts = dict(tagged[0])
    if any(label in parts for label in _NOT_AN_ADDRESS) or "StreetName" not in parts:
        return None
    if any(label in parts for label in _SECOND_STREET):
        return None
    street = " ".join(parts[label] for label in _STREET if label in parts)
    key = street_key(street)
    if not key:
        return None
    number = " ".join(parts[label] for label in _NUMBER if label in parts) or None
    unit = " ".join(parts[label] for label in _UNIT if label in parts) or None
    return ParsedAddress(
        number=number.strip(" ,") if number else None,
        street=street.strip(" ,"),
        street_key=key,
        unit=unit.strip(" ,#") if unit else None,
        city=(parts.get("PlaceName") or "").strip(" ,") or None,
        state=(parts.get("StateName") or "").strip(" ,") or None,
        postcode=(parts.get("ZipCode") or "").strip(" ,") or None,
    )


def normalise_address(text: str) -> str:
    """A location as compared: the words of the place it names (`123 N. Main Street, Apt 4,
    Riverton` is `123 n main st apt 4`; an intersection, both streets); text that is not an
    address, all its words."""
    tagged = _tagged(text.strip()[:300])
    if tagged is not None:
        parts = dict(tagged[0])
        kind = tagged[1]
        named = kind == "Street Address" and "AddressNumber" in parts and "StreetName" in parts
        crossing = kind == "Intersection" and "SecondStreetName" in parts
        if (named or crossing) and not any(label in parts for label in _NOT_AN_ADDRESS):
            kept = (*_NUMBER, *_STREET, *_UNIT, *_SECOND_STREET)
            return " ".join(w for label, value in tagged[0] if label in kept for w in words(value))
    return " ".join(words(text))


def typo_variants(key: str) -> list[str]:
    """`key` with one pair of neighbouring letters of one word swapped (`w mpale st` →
    `w maple st`, ...): the commonest typing slip, looked up exactly rather than guessed at."""
    found: list[str] = []
    parts = key.split(" ")
    for i, word in enumerate(parts):
        for j in range(len(word) - 1):
            if word[j] == word[j + 1]:
                continue
            swapped = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
            found.append(" ".join([*parts[:i], swapped, *parts[i + 1 :]]))
    return found


@dataclass(frozen=True, slots=True)
class Prefix:
    """What a location typed so far asks the gazetteer for: a house number (None when none is
    typed yet) and LIKE patterns a matching street's key fits (the typed words from the start
    of a word of the key, the last one perhaps still being typed)."""

    number: str | None
    patterns: tuple[str, ...]


def completion_prefix(text: str) -> Prefix | None:
    """The gazetteer query for a location being typed (`123 w ma` → number 123, streets whose
    key has a word starting `w ma`); None when nothing is typed that could name a street.

    What follows a comma (a city, a postcode) is left out: the street is what completes. The
    last word may be unfinished: `str` may become `street`, which the key has as `st`.
    """
    head = text.split(",", 1)[0].lower()
    typed = _WORD.findall(head)
    if not typed:
        return None
    number = None
    if typed[0][0].isdigit() and house_number(typed[0]) is not None:
        number, typed = typed[0], typed[1:]
    if not typed:
        return Prefix(number, ("%",)) if number and head.endswith(" ") else None
    finished = head.endswith(" ") or head.endswith(".")
    done = [ABBREVIATIONS.get(w, w) for w in (typed if finished else typed[:-1])]
    endings = [""]
    if not finished:
        last = typed[-1]
        endings = sorted(
            {ABBREVIATIONS.get(last, last)}
            | {short for long, short in ABBREVIATIONS.items() if long.startswith(last)}
        )
    patterns: list[str] = []
    for ending in endings:
        start = " ".join([*done, ending]).strip() if ending else " ".join(done) + " "
        patterns += [f"{start}%", f"% {start}%"]
    return Prefix(number, tuple(patterns))


# -- what a list of matches means for a call -----------------------------------------------------

# A match is taken as the call's position at this score or above, and as verified (an address
# the gazetteer has, found exactly or through a typing slip) at VERIFIED_SCORE or above.
POSITION_SCORE = 0.5
VERIFIED_SCORE = 0.8
# Two matches this close in score, and further apart than SAME_PLACE_METRES, leave it open
# which place was meant (`12 Maple St` where a West and an East Maple St both have a 12).
AMBIGUOUS_MARGIN = 0.05
SAME_PLACE_METRES = 50.0


@dataclass(frozen=True, slots=True)
class Settled:
    """What the gazetteer made of a typed location: the position to give the call (None: none
    found, or more than one place fits), whether it is verified, and why, in a few words."""

    match: AddressMatch | None
    verified: bool
    why: str

    @property
    def position(self) -> tuple[float, float] | None:
        return (self.match.lat, self.match.lon) if self.match is not None else None


def settle(matches: Sequence[AddressMatch]) -> Settled:
    """The best of `matches` (best first) as a call's position: verified when it is an address
    point found with a score of VERIFIED_SCORE or more and no other place scores as well; a
    position that is only near (a number placed between its neighbours, a fuzzy street) is
    given but not verified; none when nothing scores POSITION_SCORE or when it is ambiguous."""
    if not matches or matches[0].score < POSITION_SCORE:
        return Settled(None, False, "address not found in the gazetteer")
    best = matches[0]
    for other in matches[1:]:
        if best.score - other.score > AMBIGUOUS_MARGIN:
            break
        metres = haversine_km((best.lat, best.lon), (other.lat, other.lon)) * 1000
        if metres > SAME_PLACE_METRES:
            return Settled(None, False, f"ambiguous: {best.label} or {other.label}")
    if best.quality == "exact" and best.score >= VERIFIED_SCORE:
        return Settled(best, True, f"verified: {best.label}")
    return Settled(best, False, f"near {best.label} ({best.note or best.quality})")


# -- rows of the agency's GIS data, checked before they are loaded ------------------------------

FIELD_MAX = 200  # characters in a number, street, unit, city or postcode


@dataclass(frozen=True, slots=True)
class AddressRow:
    """An address point as the gazetteer keeps it, checked. `source_key` names it within its
    source (the data's own id, else the address itself), so loading it again changes it in
    place instead of adding it twice."""

    number: str
    street: str
    street_key: str
    house: int | None
    unit: str | None
    city: str | None
    postcode: str | None
    lat: float
    lon: float
    source_key: str


@dataclass(frozen=True, slots=True)
class StreetLine:
    """A street's line as the gazetteer keeps it: `coords` in GeoJSON order (lon, lat)."""

    name: str
    street_key: str
    city: str | None
    coords: tuple[tuple[float, float], ...]
    source_key: str

    @property
    def box(self) -> tuple[float, float, float, float]:
        """min lat, max lat, min lon, max lon."""
        lats = [lat for _, lat in self.coords]
        lons = [lon for lon, _ in self.coords]
        return min(lats), max(lats), min(lons), max(lons)


def _position(lat: object, lon: object) -> tuple[float, float] | None:
    """A position from the data, or None when it is not one: not numbers, out of range, or
    0, 0 (a blank that a spreadsheet filled in)."""
    try:
        la, lo = float(str(lat).strip()), float(str(lon).strip())
    except ValueError:
        return None
    if not (-90 <= la <= 90 and -180 <= lo <= 180) or (la == 0 and lo == 0):
        return None  # NaN fails the range test too
    return la, lo


def _clean(value: object) -> str:
    """A field's text, its spaces made single. Only text and numbers are fields: a list or an
    object (GeoJSON properties may hold anything) is refused as `bad field`."""
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise BadField
    return " ".join(str(value).split())


class BadField(ValueError):
    """A field whose value is neither text nor a number."""


def address_row(
    number: object,
    street: object,
    lat: object,
    lon: object,
    *,
    unit: object = "",
    city: object = "",
    postcode: object = "",
    key: object = "",
) -> AddressRow | str:
    """A row of OpenAddresses-style data as an address point, or why it is refused: `bad
    coordinates`, `no street`, `no number`, `too long`, `bad field` (not text nor a number)."""
    position = _position(lat, lon)
    if position is None:
        return "bad coordinates"
    try:
        fields = [_clean(v) for v in (number, street, unit, city, postcode, key)]
    except BadField:
        return "bad field"
    if any(len(f) > FIELD_MAX for f in fields):
        return "too long"
    number_, street_, unit_, city_, postcode_, key_ = fields
    skey = street_key(street_)
    if not skey:
        return "no street"
    if not number_:
        return "no number"
    identity = key_ or "|".join(
        (number_.upper(), skey, " ".join(words(unit_)), " ".join(words(city_)))
    )
    return AddressRow(
        number=number_,
        street=street_,
        street_key=skey,
        house=house_number(number_),
        unit=unit_ or None,
        city=city_ or None,
        postcode=postcode_ or None,
        lat=position[0],
        lon=position[1],
        source_key=identity,
    )


def street_line(
    name: object, coords: object, *, city: object = "", key: object = ""
) -> StreetLine | str:
    """A street's line from GeoJSON (`[[lon, lat], ...]`), or why it is refused: `no street`,
    `bad coordinates`, `line of fewer than 2 points`, `too long`, `bad field`."""
    try:
        named, town, identity = _clean(name), _clean(city), _clean(key)
    except BadField:
        return "bad field"
    if len(named) > FIELD_MAX or len(town) > FIELD_MAX:
        return "too long"
    skey = street_key(named)
    if not skey:
        return "no street"
    if not isinstance(coords, list):
        return "bad coordinates"
    points: list[tuple[float, float]] = []
    for point in coords:
        if not isinstance(point, list | tuple) or len(point) < 2:
            return "bad coordinates"
        position = _position(point[1], point[0])
        if position is None:
            return "bad coordinates"
        points.append((position[1], position[0]))
    if len(points) < 2:
        return "line of fewer than 2 points"
    identity = identity or f"{skey}|{points[0]}|{points[-1]}|{len(points)}"
    return StreetLine(named, skey, town or None, tuple(points), identity)
