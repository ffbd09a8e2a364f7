"""The map drawn in text: streets in braille dots, units, calls and hospitals as words on top.

Pure on purpose (the standard library and the rules only, no Textual, no Rich), so that what the
map shows is tested, and timed, without a terminal:

* `Viewport` projects latitude and longitude onto the terminal's cells around a centre, at a
  zoom given in metres per cell. A terminal cell is about twice as tall as it is wide, and a
  degree of longitude shrinks with the cosine of the latitude: both are taken into account, so a
  square block looks square.
* `Canvas` holds 2 × 4 dots per cell (Unicode braille, as mapscii and drawille draw) and draws
  street lines with Bresenham's algorithm, clipped to the view first, so a line that runs far
  past the edge costs no more than what is seen of it.
* `draw` lays the markers over the streets: the most urgent first, each where its words fit
  (at its place, else beside it, above or below, with a `•` at the place itself); one that finds
  no room is counted on its neighbour as `+n` and named in `Picture.crowded`, never dropped in
  silence. Street names go last, along their line, only where there is room.

Every status is said in text as well as colour: a unit is `M1·E` (its state's letter), a stale
position adds `?`, a pending call is `P1`, a call with units `(P1)`, a hospital `+MERCY·D`.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from dispatch_tui.rules import norms
from dispatch_tui.rules.addresses import AddressMatch
from dispatch_tui.rules.enums import CallStatus, HospitalStatus, UnitStatus
from dispatch_tui.rules.lifecycle import DISPATCHED, unit_label, unit_state
from dispatch_tui.rules.recommend import EARTH_KM, haversine_km
from dispatch_tui.rules.views import Box, CallView, HospitalView, StreetView, UnitView

METRES_PER_DEGREE = EARTH_KM * 1000.0 * math.pi / 180.0
# A terminal cell is about twice as tall as it is wide; a braille cell is 2 dots wide, 4 tall,
# so every dot is square.
CELL_ASPECT = 2.0
DOTS_ACROSS, DOTS_DOWN = 2, 4
# How near and how far a map zooms, in metres per cell across.
MIN_METRES = 2.0
MAX_METRES = 50_000.0
# The cells a fit leaves after the easternmost place for its words (`M12·E?`, `+MERCY·O`).
WORDS_ROOM = 8

# Unicode braille: bit of each dot, by (x, y) within its cell.
_DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_BRAILLE = [" ", *(chr(0x2800 + bits) for bits in range(1, 256))]

# A unit's state as one letter on the map (the legend says them all).
UNIT_LETTERS = {
    UnitStatus.AVAILABLE: "A",
    DISPATCHED: "D",
    UnitStatus.EN_ROUTE: "E",
    UnitStatus.ON_SCENE: "O",
    UnitStatus.TRANSPORTING: "T",
    UnitStatus.AT_HOSPITAL: "H",
    UnitStatus.OUT_OF_SERVICE: "S",
}
HOSPITAL_LETTERS = {
    HospitalStatus.OPEN: "O",
    HospitalStatus.DIVERSION: "D",
    HospitalStatus.CLOSED: "C",
}
STALE_MARK = "?"
HAZARD_MARK = "!"  # a hazard note in force at the call's address
UNVERIFIED_MARK = "~"  # the call's place was not found as typed: where it is drawn is a guess
PIN = "•"


# The legend's words for each state: the desk's own, cut to fit a line.
_LEGEND_WORDS = {
    UnitStatus.AVAILABLE: "avail",
    DISPATCHED: "disp",
    UnitStatus.TRANSPORTING: "transp",
    UnitStatus.AT_HOSPITAL: "at hosp",
    UnitStatus.OUT_OF_SERVICE: "out of svc",
}
_HOSPITAL_WORDS = {HospitalStatus.DIVERSION: "divert"}


def legend() -> str:
    """The map's legend, in the letters and marks the markers use, in two lines of a 100-column
    terminal (the `•` left where a label had to move away from its place goes without saying)."""
    units = " ".join(
        f"{letter} {_LEGEND_WORDS.get(state, unit_label(state, True))}"
        for state, letter in UNIT_LETTERS.items()
    )
    hospitals = " ".join(
        f"{letter} {_HOSPITAL_WORDS.get(status, status.lower())}"
        for status, letter in HOSPITAL_LETTERS.items()
    )
    return (
        f"M1·E: {units} · {STALE_MARK} stale · P1 pending, (P1) with units, "
        f"{HAZARD_MARK} hazard, {UNVERIFIED_MARK} unverified · +CODE·O: {hospitals} · "
        "[ ] selected"
    )


# -- where things are ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Viewport:
    """What the map shows: `cols` × `rows` cells around (`lat`, `lon`), `metres` per cell
    across (a cell is CELL_ASPECT times that tall)."""

    lat: float
    lon: float
    metres: float
    cols: int
    rows: int

    @property
    def dot_metres(self) -> float:
        """The side of one braille dot, in metres (dots are square)."""
        return self.metres / DOTS_ACROSS

    @property
    def _lon_metres(self) -> float:
        """Metres per degree of longitude at the centre's latitude."""
        return METRES_PER_DEGREE * max(math.cos(math.radians(self.lat)), 1e-6)

    def dot(self, lat: float, lon: float) -> tuple[float, float]:
        """Where (`lat`, `lon`) falls, in dots from the view's top-left corner."""
        size = self.dot_metres
        x = (lon - self.lon) * self._lon_metres / size + self.cols * DOTS_ACROSS / 2
        y = (self.lat - lat) * METRES_PER_DEGREE / size + self.rows * DOTS_DOWN / 2
        return x, y

    def cell(self, lat: float, lon: float) -> tuple[int, int]:
        """The cell (column, row) that (`lat`, `lon`) falls in; outside the view it may be
        negative or past the edge."""
        x, y = self.dot(lat, lon)
        return math.floor(x / DOTS_ACROSS), math.floor(y / DOTS_DOWN)

    def inside(self, col: int, row: int) -> bool:
        return 0 <= col < self.cols and 0 <= row < self.rows

    def position(self, col: float, row: float) -> tuple[float, float]:
        """The (lat, lon) at a point given in cells from the top-left corner."""
        east = (col - self.cols / 2) * self.metres
        south = (row - self.rows / 2) * self.metres * CELL_ASPECT
        return self.lat - south / METRES_PER_DEGREE, self.lon + east / self._lon_metres

    def box(self) -> Box:
        """The stretch of the earth in view (clamped to the earth's edges)."""
        north, west = self.position(0, 0)
        south, east = self.position(self.cols, self.rows)
        return Box(max(south, -90.0), min(north, 90.0), max(west, -180.0), min(east, 180.0))

    def centred(self, lat: float, lon: float) -> Viewport:
        return Viewport(lat, lon, self.metres, self.cols, self.rows)

    def panned(self, cols: float, rows: float) -> Viewport:
        """The view moved `cols` cells east and `rows` cells south (negative: west, north)."""
        lat, lon = self.position(self.cols / 2 + cols, self.rows / 2 + rows)
        return self.centred(max(-85.0, min(85.0, lat)), max(-180.0, min(180.0, lon)))

    def zoomed(self, factor: float) -> Viewport:
        """The view `factor` times nearer (2: twice the detail), within MIN/MAX_METRES."""
        metres = max(MIN_METRES, min(MAX_METRES, self.metres / factor))
        return Viewport(self.lat, self.lon, metres, self.cols, self.rows)

    def sized(self, cols: int, rows: int) -> Viewport:
        return Viewport(self.lat, self.lon, self.metres, max(1, cols), max(1, rows))

    @classmethod
    def fit(
        cls, points: Iterable[tuple[float, float]], cols: int, rows: int, margin: int = 2
    ) -> Viewport | None:
        """The nearest view of `cols` × `rows` cells that shows every (lat, lon) point with
        `margin` cells spare on each side, and room for words to the right of the
        easternmost; None without points."""
        found = list(points)
        if not found:
            return None
        south, north = min(p[0] for p in found), max(p[0] for p in found)
        west, east = min(p[1] for p in found), max(p[1] for p in found)
        lat = (south + north) / 2
        lon_metres = METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-6)
        wide = (east - west) * lon_metres
        tall = (north - south) * METRES_PER_DEGREE
        across = max(1, cols - 2 * margin - WORDS_ROOM)
        down = max(1, rows - 2 * margin)
        # A little slack, so a point on the edge never rounds to the cell outside it.
        metres = max(wide / across, tall / (down * CELL_ASPECT), MIN_METRES * 4) * 1.02
        metres = min(metres, MAX_METRES)
        # The points and the words after the easternmost, centred together.
        lon = west + (wide + WORDS_ROOM * metres) / 2 / lon_metres
        return cls(lat, lon, metres, max(1, cols), max(1, rows))

    def scale_words(self) -> str:
        """`1 cell ≈ 40 m · 6.4 km across`."""
        return (
            f"1 cell ≈ {distance_words(self.metres)} · "
            f"{distance_words(self.metres * self.cols)} across"
        )


