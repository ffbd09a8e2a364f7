"""The map's drawing, without a terminal: where a place falls, how a line is dotted and cut at
the edge, where words go when places crowd, what a stale unit looks like, and street names."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from dispatch_tui.rules.addresses import AddressMatch
from dispatch_tui.rules.views import Box, StreetView
from dispatch_tui.widgets.map_canvas import (
    CELL_ASPECT,
    METRES_PER_DEGREE,
    PIN,
    WORDS_ROOM,
    Canvas,
    Marker,
    Near,
    Viewport,
    about,
    call_key,
    clip,
    draw,
    scene,
    unit_key,
)
from tests.helpers import T0, call_view, hospital_view, unit_view

LAT, LON = 40.0, -83.0
STYLES = {"AVAILABLE": "green", "EN_ROUTE": "yellow", "RECEIVED": "red", "DIVERSION": "yellow"}


def view(metres: float = 10.0, cols: int = 80, rows: int = 24) -> Viewport:
    return Viewport(LAT, LON, metres, cols, rows)


def north(metres: float) -> float:
    return LAT + metres / METRES_PER_DEGREE


def east(metres: float, lat: float = LAT) -> float:
    import math

    return LON + metres / (METRES_PER_DEGREE * math.cos(math.radians(lat)))


def street(name: str, *points: tuple[float, float]) -> StreetView:
    """A street through (lat, lon) points (stored, as the gazetteer does, as (lon, lat))."""
    lats, lons = [p[0] for p in points], [p[1] for p in points]
    return StreetView(
        name,
        tuple((lon, lat) for lat, lon in points),
        Box(min(lats), max(lats), min(lons), max(lons)),
    )


def marker(key: str, lat: float, lon: float, label: str, rank: int = 20) -> Marker:
    return Marker(key, lat, lon, label, "", rank)


# -- projection -----------------------------------------------------------------------------------


def test_the_centre_falls_in_the_middle_cell() -> None:
    assert view().cell(LAT, LON) == (40, 12)


def test_a_cell_is_twice_as_tall_as_it_is_wide() -> None:
    v = view(metres=10)
    # 395 m east is 39.5 cells across; 390 m north is 19.5 rows up (a row is 20 m tall).
    assert v.cell(LAT, east(395)) == (79, 12)
    assert v.cell(north(390), LON) == (40, 12 - 20)
    assert v.metres * CELL_ASPECT == 20


def test_a_degree_of_longitude_is_shorter_further_north() -> None:
    at_equator = Viewport(0.0, LON, 100, 80, 24)
    at_sixty = Viewport(60.0, LON, 100, 80, 24)
    x0, _ = at_equator.dot(0.0, LON + 0.01)
    x60, _ = at_sixty.dot(60.0, LON + 0.01)
    middle = 80 * 2 / 2
    assert (x60 - middle) == pytest.approx((x0 - middle) / 2, rel=1e-3)


def test_position_is_the_inverse_of_cell() -> None:
    v = view(metres=25)
    lat, lon = v.position(10.5, 3.5)
    assert v.cell(lat, lon) == (10, 3)


def test_the_box_holds_the_view_and_panning_moves_it() -> None:
    v = view(metres=10)
    box = v.box()
    assert box.min_lat < LAT < box.max_lat and box.min_lon < LON < box.max_lon
    assert (box.max_lon - box.min_lon) * METRES_PER_DEGREE * 0.766 == pytest.approx(800, rel=0.01)
    moved = v.panned(8, 0)
    assert moved.cell(LAT, east(80)) == (40, 12)  # 8 cells of 10 m east
    assert moved.panned(0, -2).lat == pytest.approx(north(40))  # 2 rows of 20 m north


def test_zoom_halves_or_doubles_the_metres_within_limits() -> None:
    v = view(metres=40)
    assert v.zoomed(2).metres == 20
    assert v.zoomed(0.5).metres == 80
    assert v.zoomed(1e9).metres == 2.0
    assert v.zoomed(1e-9).metres == 50_000.0


def test_fit_shows_every_point_with_room_for_words() -> None:
    points = [(LAT, LON), (north(3000), east(5000)), (north(-1000), east(-2000))]
    v = Viewport.fit(points, 100, 30)
    assert v is not None
    for lat, lon in points:
        col, row = v.cell(lat, lon)
        assert 2 <= col < 100 - 2 - WORDS_ROOM and 2 <= row < 30 - 2
    # And it is the nearest such view: a fifth nearer, one of them is out of that room.
    nearer = v.zoomed(1.2)
    cells = [nearer.cell(lat, lon) for lat, lon in points]
    assert any(not (2 <= c < 100 - 2 - WORDS_ROOM and 2 <= r < 30 - 2) for c, r in cells)
    assert Viewport.fit([], 100, 30) is None


# -- dots and lines -------------------------------------------------------------------------------


def test_braille_dots_sit_where_set() -> None:
    canvas = Canvas(2, 1)
    canvas.set(0, 0)  # top left of the first cell: dot 1
    canvas.set(3, 3)  # bottom right of the second cell: dot 8
    canvas.set(-1, 0)  # outside: ignored
    canvas.set(4, 0)
    assert canvas.row_text(0) == "\u2801\u2880"


def test_a_horizontal_line_fills_its_row_of_dots() -> None:
    canvas = Canvas(4, 1)
    canvas.line(0, 1, 7, 1)
    assert canvas.row_text(0) == "\u2812" * 4  # dots 2 and 5 in every cell


def test_a_diagonal_is_one_dot_per_step() -> None:
    canvas = Canvas(2, 1)
    canvas.line(0, 0, 3, 3)
    assert sum(bin(b).count("1") for b in canvas.bits) == 4
    assert canvas.row_text(0) == chr(0x2800 + 0x01 + 0x10) + chr(0x2800 + 0x04 + 0x80)


def test_a_line_is_cut_at_the_edge_and_one_outside_draws_nothing() -> None:
    canvas = Canvas(10, 2)
    canvas.line(-1e6, 3, 1e6, 3)  # far past both edges: only the part in view, quickly
    assert canvas.row_text(0) == chr(0x2800 + 0x40 + 0x80) * 10
    empty = Canvas(10, 2)
    empty.line(-50, -50, -5, -1)
    empty.line(0, 100, 19, 100)
    assert not any(empty.bits)


def test_clip_keeps_the_inside_part_of_a_segment() -> None:
    assert clip(-10, 5, 30, 5, 19, 7) == (0, 5, 19, 5)
    assert clip(2, 2, 4, 4, 19, 7) == (2, 2, 4, 4)
    assert clip(-5, -5, -1, -1, 19, 7) is None


def test_every_row_is_as_wide_as_the_view() -> None:
    v = view(cols=30, rows=6)
    markers = [marker(f"unit:U{i}", LAT, LON, f"U{i}·A") for i in range(8)]
    grid = street("Main St", (LAT, east(-1000)), (LAT, east(1000)))
    picture = draw(v, [grid], markers)
    assert len(picture.rows) == 6
    assert all(len(line) == 30 for line in picture.text().splitlines())


# -- markers --------------------------------------------------------------------------------------


def test_a_marker_starts_at_its_place() -> None:
    picture = draw(view(), [], [marker("unit:M1", LAT, LON, "M1·E")])
    assert picture.placed["unit:M1"] == (40, 12)
    assert picture.text().splitlines()[12][40:44] == "M1·E"


def test_a_marker_at_the_right_edge_ends_at_its_place() -> None:
    v = view(cols=20, rows=5)
    lat, lon = v.position(19.5, 2.5)
    picture = draw(v, [], [marker("unit:M1", lat, lon, "M1·E")])
    assert picture.placed["unit:M1"] == (16, 2)
    assert picture.text().splitlines()[2].endswith("M1·E")


def test_two_markers_at_one_place_both_readable_and_the_moved_one_pinned() -> None:
    v = view()
    picture = draw(
        v,
        [],
        [marker("unit:M1", LAT, LON, "M1·E", rank=20), marker("unit:M2", LAT, LON, "M2·A", 30)],
    )
    lines = picture.text().splitlines()
    assert picture.placed["unit:M1"] == (40, 12)  # the more urgent keeps the place
    col, row = picture.placed["unit:M2"]
    assert lines[row][col : col + 4] == "M2·A"
    assert row != 12 or col + 4 < 40 - 1 or col > 44  # not over M1, a blank between
    assert "M1·E" in lines[12]
    assert not picture.crowded


def test_a_crowd_at_one_place_is_counted_and_named_never_dropped_silently() -> None:
    v = view(cols=12, rows=3)
    markers = [marker(f"unit:U{i}", LAT, LON, f"U{i}·A", rank=i) for i in range(10)]
    picture = draw(v, [], markers)
    shown = set(picture.placed)
    hidden = [label for labels in picture.crowded.values() for label in labels]
    assert shown and hidden
    assert len(shown) + len(hidden) == 10
    text = picture.text()
    for host, labels in picture.crowded.items():
        assert f"+{len(labels)}" in text
        assert host in shown
    assert "unit:U0" in shown  # the most urgent is always drawn


def test_the_selected_marker_is_drawn_first_in_brackets_with_its_number() -> None:
    call = call_view("C-1042", lat=LAT, lon=LON)
    unit = dataclasses.replace(unit_view("M1", lat=LAT, lon=LON), position_at=T0)
    found = scene([unit], [call], [], T0, STYLES)
    picture = draw(view(), [], found.markers, selected=call_key("C-1042"))
    assert picture.placed[call_key("C-1042")] == (40, 12)
    assert "[P1 C-1042]" in picture.text()
    assert "M1·A" in picture.text()


def test_markers_outside_the_view_are_listed_not_drawn() -> None:
    far = marker("unit:M9", north(10_000), LON, "M9·A")
    picture = draw(view(), [], [far, marker("unit:M1", LAT, LON, "M1·A")])
    assert [m.key for m in picture.outside] == ["unit:M9"]
    assert "M9" not in picture.text()


def test_units_calls_and_hospitals_say_their_status_in_text() -> None:
    units = [
        dataclasses.replace(unit_view("M1", status="EN_ROUTE", lat=LAT, lon=LON), position_at=T0),
        dataclasses.replace(
            unit_view("M2", status="EN_ROUTE", lat=LAT, lon=LON),
            position_at=T0,
            en_route_reported=True,
        ),
        dataclasses.replace(
            unit_view("B6", status="OUT_OF_SERVICE", lat=LAT, lon=LON), position_at=T0
        ),
    ]
    calls = [
        call_view("C-1", lat=LAT, lon=LON, priority=2),
        call_view("C-2", "ON_SCENE", lat=LAT, lon=LON, priority=1),
        call_view("C-3", priority=3),  # no position: listed, not drawn
        dataclasses.replace(call_view("C-4", lat=LAT, lon=LON), hazard=True),
        dataclasses.replace(call_view("C-5", lat=LAT, lon=LON), location_verified=False),
    ]
    hospitals = [hospital_view("MERCY", LAT, LON, "DIVERSION"), hospital_view("EAST", LAT, LON)]
    found = scene(units, calls, hospitals, T0, STYLES)
    labels = {m.key: m.label for m in found.markers}
    assert labels[unit_key("M1")] == "M1·D"  # dispatched, not yet reported en route
    assert labels[unit_key("M2")] == "M2·E"
    assert labels[unit_key("B6")] == "B6·S"
    assert labels[call_key("C-1")] == "P2"
    assert labels[call_key("C-2")] == "(P1)"
    assert labels[call_key("C-4")] == "P1!"  # a hazard note at its address
    assert labels[call_key("C-5")] == "P1~"  # its place not found as typed: a guess
    assert labels["hospital:MERCY"] == "+MERCY·D"
    assert labels["hospital:EAST"] == "+EAST·O"
    assert found.unplaced_calls == ("C-3",)
    ranks = {m.key: m.rank for m in found.markers}
    assert ranks[call_key("C-1")] < ranks[unit_key("M1")] < ranks["hospital:MERCY"]


def test_a_stale_unit_is_marked_and_listed_with_its_age() -> None:
    old = dataclasses.replace(
        unit_view("M3", lat=LAT, lon=LON), position_at=T0 - timedelta(minutes=23)
    )
    fresh = dataclasses.replace(unit_view("M4", lat=LAT, lon=LON), position_at=T0)
    lost = unit_view("B2", station_position=(LAT, LON))  # no position: drawn at its station
    found = scene([old, fresh, lost], [], [], T0, STYLES, stale_seconds=600)
    labels = {m.key: m for m in found.markers}
    assert labels[unit_key("M3")].label == "M3·A?"
    assert "dim" in labels[unit_key("M3")].style
    assert labels[unit_key("M4")].label == "M4·A"
    assert labels[unit_key("B2")].label == "B2·A?"
    assert [(s.code, s.words) for s in found.stale] == [
        ("B2", "no position: shown at its station"),
        ("M3", "position 23 min old"),
    ]
    # The centre's own threshold: 30 min, and M3 is fresh enough.
    assert not any(s.code == "M3" for s in scene([old], [], [], T0, STYLES, 1800).stale)


# -- streets and their names ----------------------------------------------------------------------


def test_a_street_across_the_view_is_dotted_and_named_on_its_line() -> None:
    v = view(cols=60, rows=10)
    main = street("Main St", (LAT, east(-400)), (LAT, east(0)), (LAT, east(400)))
    picture = draw(v, [main], [])
    lines = picture.text().splitlines()
    assert picture.names == ["Main St"]
    row = next(i for i, line in enumerate(lines) if "Main St" in line)
    assert row == v.cell(LAT, LON)[1]
    start = lines[row].index("Main St")
    beside = lines[row][start - 3 : start] + lines[row][start + 7 : start + 10]
    assert all(0x2801 <= ord(ch) <= 0x28FF for ch in beside)  # the line runs on either side
    assert "\u2800" not in picture.text()  # a cell without dots is a plain space


def test_a_street_down_the_view_is_named_beside_it() -> None:
    v = view(cols=60, rows=12)
    elm = street("Elm Ave", (north(-150), LON), (north(150), LON))
    picture = draw(v, [elm], [])
    assert picture.names == ["Elm Ave"]
    col = v.cell(LAT, LON)[0]
    line = next(line for line in picture.text().splitlines() if "Elm Ave" in line)
    assert line.index("Elm Ave") in (col + 2, col - 1 - len("Elm Ave"))


def test_a_name_goes_only_where_there_is_room() -> None:
    v = view(cols=60, rows=10)
    short = street("A Very Long Boulevard Name", (LAT, east(-30)), (LAT, east(30)))
    assert draw(v, [short], []).names == []
    main = street("Main St", (LAT, east(-400)), (LAT, east(400)))
    crowd = [marker(f"unit:U{i}", LAT, east(-300 + 60 * i), f"U{i}") for i in range(11)]
    picture = draw(v, [main], crowd)
    assert all(label in picture.text() for label in (f"U{i}" for i in range(11)))


def test_a_street_name_is_data_and_never_moves_the_cursor() -> None:
    v = view(cols=60, rows=10)
    evil = street("Main\x1b[2J St", (LAT, east(-400)), (LAT, east(400)))
    picture = draw(v, [evil], [])
    assert "\x1b" not in picture.text()
    assert picture.names == []


def test_streets_outside_the_view_are_not_drawn() -> None:
    v = view(cols=20, rows=5)
    far = street("Far Rd", (north(5000), east(-100)), (north(5000), east(100)))
    picture = draw(v, [far], [])
    assert picture.text().strip() == ""


def test_a_moved_label_leaves_a_pin_at_the_place() -> None:
    v = view(cols=20, rows=5)
    markers = [marker("unit:M1", LAT, LON, "M1·E", 1), marker("unit:M2", LAT, east(20), "M2·A", 2)]
    picture = draw(v, [], markers)
    col, row = v.cell(LAT, east(20))
    assert picture.placed["unit:M2"] != (col, row)
    lines = picture.text().splitlines()
    # M2's place is under M1's words, so no pin can be drawn there; its words are near.
    assert lines[row][col] in "M1·E" + PIN


def test_a_street_down_the_view_is_a_column_of_dots() -> None:
    canvas = Canvas(1, 2)
    canvas.line(1, 0, 1, 7)
    assert canvas.row_text(0) == canvas.row_text(1) == chr(0x2800 + 0x08 + 0x10 + 0x20 + 0x80)


def test_a_unit_moved_redraws_on_the_same_streets_without_drawing_them_again() -> None:
    v = view(cols=60, rows=10)
    main = street("Main St", (LAT, east(-400)), (LAT, east(400)))
    first = draw(v, [main], [marker("unit:M1", LAT, east(-200), "M1·E")])
    assert first.layer is not None and first.layer.view == v
    # Given the layer, the streets passed are not looked at: the dots are the layer's.
    moved = draw(v, [], [marker("unit:M1", LAT, east(200), "M1·E")], layer=first.layer)
    assert moved.layer is first.layer
    before, after = first.text().splitlines(), moved.text().splitlines()
    row = v.cell(LAT, LON)[1]
    assert "Main St" in after[row]
    assert before[row].index("M1·E") < after[row].index("M1·E")
    # Another view: the layer is not taken, the streets are drawn for it.
    other = draw(v.panned(5, 0), [], [], layer=first.layer)
    assert other.layer is not first.layer and other.text().strip() == ""


def test_streets_too_dense_to_read_are_left_out_and_said() -> None:
    v = view(metres=100, cols=40, rows=10)
    # A line every 20 m across the whole view: far more line than the map has cells.
    dense = [
        street(f"St {i}", (north(-1000 + 20 * i), east(-3000)), (north(-1000 + 20 * i), east(3000)))
        for i in range(100)
    ]
    picture = draw(v, dense, [marker("unit:M1", LAT, LON, "M1·E")], most_filled=0.7)
    assert picture.streets_dense and picture.names == []
    assert not any(0x2801 <= ord(ch) <= 0x28FF for ch in picture.text())
    assert "M1·E" in picture.text()
    # Not so much line that its length says so, but drawn, a line on every row fills the map.
    rows = [
        street(f"Row {i}", (north(900 - 200 * i), east(-3000)), (north(900 - 200 * i), east(3000)))
        for i in range(10)
    ]
    assert draw(v, rows, [], most_filled=0.7).streets_dense
    # Sparse enough, the same map draws them.
    sparse = draw(v, dense[::25], [], most_filled=0.7)
    assert not sparse.streets_dense
    assert any(0x2801 <= ord(ch) <= 0x28FF for ch in sparse.text())


def test_a_map_too_small_for_any_words_lists_what_it_could_not_draw() -> None:
    picture = draw(view(cols=3, rows=1), [], [marker("unit:M1", LAT, LON, "M1·E")])
    assert picture.unshown == ["M1·E"] and not picture.placed


def test_a_crowd_is_counted_on_the_nearest_most_urgent_marker() -> None:
    v = view(cols=40, rows=3)
    far = marker("unit:F1", LAT, east(150), "F1·A", rank=1)  # 15 columns east
    crowd = [marker(f"unit:U{i}", LAT, LON, f"U{i}·A", rank=10 + i) for i in range(12)]
    picture = draw(v, [], [far, *crowd])
    assert "unit:F1" in picture.placed and "unit:U0" in picture.placed
    # Those with no room at the crowd are counted on the crowd's own, not on F1.
    assert set(picture.crowded) <= {k for k in picture.placed if k != "unit:F1"}
    assert sum(len(h) for h in picture.crowded.values()) + len(picture.placed) == 13


# -- the line under the map ------------------------------------------------------------------------


def address(metres_north: float, label: str = "456 W Maple St, Riverton") -> AddressMatch:
    """An address point `metres_north` of (LAT, LON), as the gazetteer's reverse lookup gives."""
    return AddressMatch(
        1,
        label,
        "456",
        "W Maple St",
        None,
        "Riverton",
        None,
        north(metres_north),
        LON,
        1.0,
        "nearby",
    )


