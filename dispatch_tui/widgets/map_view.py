"""The live map: units, calls and hospitals on the gazetteer's streets, with its keys.

The screen that shows it (the desk, the board) hands it the rows it already has, on every
snapshot it applies (`show`) and on every tick of its clock (`tick`: a position goes stale with
time alone). The map keeps its view (centre and zoom) and redraws with `map_canvas.draw`, which
is pure. It reads no database itself: when its view leaves the streets it has, it asks its screen
(`StreetsWanted`), whose worker reads the street lines of a box around the view, half a view
more on each side, and posts them back (`StreetsLoaded`); a pan or a zoom inside a box read
before reads nothing.

The line just under the map says what the selected marker is and where: a unit's state, the
address nearest its position and the position's age; a call's location as typed (and the address
nearest it when its place is unverified or not at an address). That address is a database read
too: the map asks its screen (`AddressWanted`, one read at a time) and keeps the answers
(`AddressFound`) by the position rounded to about ten metres, so a unit that stays put is looked
up once; until an answer comes the line says what it has, and the map is drawn meanwhile.

Every status is said in words as well as colour; the lines under the map list what the picture
cannot show in place: stale positions, crowded markers, what is outside the view, calls without
a position.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import lru_cache
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from dispatch_tui.rules import norms
from dispatch_tui.rules.addresses import AddressMatch
from dispatch_tui.rules.lifecycle import unit_label
from dispatch_tui.rules.views import Box, CallView, HospitalView, Listing, StreetView, UnitView
from dispatch_tui.widgets import map_canvas
from dispatch_tui.widgets.map_canvas import Near, Picture, Row, Scene, Viewport

# Past this zoom (metres per cell across: 64 km across 160 columns) the streets are not read at
# all, and the map says so. Nearer, they are drawn unless they would dot more than
# STREETS_MOST_FILLED of the map's cells (a real city's blocks, far out).
STREETS_UP_TO_METRES = 400.0
STREETS_MOST_FILLED = 0.7
# Street names are written only this near (metres per cell): further out they would crowd the
# units and calls, which matter more.
NAMES_UP_TO_METRES = 150.0
# A view's streets are read with this much of the view again on every side, so that a pan or
# two reads nothing.
STREETS_MARGIN = 0.5
# How many boxes of streets the map keeps (zooming back out finds the wider one).
STREET_BOXES = 4
# A pan moves the view by this share of its width or height.
PAN_SHARE = 0.25
# Centring on a marker brings the view at least this near (metres per cell: 6 km across 160
# columns), so the streets round a call and the units near it are both in view.
CENTRE_METRES = 40.0
# Nearest addresses are kept by the position rounded to this many decimals of a degree (about
# 11 m of latitude): a unit that stays put, or moves within that, is not looked up again.
ADDRESS_DECIMALS = 4
# How many positions' nearest addresses the map keeps (the oldest go first).
ADDRESSES_KEPT = 256
FINDING = "finding the nearest address…"
NO_ADDRESS = "no address near"

Spot = tuple[float, float]  # a position rounded to ADDRESS_DECIMALS

_KINDS = {
    "unit": ("unit", "units"),
    "call": ("call", "calls"),
    "hospital": ("hospital", "hospitals"),
}


@lru_cache(maxsize=256)
def _style(text: str) -> Style:
    return Style.parse(text) if text else Style()


class MapCanvas(Widget):
    """The drawn map itself: one line of the picture per row."""

    DEFAULT_CSS = """
    MapCanvas {
        height: 1fr;
        width: 1fr;
    }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.picture: Picture | None = None
        self.waiting = "waiting for the desk's data…"

    def on_resize(self) -> None:
        # The map's view follows the canvas's size, which is known only once it is laid out.
        parent = self.parent
        if isinstance(parent, MapView):
            parent.redraw()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        picture = self.picture
        if picture is None:
            text = self.waiting if y == 0 else ""
            return Strip([Segment(text, base)]).crop_extend(0, width, base)
        if y >= len(picture.rows):
            return Strip.blank(width, base)
        segments = [Segment(text, base + _style(style)) for text, style in picture.rows[y]]
        return Strip(segments).crop_extend(0, width, base)