def distance_words(metres: float) -> str:
    """`30 m`, `1.2 km`, `14 km`."""
    if metres < 1000:
        return f"{metres:.0f} m"
    return f"{metres / 1000:.1f} km" if metres < 10_000 else f"{metres / 1000:.0f} km"


# -- the dots --------------------------------------------------------------------------------------


class Canvas:
    """Braille dots over `cols` × `rows` cells: 2 dots across and 4 down in each."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.width, self.height = cols * DOTS_ACROSS, rows * DOTS_DOWN
        self.bits = bytearray(cols * rows)

    def set(self, x: int, y: int) -> None:
        """Set the dot at (x, y); a dot outside the canvas is ignored."""
        if 0 <= x < self.width and 0 <= y < self.height:
            self.bits[(y >> 2) * self.cols + (x >> 1)] |= _DOT_BITS[x & 1][y & 3]

    def line(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """A straight line of dots between two points given in dots (Bresenham), only the
        part inside the canvas."""
        clipped = clip(x0, y0, x1, y1, self.width - 1, self.height - 1)
        if clipped is None:
            return
        ax, ay, bx, by = (round(v) for v in clipped)
        bits, cols = self.bits, self.cols
        # A street grid's lines run across or down: those take a simpler loop.
        if ay == by:
            start, bit = (ay >> 2) * cols, (_DOT_BITS[0][ay & 3], _DOT_BITS[1][ay & 3])
            for x in range(min(ax, bx), max(ax, bx) + 1):
                bits[start + (x >> 1)] |= bit[x & 1]
            return
        if ax == bx:
            column, bit_of = ax >> 1, _DOT_BITS[ax & 1]
            for y in range(min(ay, by), max(ay, by) + 1):
                bits[(y >> 2) * cols + column] |= bit_of[y & 3]
            return
        dx, dy = abs(bx - ax), -abs(by - ay)
        sx = 1 if ax < bx else -1
        sy = 1 if ay < by else -1
        err = dx + dy
        while True:
            bits[(ay >> 2) * cols + (ax >> 1)] |= _DOT_BITS[ax & 1][ay & 3]
            if ax == bx and ay == by:
                return
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                ax += sx
            if e2 <= dx:
                err += dx
                ay += sy

    def clear(self, col: int, row: int, width: int) -> bool:
        """Whether `width` cells from (col, row) are inside the canvas and hold no dots."""
        if not (0 <= row < self.rows and col >= 0 and col + width <= self.cols):
            return False
        start = row * self.cols + col
        return not any(self.bits[start : start + width])

    def row_text(self, row: int) -> str:
        """One row of cells as braille characters (a cell without dots is a space)."""
        start = row * self.cols
        return "".join(map(_BRAILLE.__getitem__, self.bits[start : start + self.cols]))


def clip(
    x0: float, y0: float, x1: float, y1: float, right: float, bottom: float
) -> tuple[float, float, float, float] | None:
    """The part of a segment inside [0, right] × [0, bottom] (Liang–Barsky), or None."""
    dx, dy = x1 - x0, y1 - y0
    lo, hi = 0.0, 1.0
    for p, q in ((-dx, x0), (dx, right - x0), (-dy, y0), (dy, bottom - y0)):
        if p == 0:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            if t > hi:
                return None
            lo = max(lo, t)
        else:
            if t < lo:
                return None
            hi = min(hi, t)
    return x0 + lo * dx, y0 + lo * dy, x0 + hi * dx, y0 + hi * dy


# -- what is on the map --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Marker:
    """One thing on the map: where it is, its words, their style, and how urgent it is (lower
    `rank` is placed first, so it is the one that keeps its place when the map is crowded)."""

    key: str  # `unit:M1`, `call:C-1042`, `hospital:MERCY`
    lat: float
    lon: float
    label: str
    style: str
    rank: int
    # For a selected marker: its longer words (a call's number after its priority).
    long_label: str = ""


def unit_key(code: str) -> str:
    return f"unit:{code}"


def call_key(number: str) -> str:
    return f"call:{number}"


def hospital_key(code: str) -> str:
    return f"hospital:{code}"


@dataclass(frozen=True, slots=True)
class Stale:
    """A unit whose place on the map cannot be trusted, and why in words."""

    code: str
    words: str  # `position 23 min old`, or `no position: shown at its station`


def unit_marker(
    unit: UnitView, now: datetime | None, styles: dict[str, str], stale_seconds: int
) -> tuple[Marker | None, Stale | None]:
    """A unit on the map (None: it has no position, not even a station) and, if its position
    is stale or missing, what the map lists of it."""
    state = unit_state(unit.status, unit.en_route_reported)
    stale: Stale | None = None
    if unit.lat is not None and unit.lon is not None:
        lat, lon = unit.lat, unit.lon
        if norms.position_stale(unit.position_at, now, stale_seconds):
            age = norms.position_age(unit.position_at, now) or 0.0
            stale = Stale(unit.code, norms.position_age_words(age))
    elif unit.station_position is not None:
        lat, lon = unit.station_position
        stale = Stale(unit.code, "no position: shown at its station")
    else:
        return None, Stale(unit.code, "no position")
    label = f"{unit.code}·{UNIT_LETTERS.get(state, '?')}"
    style = styles.get(state, "")
    if stale is not None:
        label += STALE_MARK
        style = f"{style} dim italic".strip()
    busy = UnitStatus(unit.status) not in (UnitStatus.AVAILABLE, UnitStatus.OUT_OF_SERVICE)
    rank = 20 if busy else 60 if unit.status == UnitStatus.OUT_OF_SERVICE else 30
    return Marker(unit_key(unit.code), lat, lon, label, f"bold {style}".strip(), rank), stale


def call_marker(call: CallView, styles: dict[str, str]) -> Marker | None:
    """An open call on the map (None: it has no position, its address was not found)."""
    if call.lat is None or call.lon is None or not CallStatus(call.status).is_open:
        return None
    if call.status == CallStatus.RECEIVED:
        colour = styles.get(CallStatus.RECEIVED, "red") if call.priority == 1 else "yellow"
        label, style, rank = f"P{call.priority}", f"bold reverse {colour}", 10 + call.priority
    else:
        label = f"(P{call.priority})"
        style, rank = f"bold {styles.get(call.status, '')}".strip(), 40 + call.priority
    label += ("" if call.location_verified else UNVERIFIED_MARK) + (
        HAZARD_MARK if call.hazard else ""
    )
    return Marker(
        call_key(call.number),
        call.lat,
        call.lon,
        label,
        style,
        rank,
        long_label=f"{label} {call.number}",
    )


def hospital_marker(hospital: HospitalView, styles: dict[str, str]) -> Marker:
    letter = HOSPITAL_LETTERS.get(HospitalStatus(hospital.status), "?")
    style = f"bold {styles.get(hospital.status, '')}".strip()
    return Marker(
        hospital_key(hospital.code),
        hospital.lat,
        hospital.lon,
        f"+{hospital.code}·{letter}",
        style,
        50,
    )


@dataclass(frozen=True, slots=True)
class Scene:
    """Everything the map shows, ready to lay out: the markers, and the units whose position
    is stale or missing (listed beside the map as well as marked on it)."""

    markers: tuple[Marker, ...]
    stale: tuple[Stale, ...]
    unplaced_calls: tuple[str, ...]  # open calls without a position (address not found)


def scene(
    units: Iterable[UnitView],
    calls: Iterable[CallView],
    hospitals: Iterable[HospitalView],
    now: datetime | None,
    styles: dict[str, str],
    stale_seconds: int = norms.STALE_POSITION_SECONDS,
) -> Scene:
    markers: list[Marker] = []
    stale: list[Stale] = []
    unplaced: list[str] = []
    for unit in sorted(units, key=lambda u: u.code):
        marker, old = unit_marker(unit, now, styles, stale_seconds)
        if marker is not None:
            markers.append(marker)
        if old is not None:
            stale.append(old)
    for call in sorted(calls, key=lambda c: (c.priority, c.received_at, c.number)):
        found = call_marker(call, styles)
        if found is not None:
            markers.append(found)
        elif CallStatus(call.status).is_open:
            unplaced.append(call.number)
    markers.extend(hospital_marker(h, styles) for h in sorted(hospitals, key=lambda h: h.code))
    return Scene(tuple(markers), tuple(stale), tuple(unplaced))


# -- the line under the map: what the selected marker is, and where ---------------------------------

# A call verified at a position this near its nearest address is at that address: its location
# as typed says it all.
AT_ADDRESS_METRES = 5.0

Row = UnitView | CallView | HospitalView
# What the map knows of the address nearest a position: the address, or (a str) in words why it
# has none to name yet (`finding the nearest address…`, `no address near`, a failed read).
Near = AddressMatch | str


def address_position(row: Row) -> tuple[float, float] | None:
    """The position whose nearest address the line names (None: none to look up): a unit's
    reported one only, not the station it is drawn at without one."""
    if row.lat is None or row.lon is None:
        return None
    return (row.lat, row.lon)


def about(
    row: Row, near: Near | None, now: datetime | None, stale_seconds: int
) -> list[tuple[str, str]]:
    """The selected marker's line, as (words, style) parts said one after another:
    `M3 EN ROUTE · near 456 W Maple St, Riverton (30 m) · position 2 min old`, a call's
    number, priority and nature and its location as typed (and the nearest address when its
    place is UNVERIFIED or not at an address), a hospital's code, name and status. `near` is
    what is known of the nearest address to `address_position(row)` (None: nothing asked)."""
    if isinstance(row, UnitView):
        state = unit_label(row.status, row.en_route_reported).upper()
        parts = [(f"{row.code} {state}", "bold")]
        if address_position(row) is None:
            where = "shown at its station" if row.station_position is not None else "not shown"
            return [*parts, (f"no position: {where}", "bold")]
        parts += _near(row, near)
        age = norms.position_age(row.position_at, now)
        if age is not None:
            stale = norms.age_stale(age, stale_seconds)
            parts.append((norms.position_age_words(age), "bold yellow" if stale else ""))
        return parts
    if isinstance(row, CallView):
        parts = [(f"{row.number} P{row.priority} {row.nature}", "bold"), (row.location_text, "")]
        if not row.location_verified:
            parts.append(("UNVERIFIED", "bold reverse yellow"))
        if address_position(row) is None:
            return [*parts, ("no position: its address was not found", "bold")]
        at_address = isinstance(near, AddressMatch) and _metres(row, near) <= AT_ADDRESS_METRES
        # A verified call's nearest address is news only when it is not where the call is.
        if not row.location_verified or (isinstance(near, AddressMatch) and not at_address):
            parts += _near(row, near)
        return parts
    words = f"{row.code} {row.name} {row.status.replace('_', ' ')}"
    return [(words, "bold"), *_near(row, near)]


def _near(row: Row, near: Near | None) -> list[tuple[str, str]]:
    if near is None:
        return []
    if isinstance(near, str):
        return [(near, "dim")]
    return [(f"near {near.label} ({distance_words(_metres(row, near))})", "")]


def _metres(row: Row, near: AddressMatch) -> float:
    position = address_position(row)
    return haversine_km(position, (near.lat, near.lon)) * 1000 if position else 0.0


# -- laying it out ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Label:
    col: int
    row: int
    text: str
    style: str


@dataclass(slots=True)
class Picture:
    """A drawn map: each row as (text, style) spans, and what could not be shown where it is."""

    rows: list[list[tuple[str, str]]]
    # A marker's key -> the cell its words start at.
    placed: dict[str, tuple[int, int]] = field(default_factory=dict)
    # A placed marker's key -> the markers that had no room near it (`+n`), in full words.
    crowded: dict[str, list[str]] = field(default_factory=dict)
    # Markers whose place is outside the view.
    outside: list[Marker] = field(default_factory=list)
    # Markers with no room even beside another (a map narrower than their words).
    unshown: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)  # the street names written
    # The streets filled more of the view than `draw`'s `most_filled`: left out, as a texture
    # of dots would hide the markers.
    streets_dense: bool = False
    # The streets as drawn: `draw` takes them back for the same view (a unit moved).
    layer: StreetLayer | None = None

    def text(self) -> str:
        """The picture as plain text, one line per row (for tests and benchmarks)."""
        return "\n".join("".join(t for t, _ in row) for row in self.rows)


class _Room:
    """Which cells words already hold; words keep one blank cell between them on a row."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.taken = bytearray(cols * rows)

    def fits(self, col: int, row: int, width: int, *, gap: int = 1) -> bool:
        if not (0 <= row < self.rows and col >= 0 and col + width <= self.cols):
            return False
        start = row * self.cols
        lo, hi = max(0, col - gap), min(self.cols, col + width + gap)
        return not any(self.taken[start + lo : start + hi])

    def take(self, col: int, row: int, width: int) -> None:
        start = row * self.cols + col
        self.taken[start : start + width] = b"\x01" * width