def said(row: object, near: Near | None, now: object = None) -> str:
    return " · ".join(words for words, _ in about(row, near, now, 600))  # type: ignore[arg-type]


def test_a_unit_is_said_with_its_state_the_address_nearest_it_and_its_positions_age() -> None:
    unit = dataclasses.replace(
        unit_view("M3", status="EN_ROUTE", lat=LAT, lon=LON), en_route_reported=True
    )
    now = T0 + timedelta(minutes=2, seconds=30)
    assert said(unit, address(30), now) == (
        "M3 EN ROUTE · near 456 W Maple St, Riverton (30 m) · position 2 min old"
    )
    # Not reported en route yet: dispatched. Until the address is read, the line says so.
    dispatched = dataclasses.replace(unit, en_route_reported=False)
    assert said(dispatched, "finding the nearest address…", now) == (
        "M3 DISPATCHED · finding the nearest address… · position 2 min old"
    )
    # Stale: its age is said loudly.
    late = T0 + timedelta(minutes=23)
    assert about(unit, address(30), late, 600)[-1] == ("position 23 min old", "bold yellow")
    # Drawn at its station without a position of its own: no address is named for it.
    home = unit_view("M4", station_position=(LAT, LON))
    assert said(home, None) == "M4 AVAILABLE · no position: shown at its station"