class MapView(Widget, can_focus=True):
    """The map with its keys, and the lines that say what it cannot show in place."""

    DEFAULT_CSS = """
    MapView {
        height: 1fr;
        layout: vertical;
        border: round $panel-lighten-2;
        border-title-style: bold;
    }
    MapView:focus {
        border: round $accent;
    }
    MapView > .map-line {
        height: 1;
        width: 1fr;
    }
    MapView > #map-legend {
        height: auto;
    }
    MapView > #map-legend {
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("plus,equals_sign", "zoom(2)", "Zoom in", id="map-zoom-in", tooltip="+ or ="),
        Binding("minus", "zoom(0.5)", "Zoom out", id="map-zoom-out"),
        Binding("left,h", "pan(-1, 0)", "Pan", id="map-pan", tooltip="arrows or h j k l"),
        Binding("right,l", "pan(1, 0)", "Pan", show=False),
        Binding("up,k", "pan(0, -1)", "Pan", show=False),
        Binding("down,j", "pan(0, 1)", "Pan", show=False),
        Binding(
            "c",
            "centre",
            "Centre",
            id="map-centre",
            tooltip="on the call or unit selected in the panes; a unit is followed as it moves",
        ),
        Binding(
            "right_square_bracket",
            "next_call(1)",
            "Next call",
            id="map-next-call",
            tooltip="centre on the next open call, most urgent first ([ the one before)",
        ),
        Binding("left_square_bracket", "next_call(-1)", "Previous call", show=False),
        Binding("f", "fit", "Fit all", id="map-fit", tooltip="every unit, call and hospital"),
    ]

    class StreetsWanted(Message):
        """The map needs the street lines of `box`: its screen reads them in a worker."""

        def __init__(self, map_view: MapView, box: Box) -> None:
            super().__init__()
            self.map_view = map_view
            self.box = box

    class StreetsLoaded(Message):
        """The street lines of `box` (or why they could not be read), for the map."""

        def __init__(
            self, box: Box, streets: Listing[StreetView] | None, error: str | None = None
        ) -> None:
            super().__init__()
            self.box = box
            self.streets = streets
            self.error = error

    class AddressWanted(Message):
        """The map needs the address nearest (`lat`, `lon`): its screen reads it in a worker."""

        def __init__(self, map_view: MapView, spot: Spot, lat: float, lon: float) -> None:
            super().__init__()
            self.map_view = map_view
            self.spot = spot
            self.lat = lat
            self.lon = lon

    class AddressFound(Message):
        """The address nearest the position `spot` stands for (None: no address near), or
        why it could not be read, for the map."""

        def __init__(
            self, spot: Spot, address: AddressMatch | None, error: str | None = None
        ) -> None:
            super().__init__()
            self.spot = spot
            self.address = address
            self.error = error

    class Chosen(Message):
        """The map centred on a marker by its own keys (`unit:M1`, `call:C-1042`): a desk
        selects the same row in its panes."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(
        self,
        styles: dict[str, str],
        *,
        stale_seconds: int = norms.STALE_POSITION_SECONDS,
        selection: Callable[[], str | None] | None = None,
        **kwargs: object,
    ) -> None:
        """`selection()`: the marker key of the row selected on the screen (None: nothing
        selected); without it (a board) the map has no `c`."""
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.border_title = "Map"
        self.status_styles = styles
        self.stale_seconds = stale_seconds
        self.selection = selection
        self.view: Viewport | None = None
        # Whether the view fits everything (at first, and after `f`), and keeps doing so as
        # units move and the map's size changes; any zoom, pan or centring ends it.
        self.fitting = True
        # The unit the view stays centred on as it moves (after `c` on a unit); a pan, `f` or
        # centring on something else ends it, a zoom keeps it.
        self.following: str | None = None
        self._selected: str | None = None
        self.said = ""  # what the last key did, said on the first line
        self.picture: Picture | None = None
        self._rows: tuple[list[UnitView], list[CallView], list[HospitalView]] = ([], [], [])
        self._now: datetime | None = None
        self._scene: Scene | None = None
        self._stale_codes: tuple[str, ...] = ()
        # Street lines read, by the box they were read for (newest last), and the box asked for.
        self._streets: OrderedDict[Box, Listing[StreetView]] = OrderedDict()
        self._asked: Box | None = None
        # The box whose streets could not be read, and why: asked again once the view leaves it.
        self._failed: Box | None = None
        self._street_error: str | None = None
        self._drawn_streets: tuple[StreetView, ...] = ()
        self._said: dict[str, object] = {}  # what each line round the map says now
        # Nearest addresses read, by the rounded position they were read for (newest last); the
        # one being read; the one that could not be, and why (asked again once it is left).
        self._addresses: OrderedDict[Spot, AddressMatch | None] = OrderedDict()
        self._asking: Spot | None = None
        self._address_failed: tuple[Spot, str] | None = None
        # The selected marker's last nearest address: said until its new position's arrives.
        self._last_near: tuple[str, AddressMatch] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="map-head", classes="map-line")
        yield MapCanvas(id="map-canvas")
        # One line each, never wrapped: their height never changes the map's, whatever they say.
        yield Static(id="map-info", classes="map-line")
        yield Static(id="map-stale", classes="map-line")
        yield Static(id="map-notes", classes="map-line")
        yield Static(Text(map_canvas.legend()), id="map-legend", classes="map-line")

    @property
    def canvas(self) -> MapCanvas:
        return self.query_one(MapCanvas)

    @property
    def selected(self) -> str | None:
        """The marker key (`unit:M1`) marked on the map and described under it."""
        return self._selected

    @selected.setter
    def selected(self, key: str | None) -> None:
        # A screen that follows its own selection sets it: the mark and the line move with it.
        if key != self._selected:
            self._selected = key
            self._address_failed = None  # a failed read is tried again for a new choice
            self.redraw()

    # -- what the screen hands over -----------------------------------------------------------

    def show(
        self,
        units: Iterable[UnitView],
        calls: Iterable[CallView],
        hospitals: Iterable[HospitalView],
        now: datetime | None,
    ) -> None:
        """The rows the screen shows now: drawn at once."""
        self._rows = (list(units), list(calls), list(hospitals))
        self._now = now
        self._scene = None
        self.redraw()

    def tick(self, now: datetime) -> None:
        """The clock moved on: redrawn only when a unit's position went stale (or came back)."""
        self._now = now
        if self._stale() != self._stale_codes:
            self._scene = None
            self.redraw()
        else:
            self._info()  # the selected unit's position ages

    # -- keys ---------------------------------------------------------------------------------

    def allow_focus(self) -> bool:
        # A screen that keeps the map hidden (the board, at first) must not give it the focus.
        return self.display

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.display:
            return False  # hidden, its keys do nothing (and the footer does not offer them)
        if action == "centre":
            return self.selection is not None
        return True

    def action_zoom(self, factor: float) -> None:
        if self.view is not None:
            self._move(self.view.zoomed(float(factor)))

    def action_pan(self, across: int, down: int) -> None:
        view = self.view
        if view is not None:
            self.following = None
            self._move(view.panned(across * view.cols * PAN_SHARE, down * view.rows * PAN_SHARE))

    def action_fit(self) -> None:
        self.following = None
        self.fitting = True
        self.say("fits every unit, call and hospital")
        self.redraw()

    def action_centre(self) -> None:
        key = self.selection() if self.selection is not None else None
        if key is None:
            self.say(
                "nothing selected: choose a call or a unit in the panes, or ] for the next call"
            )
            return
        self.centre_on(key)

    def action_next_call(self, step: int) -> None:
        calls = [m for m in self.scene().markers if m.key.startswith("call:")]
        if not calls:
            self.say("no open call with a position")
            return
        # Most urgent first; the sort is stable, so within a rank oldest first, as the scene.
        calls.sort(key=lambda m: m.rank)
        keys = [m.key for m in calls]
        at = keys.index(self.selected) if self.selected in keys else (-1 if step > 0 else 0)
        key = keys[(at + int(step)) % len(keys)]
        self.centre_on(key)
        self.post_message(self.Chosen(key))

    def centre_on(self, key: str) -> None:
        """Centre the view on the marker `key` and select it; say why not when it has no place."""
        kind, _, name = key.partition(":")
        marker = next((m for m in self.scene().markers if m.key == key), None)
        if marker is None:
            if kind == "call" and name in self.scene().unplaced_calls:
                self.say(f"{name} has no position: its address was not found")
            else:
                self.say(f"{name} is not on the map")
            return
        self._selected = key
        self._address_failed = None
        base = self.view or self._sized(Viewport(0, 0, CENTRE_METRES, 1, 1))
        nearer = base.zoomed(max(1.0, base.metres / CENTRE_METRES))
        # A unit is followed as it moves; a call or a hospital stays where it is.
        self.following = key if kind == "unit" else None
        self._move(nearer.centred(marker.lat, marker.lon))
        if not self.following:  # (a unit followed is said as it is drawn)
            self.say(f"centred on {self._describe(key)}")

    def say(self, words: str) -> None:
        self.said = words
        self._head()

    # -- drawing --------------------------------------------------------------------------------

    def scene(self) -> Scene:
        if self._scene is None:
            units, calls, hospitals = self._rows
            self._scene = map_canvas.scene(
                units, calls, hospitals, self._now, self.status_styles, self.stale_seconds
            )
            self._stale_codes = self._stale()
        return self._scene

    def _stale(self) -> tuple[str, ...]:
        """The units whose position is stale by the map's clock now."""
        return tuple(
            u.code
            for u in self._rows[0]
            if norms.position_stale(u.position_at, self._now, self.stale_seconds)
        )

    def redraw(self) -> None:
        """Draw the map again from what it holds (nothing while it is not shown)."""
        if not self.is_attached or not self.display:
            return
        canvas = self.canvas
        cols, rows = canvas.size.width, canvas.size.height
        if cols <= 0 or rows <= 0:
            return
        if self.fitting or self.view is None:
            fitted = self._fitted()
            if fitted is None:
                canvas.picture = None
                canvas.refresh()
                self._notes()
                self._info()
                return
            self.view = fitted
        elif (self.view.cols, self.view.rows) != (cols, rows):
            self.view = self.view.sized(cols, rows)
        if self.following is not None and not self.fitting:
            self._follow()
        view = self.view
        self._want_streets(view)
        streets = self.streets_for(view)
        # The streets as last drawn, when the view and its streets are the same (a unit moved).
        last = self.picture.layer if self.picture is not None else None
        same = last is not None and last.view == view and self._drawn_streets is streets
        self.picture = map_canvas.draw(
            view,
            streets,
            self.scene().markers,
            selected=self.selected,
            street_style="dim",
            name_style="italic",
            most_filled=STREETS_MOST_FILLED,
            names=view.metres <= NAMES_UP_TO_METRES,
            layer=last if same else None,
        )
        self._drawn_streets = streets
        canvas.picture = self.picture
        canvas.refresh()
        self._head()
        self._notes()
        self._info()

    def _follow(self) -> None:
        """Keep the followed unit in the middle of the view; say so when it has left the map
        (no position now, or no longer listed) and stop following it."""
        key = self.following
        assert key is not None and self.view is not None
        marker = next((m for m in self.scene().markers if m.key == key), None)
        if marker is None:
            self.following = None
            self.said = f"{key.partition(':')[2]} has no position now: no longer followed"
            return
        if (marker.lat, marker.lon) != (self.view.lat, self.view.lon):
            self.view = self.view.centred(marker.lat, marker.lon)
        # Said as the unit is now (its status changes as it goes), after a zoom too; what a key
        # said since (`]` found no call, …) is left to be read.
        if not self.said or self.said.startswith("following "):
            self.said = f"following {self._describe(key)} (a pan or f stops)"

    def _sized(self, view: Viewport) -> Viewport:
        canvas = self.canvas
        return view.sized(canvas.size.width, canvas.size.height)

    def _fitted(self) -> Viewport | None:
        canvas = self.canvas
        points = [(m.lat, m.lon) for m in self.scene().markers]
        return Viewport.fit(points, max(1, canvas.size.width), max(1, canvas.size.height))

    def _move(self, view: Viewport) -> None:
        self.view = view
        self.fitting = False
        self.said = ""  # what the last key did no longer holds
        self.redraw()

    def _describe(self, key: str) -> str:
        """`C-1042 P1 Cardiac arrest` for a call, `M1 en route` for a unit."""
        kind, _, name = key.partition(":")
        units, calls, _ = self._rows
        if kind == "call":
            call = next((c for c in calls if c.number == name), None)
            if call is not None:
                return f"{call.number} P{call.priority} {call.nature}"
        if kind == "unit":
            unit = next((u for u in units if u.code == name), None)
            if unit is not None:
                words = f"{unit.code} {unit_label(unit.status, unit.en_route_reported)}"
                age = norms.position_age(unit.position_at, self._now)
                if age is not None and norms.position_stale(
                    unit.position_at, self._now, self.stale_seconds
                ):
                    words += f", {norms.position_age_words(age)}"
                return words
        return name

    def _head(self) -> None:
        """The first line: the scale, what the streets are, and what the last key did."""
        if not self.is_attached:
            return
        view = self.view
        line = Text()
        if view is not None:
            line.append(view.scale_words(), style="bold")
            line.append(" · ")
            line.append(self._street_words(view))
        if self.said:
            line.append(" · ")
            line.append(self.said, style="bold")
        self._put("#map-head", line)

    def _notes(self) -> None:
        """Under the map, a line each: stale positions (loudly), then crowded markers, what
        is outside the view and calls without a position. What does not fit a line is counted
        at its end, never dropped without a word."""
        if not self.is_attached:
            return
        width = max(1, self.query_one("#map-notes", Static).size.width)
        scene = self.scene()
        if scene.stale:
            tag = Text(" STALE ", style="bold reverse yellow")
            tag.append(" ")
            stale = [Text(f"{s.code} {s.words}", style="bold") for s in scene.stale]
            line = _line(stale, width - tag.cell_len, " · ")
            self._put("#map-stale", tag + line)
        else:
            self._put("#map-stale", Text("positions: none stale", style="dim"))
        notes: list[Text] = []
        picture = self.picture
        if picture is not None:
            labels = {m.key: m.long_label or m.label for m in scene.markers}
            # The selected marker's crowd first, then the biggest.
            crowds = sorted(
                picture.crowded.items(), key=lambda c: (c[0] != self.selected, -len(c[1]))
            )
            for host, hidden in crowds:
                head = f"at {labels.get(host, host)} +{len(hidden)}: "
                notes.append(_listing(head, hidden, max(20, width * 2 // 3)))
            if picture.outside:
                counts = Counter(m.key.partition(":")[0] for m in picture.outside)
                outside = ", ".join(
                    f"{n} {_KINDS[k][n != 1]}" for k, n in sorted(counts.items()) if k in _KINDS
                )
                notes.append(Text(f"outside the view: {outside} (f: fit all)"))
            if picture.unshown:
                notes.append(Text(f"no room on the map: {' '.join(picture.unshown)}"))
        if scene.unplaced_calls:
            words = Text("no position (address not found): ")
            words.append(", ".join(scene.unplaced_calls), style="bold")
            notes.append(words)
        self._put("#map-notes", _line(notes, width, " · "))

    def _info(self) -> None:
        """The line under the map: the selected marker in words (`map_canvas.about`), with
        the address nearest it as far as it is known; asks for that address if it is not."""
        if not self.is_attached or not self.display:
            return
        key = self._selected
        row = self._row(key) if key is not None else None
        if key is None:
            words = "nothing selected: ] centres on the next call"
            if self.selection is not None:
                words += ", c on the call or unit selected in the panes"
            self._put("#map-info", Text(words, style="dim"))
            return
        if row is None:
            self._put("#map-info", Text(f"{key.partition(':')[2]} is not on the map"))
            return
        parts = map_canvas.about(row, self._near(key, row), self._now, self.stale_seconds)
        line = Text(no_wrap=True, overflow="ellipsis")
        for index, (words, style) in enumerate(parts):
            if index:
                line.append(" · ")
            line.append(words, style=style)  # a nature, a location: data, never markup
        self._put("#map-info", line)

    def _row(self, key: str) -> Row | None:
        """The row the marker `key` stands for, among those the screen handed over."""
        kind, _, name = key.partition(":")
        units, calls, hospitals = self._rows
        if kind == "unit":
            return next((u for u in units if u.code == name), None)
        if kind == "call":
            return next((c for c in calls if c.number == name), None)
        if kind == "hospital":
            return next((h for h in hospitals if h.code == name), None)
        return None

    def _near(self, key: str, row: Row) -> Near | None:
        """What is known of the address nearest the marker `key` (`row`): read before for its
        position (rounded), else asked for now; meanwhile the one said for it last, if any."""
        position = map_canvas.address_position(row)
        if position is None:
            return None
        spot = (round(position[0], ADDRESS_DECIMALS), round(position[1], ADDRESS_DECIMALS))
        if spot in self._addresses:
            found = self._addresses[spot]
            self._last_near = (key, found) if found is not None else None
            return found if found is not None else NO_ADDRESS
        if self._address_failed is not None and self._address_failed[0] == spot:
            return f"nearest address not read: {self._address_failed[1]}"
        if self._asking is None:
            self._asking = spot
            self.post_message(self.AddressWanted(self, spot, *position))
        last = self._last_near
        return last[1] if last is not None and last[0] == key else FINDING

    def on_map_view_address_found(self, event: MapView.AddressFound) -> None:
        event.stop()
        if event.spot == self._asking:
            self._asking = None
        if event.error is not None:
            self._address_failed = (event.spot, event.error)
        else:
            self._address_failed = None
            self._addresses[event.spot] = event.address
            self._addresses.move_to_end(event.spot)
            while len(self._addresses) > ADDRESSES_KEPT:
                self._addresses.popitem(last=False)
        self._info()  # the selected marker's, or (moved on meanwhile) asks for its new one

    def _put(self, line: str, text: Text) -> None:
        """Set one of the lines round the map, only when its words change: a unit that moves
        changes the picture, seldom these (and an update asks Textual for a new layout)."""
        # (Rich's own Text equality leaves the base style out.)
        key = (text.plain, tuple(text.spans), str(text.style))
        if self._said.get(line) != key:
            self._said[line] = key
            self.query_one(line, Static).update(text)

    # -- streets --------------------------------------------------------------------------------

    def _street_words(self, view: Viewport) -> str:
        if view.metres > STREETS_UP_TO_METRES:
            return "streets left out at this zoom (+ to zoom in)"
        if self._failed is not None and self._failed.contains(view.box()):
            return f"streets could not be read: {self._street_error}"
        held = self._held(view.box())
        if held is None:
            return "reading the streets…"
        _, listing = held
        if self.picture is not None and self.picture.streets_dense:
            return "streets too dense to draw at this zoom (+ to zoom in)"
        if listing.truncated:
            return (
                f"streets: {len(listing.rows):,} of {listing.total:,} lines drawn, "
                "zoom in for the rest"
            )
        return f"streets: {listing.total:,} lines" if listing.total else "no streets here"

    def _held(self, box: Box) -> tuple[Box, Listing[StreetView]] | None:
        """The newest street box read that holds `box`."""
        for read, listing in reversed(self._streets.items()):
            if read.contains(box):
                return read, listing
        return None

    def streets_for(self, view: Viewport) -> tuple[StreetView, ...]:
        """The street lines held for `view` (those of a box that holds it, else of one that
        overlaps it until its own arrive; none past STREETS_UP_TO_METRES)."""
        if view.metres > STREETS_UP_TO_METRES:
            return ()
        held = self._held(view.box())
        if held is not None:
            return held[1].rows
        # Until the view's own streets arrive, whatever was read of it before.
        box = view.box()
        for read, listing in reversed(self._streets.items()):
            if read.overlaps(box):
                return listing.rows
        return ()

    def _want_streets(self, view: Viewport) -> None:
        """Ask the screen for the streets around the view, unless they are held or asked for."""
        if view.metres > STREETS_UP_TO_METRES:
            return
        box = view.box()
        for known in (self._asked, self._failed):
            if known is not None and known.contains(box):
                return
        if self._held(box) is not None:
            return
        grown = box.grown(STREETS_MARGIN)
        wanted = Box(
            max(grown.min_lat, -90.0),
            min(grown.max_lat, 90.0),
            max(grown.min_lon, -180.0),
            min(grown.max_lon, 180.0),
        )
        self._asked = wanted
        self.post_message(self.StreetsWanted(self, wanted))

    def on_map_view_streets_loaded(self, event: MapView.StreetsLoaded) -> None:
        event.stop()
        if event.box != self._asked:
            return  # an older view's: a newer one is on its way
        self._asked = None
        self._failed, self._street_error = (event.box, event.error) if event.error else (None, None)
        if event.streets is not None:
            self._streets[event.box] = event.streets
            while len(self._streets) > STREET_BOXES:
                self._streets.popitem(last=False)
        self.redraw()


def _line(parts: list[Text], width: int, gap: str) -> Text:
    """As many of `parts` as fit on one line of `width` cells, then `+N more` for the rest
    (the first part is always there; the line's widget cuts it if it alone is too long)."""
    line = Text(no_wrap=True, overflow="ellipsis")
    for index, part in enumerate(parts):
        after = len(parts) - index - 1
        # Room for this part, and for the count of those after it should they not fit.
        tail = len(f"{gap}+{after} more") if after else 0
        if index and line.cell_len + len(gap) + part.cell_len + tail > width:
            line.append(f"{gap}+{len(parts) - index} more", style="bold")
            return line
        if index:
            line.append(gap)
        line.append_text(part)
    return line


def _listing(head: str, items: list[str], room: int) -> Text:
    """`head` and as many of `items` as fit in `room` cells, then how many more there are."""
    text = Text(head)
    for index, item in enumerate(items):
        rest = len(items) - index
        sep = ", " if index else ""
        tail = len(f", … {rest - 1} more") if rest > 1 else 0
        if text.cell_len + len(sep) + len(item) + tail > room:
            text.append(f"{sep}… {rest} more")
            return text
        text.append(sep + item)
    return text