def _spots(col: int, row: int, width: int) -> list[tuple[int, int]]:
    """Where words `width` cells long may start for a place at (col, row), best first: on it,
    ending on it, then the rows above and below, then two rows away."""
    left = col - width + 1
    spots = [(col, row), (left, row)]
    for d in (1, 2):
        spots += [(col, row - d), (col, row + d), (left, row - d), (left, row + d)]
    spots += [(col + 2, row), (left - 2, row)]
    return spots


# Street lines whose reach in view adds up to this many times the map's cells cannot all be
# drawn apart: they are left out without drawing them (a city's blocks, far out).
_SURELY_DENSE = 2.5


@dataclass(frozen=True, slots=True)
class StreetLayer:
    """The streets of one view, drawn once: their dots, and the straight stretches their names
    may be written along (longest first). A unit that moves leaves the view as it was, and the
    streets are not drawn again (`draw`'s `layer`)."""

    view: Viewport
    bits: bytes
    stretches: tuple[tuple[float, str, bool, int, float, float], ...]
    dense: bool  # left out: they would dot more than `most_filled` of the cells


def street_layer(
    view: Viewport, streets: Iterable[StreetView], *, most_filled: float = 1.0
) -> StreetLayer:
    """Draw the street lines that cross the view. Lines that would put dots in more than
    `most_filled` of the cells are left out (so far out, a real city's streets are a grey
    texture that hides the markers); when their length alone says so, without drawing them."""
    canvas = Canvas(view.cols, view.rows)
    box = view.box()
    near = [street for street in streets if box.overlaps(street.box)]
    # Each line's reach in cells, from its bounding box, at most the view's own.
    lon_metres = view._lon_metres
    most = view.cols + view.rows * CELL_ASPECT
    reach = sum(
        min(
            max(
                (s.box.max_lon - s.box.min_lon) * lon_metres,
                (s.box.max_lat - s.box.min_lat) * METRES_PER_DEGREE,
            )
            / view.metres,
            most,
        )
        for s in near
    )
    cells = view.cols * view.rows
    if reach > _SURELY_DENSE * cells * most_filled:
        return StreetLayer(view, bytes(cells), (), dense=True)
    # The projection of `Viewport.dot`, its constants taken once for every point.
    size = view.dot_metres
    sx, sy = lon_metres / size, METRES_PER_DEGREE / size
    ox, oy = view.cols * DOTS_ACROSS / 2, view.rows * DOTS_DOWN / 2
    lon0, lat0 = view.lon, view.lat
    lines: list[tuple[str, list[tuple[float, float]]]] = []
    for street in near:
        points = [((lon - lon0) * sx + ox, (lat0 - lat) * sy + oy) for lon, lat in street.coords]
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            canvas.line(x0, y0, x1, y1)
        lines.append((street.name, points))
    if cells - canvas.bits.count(0) > most_filled * cells:
        return StreetLayer(view, bytes(cells), (), dense=True)
    return StreetLayer(view, bytes(canvas.bits), tuple(_stretches(lines)), dense=False)