def test_a_call_is_said_as_typed_and_the_nearest_address_only_when_not_at_one() -> None:
    placed = dataclasses.replace(
        call_view("C-1042", lat=LAT, lon=LON, location_text="[bold]12 Maple"),
        nature="Cardiac arrest",
    )
    # Verified at an address point: the location as typed says it all.
    assert said(placed, address(0)) == "C-1042 P1 Cardiac arrest · [bold]12 Maple"
    assert said(placed, "finding the nearest address…") == said(placed, None)
    # Verified but not at an address (a named place, coordinates given): the nearest is named.
    assert said(placed, address(80)).endswith(
        "· [bold]12 Maple · near 456 W Maple St, Riverton (80 m)"
    )
    unverified = dataclasses.replace(placed, location_verified=False)
    assert said(unverified, address(0)) == (
        "C-1042 P1 Cardiac arrest · [bold]12 Maple · UNVERIFIED · "
        "near 456 W Maple St, Riverton (0 m)"
    )
    assert ("UNVERIFIED", "bold reverse yellow") in about(unverified, None, None, 600)
    assert said(unverified, "no address near").endswith("· UNVERIFIED · no address near")
    nowhere = dataclasses.replace(unverified, lat=None, lon=None)
    assert said(nowhere, None).endswith("· no position: its address was not found")


def test_a_hospital_is_said_with_its_status_and_nearest_address() -> None:
    mercy = hospital_view("MERCY", LAT, LON, status="DIVERSION")
    assert said(mercy, address(1200)) == (
        "MERCY Mercy DIVERSION · near 456 W Maple St, Riverton (1.2 km)"
    )
