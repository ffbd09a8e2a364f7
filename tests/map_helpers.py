"""A street grid of the tests' own over the demo area, for the map's tests and pictures.

Avenues run north–south and streets east–west, each cut into blocks as a gazetteer stores them,
put straight into `street_segments` (whatever the demo seed's own grid is, the pictures stay
the same).
"""

from __future__ import annotations

import itertools
import json

from sqlalchemy import Engine, text

# The demo area (service/demo.py) lies within these; the grid covers it.
SOUTH, NORTH, WEST, EAST = 39.975, 40.056, -83.085, -82.925
AVENUES = ("Foundry Rd", "Elm Ave", "Union Ave", "Market St", "Commerce Blvd", "Stadium Way")
STREETS = ("1st St", "2nd St", "3rd St", "4th St", "5th St", "6th St", "7th St")
SOURCE = "test-map"


def grid_lines() -> list[tuple[str, list[list[float]]]]:
    """The grid's lines, in GeoJSON order ([lon, lat])."""
    lines: list[tuple[str, list[list[float]]]] = []
    lats = [SOUTH + (NORTH - SOUTH) * i / 8 for i in range(9)]
    lons = [WEST + (EAST - WEST) * i / 10 for i in range(11)]
    for i, name in enumerate(AVENUES):
        lon = WEST + (EAST - WEST) * (i + 0.5) / len(AVENUES)
        lines += [(name, [[lon, a], [lon, b]]) for a, b in itertools.pairwise(lats)]
    for i, name in enumerate(STREETS):
        lat = SOUTH + (NORTH - SOUTH) * (i + 0.5) / len(STREETS)
        lines += [(name, [[a, lat], [b, lat]]) for a, b in itertools.pairwise(lons)]
    return lines


def put_streets(engine: Engine, lines: list[tuple[str, list[list[float]]]]) -> None:
    """`lines` as the gazetteer's only street lines."""
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM street_segments"))
        for i, (name, coords) in enumerate(lines):
            lats, lons = [p[1] for p in coords], [p[0] for p in coords]
            conn.execute(
                text(
                    "INSERT INTO street_segments (name, street_key, coords, min_lat, max_lat,"
                    " min_lon, max_lon, source, source_key)"
                    " VALUES (:name, lower(:name), CAST(:coords AS jsonb), :s, :n, :w, :e,"
                    " :source, :key)"
                ),
                {
                    "name": name,
                    "coords": json.dumps(coords),
                    "s": min(lats),
                    "n": max(lats),
                    "w": min(lons),
                    "e": max(lons),
                    "source": SOURCE,
                    "key": str(i),
                },
            )