def draw(
    view: Viewport,
    streets: Iterable[StreetView],
    markers: Sequence[Marker],
    *,
    selected: str | None = None,
    street_style: str = "",
    name_style: str = "",
    names: bool = True,
    most_filled: float = 1.0,
    layer: StreetLayer | None = None,
) -> Picture:
    """Draw the streets that cross the view (`street_layer`; or take `layer`, drawn before for
    the same view and streets), then the markers, then the street names where there is
    room."""
    if layer is None or layer.view != view:
        layer = street_layer(view, streets, most_filled=most_filled)
    canvas = Canvas(view.cols, view.rows)
    canvas.bits[:] = layer.bits
    picture = Picture(rows=[], layer=layer, streets_dense=layer.dense)
    room = _Room(view.cols, view.rows)
    labels: list[Label] = []
    _place_markers(view, markers, selected, room, labels, picture)
    if names:
        _place_names(layer.stretches, canvas, room, labels, picture, name_style)
    picture.rows = _compose(canvas, labels, street_style)
    return picture


def _place_markers(
    view: Viewport,
    markers: Sequence[Marker],
    selected: str | None,
    room: _Room,
    labels: list[Label],
    picture: Picture,
) -> None:
    """Each marker in view where its words fit, the most urgent (and the selected) first; one
    with no room is counted on the placed marker nearest to it."""
    order = sorted(markers, key=lambda m: (m.key != selected, m.rank, m.key))
    anchors = _Anchors()
    label_of: dict[str, Label] = {}
    pins: list[tuple[int, int, str]] = []
    for marker in order:
        col, row = view.cell(marker.lat, marker.lon)
        if not view.inside(col, row):
            picture.outside.append(marker)
            continue
        text, style = marker.label, marker.style
        if marker.key == selected:
            text, style = f"[{marker.long_label or marker.label}]", f"{style} underline".strip()
        width = len(text)
        spot = next((s for s in _spots(col, row, width) if room.fits(*s, width)), None)
        if spot is None:
            host = anchors.nearest(col, row)
            if host is not None:
                # Named in full under the map (a call by its number too): `P2 C-1063`.
                picture.crowded.setdefault(host, []).append(marker.long_label or marker.label)
            else:
                picture.unshown.append(marker.label)  # a map too small for its words
            continue
        room.take(spot[0], spot[1], width)
        label = Label(spot[0], spot[1], text, style)
        labels.append(label)
        anchors.add(marker.key, col, row)
        label_of[marker.key] = label
        picture.placed[marker.key] = spot
        if spot[1] != row or not spot[0] <= col < spot[0] + width:
            pins.append((col, row, style))
    for key, hidden in picture.crowded.items():
        _place_count(label_of[key], len(hidden), room, labels)
    for col, row, style in pins:
        if room.fits(col, row, 1, gap=0):
            room.take(col, row, 1)
            labels.append(Label(col, row, PIN, style))


class _Anchors:
    """The places of the markers drawn so far, by cell, to find the one nearest a place."""

    def __init__(self) -> None:
        self.at: dict[tuple[int, int], str] = {}  # the first drawn (most urgent) in each cell
        self.order: list[tuple[str, int, int]] = []
        self.rank: dict[str, int] = {}  # the order they were drawn in: most urgent first

    def add(self, key: str, col: int, row: int) -> None:
        self.at.setdefault((col, row), key)
        self.rank[key] = len(self.order)
        self.order.append((key, col, row))

    def nearest(self, col: int, row: int, near: int = 12) -> str | None:
        """The drawn marker whose place is nearest to (col, row), a row counting as two
        columns (it is twice as far), the more urgent of two as near. A crowd is in one place:
        the cells round it are looked at first, ring by ring, before every marker is."""
        for reach in range(near + 1):
            found = [
                self.at[(col + dc, row + dr)]
                for dr in range(-(reach // 2), reach // 2 + 1)
                for dc in range(-reach, reach + 1)
                if max(abs(dc), 2 * abs(dr)) == reach and (col + dc, row + dr) in self.at
            ]
            if found:
                return min(found, key=self.rank.__getitem__)
        if not self.order:
            return None
        return min(self.order, key=lambda a: max(abs(a[1] - col), 2 * abs(a[2] - row)))[0]


def _place_count(label: Label, hidden: int, room: _Room, labels: list[Label]) -> None:
    """`+n` right after a marker's words, else before them, else on the rows beside them."""
    text = f"+{hidden}"
    width = len(text)
    end = label.col + len(label.text)
    for col, row in (
        (end, label.row),
        (label.col - width, label.row),
        (label.col, label.row + 1),
        (label.col, label.row - 1),
    ):
        if room.fits(col, row, width, gap=0):
            room.take(col, row, width)
            labels.append(Label(col, row, text, "bold reverse"))
            return


def _stretches(
    lines: list[tuple[str, list[tuple[float, float]]]],
) -> list[tuple[float, str, bool, int, float, float]]:
    """Where each street's name may go, longest first: (length in cells, name, whether it
    runs across, its row or column, where it starts and ends along it). A street drawn block
    by block is one stretch where its blocks meet."""
    across: dict[tuple[str, int], list[tuple[float, float]]] = {}
    down: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for raw, points in lines:
        name = _printable(raw)
        if not name:
            continue
        for (x0, y0), (x1, y1) in itertools.pairwise(points):
            # The cell a line's dots fall in, rounded as Canvas.line rounds them.
            if abs(y1 - y0) <= 1.5 and abs(x1 - x0) >= DOTS_ACROSS:
                row = round((y0 + y1) / 2) // DOTS_DOWN
                across.setdefault((name, row), []).append(
                    (min(x0, x1) / DOTS_ACROSS, max(x0, x1) / DOTS_ACROSS)
                )
            elif abs(x1 - x0) <= 1.5 and abs(y1 - y0) >= DOTS_DOWN:
                col = round((x0 + x1) / 2) // DOTS_ACROSS
                down.setdefault((name, col), []).append(
                    (min(y0, y1) / DOTS_DOWN, max(y0, y1) / DOTS_DOWN)
                )
    stretches: list[tuple[float, str, bool, int, float, float]] = []
    for (name, row), spans in across.items():
        stretches += [(hi - lo, name, True, row, lo, hi) for lo, hi in _merged(spans)]
    for (name, col), spans in down.items():
        stretches += [(hi - lo, name, False, col, lo, hi) for lo, hi in _merged(spans)]
    stretches.sort(key=lambda s: (-s[0], s[1]))
    return stretches


def _place_names(
    stretches: Iterable[tuple[float, str, bool, int, float, float]],
    canvas: Canvas,
    room: _Room,
    labels: list[Label],
    picture: Picture,
    style: str,
) -> None:
    """Each street's name once, along its longest straight stretch in view that is long
    enough for it: on a street that runs across, written on the line itself; on one that runs
    up and down, beside it."""
    done: set[str] = set()
    for length, name, is_across, line, lo, hi in stretches:
        if name in done:
            continue
        width = len(name)
        if is_across:
            if length < width + 2:
                continue
            # Its middle, else a quarter of the way in from either end.
            spots = [
                (math.floor(lo + (hi - lo) * share - width / 2), line)
                for share in (0.5, 0.25, 0.75)
            ]
            spots = [(col, row) for col, row in spots if lo <= col and col + width <= hi]
        else:
            if length < 3:
                continue
            # Beside the line, on a row clear of other lines (a name on a street running across
            # would read as that street's), from its middle outwards.
            mid = math.floor((lo + hi) / 2)
            rows = [mid + d for d in (0, -1, 1, -2, 2) if lo <= mid + d < hi]
            spots = [
                (col, row)
                for row in rows
                for col in (line + 2, line - 1 - width)
                if canvas.clear(col, row, width)
            ]
        for col, row in spots:
            if room.fits(col, row, width):
                room.take(col, row, width)
                labels.append(Label(col, row, name, style))
                picture.names.append(name)
                done.add(name)
                break


@lru_cache(maxsize=4096)
def _printable(name: str) -> str:
    """A street's name as the map may write it: one cell per character, nothing that moves the
    terminal's cursor ("" when it cannot be written so)."""
    name = " ".join(name.split())
    if not name.isprintable() or any(
        unicodedata.east_asian_width(ch) in "WF" or unicodedata.combining(ch) for ch in name
    ):
        return ""
    return name


def _merged(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Spans that touch or overlap joined into one: a street drawn block by block is one
    stretch."""
    out: list[tuple[float, float]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


def _compose(canvas: Canvas, labels: list[Label], street_style: str) -> list[list[tuple[str, str]]]:
    """Each row as spans: the street dots, cut where words lie over them."""
    by_row: dict[int, list[Label]] = {}
    for label in labels:
        by_row.setdefault(label.row, []).append(label)
    rows: list[list[tuple[str, str]]] = []
    for row in range(canvas.rows):
        dots = canvas.row_text(row)
        spans: list[tuple[str, str]] = []
        at = 0
        for label in sorted(by_row.get(row, ()), key=lambda lb: lb.col):
            if label.col > at:
                spans.append((dots[at : label.col], street_style))
            spans.append((label.text, label.style))
            at = label.col + len(label.text)
        if at < canvas.cols:
            spans.append((dots[at:], street_style))
        rows.append(spans)
    return rows
