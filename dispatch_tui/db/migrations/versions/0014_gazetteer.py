"""the gazetteer: the agency's own address points and street lines, offline

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

- **`address_points`**: one row per addressable point (house number, street as written, unit,
  city, postcode, position), from the agency's GIS data (`dispatch-tui gis import`) or the demo
  seed. `street_key` is the street as compared (`rules.addresses.street_key`: lower case, words
  only, the usual abbreviations in one form); `house` the number's leading whole number, by
  which a number the data lacks is placed between its neighbours; `source`/`source_key` make an
  import idempotent. Indexed for the intake's completion and the geocoder's exact match (a
  number, then the street), for a number placed between its neighbours (a street, then its
  numbers in order), and for the nearest address to a position (latitude, then longitude).
- **`street_segments`**: a street's line as a list of points (`coords`, GeoJSON order:
  `[[lon, lat], ...]`) with its bounding box, so the map reads only what is in view.
- **`gazetteer_streets`**: a materialized view, one row per street (and city) of either table,
  with a trigram index: a typed street with a slip in it is matched against a few thousand
  streets, not every address point (which therefore need no trigram index of their own). The importer refreshes it (concurrently: geocoding goes on).
- **`calls.location_verified`**: whether the call's position is one the service trusts (an
  address the gazetteer has, a named place, coordinates given); a location typed that the
  gazetteer does not have is taken, unverified, and said so wherever the call is shown. Calls
  there already that have a position count as verified. Only a verified call needs one.
- **`calls.address_key`, `premise_notes.address_key`** computed again: the address as compared
  now parses a typed address and leaves out what names no place (a city, a postcode, a
  building's name), so `12 Main St, Riverton` and `12 Main Street` are one address.
- Extensions: `pg_trgm` (fuzzy and prefix search on street names), `fuzzystrmatch`.
- Rights: every staff login and board reads the gazetteer; only the owner (the importer)
  writes it. Dispatchers write a call's `location_verified` with its location.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dispatch_tui.rules.addresses import normalise_address

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

GRANTS = (
    "GRANT SELECT ON address_points, street_segments, gazetteer_streets"
    " TO dispatch_operator, dispatch_board",
    "GRANT INSERT (location_verified), UPDATE (location_verified) ON calls TO dispatch_dispatcher",
)

# One row per street (and city) that has address points or lines: its name as most often
# written, how many points it has, and where its middle is.
STREETS = """
CREATE MATERIALIZED VIEW gazetteer_streets AS
SELECT street_key,
       coalesce(city, '') AS city,
       mode() WITHIN GROUP (ORDER BY street) AS name,
       sum(points)::integer AS points,
       avg(lat) AS lat,
       avg(lon) AS lon
FROM (
    SELECT street_key, city, street, 1 AS points, lat, lon FROM address_points
    UNION ALL
    SELECT street_key, city, name, 0, (min_lat + max_lat) / 2, (min_lon + max_lon) / 2
    FROM street_segments
) AS named
GROUP BY street_key, coalesce(city, '')
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch")
    op.create_table(
        "address_points",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("street", sa.Text(), nullable=False),
        sa.Column("street_key", sa.Text(), nullable=False),
        sa.Column("house", sa.Integer(), nullable=True),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("postcode", sa.Text(), nullable=True),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180",
            name=op.f("ck_address_points_position"),
        ),
        sa.CheckConstraint("street_key <> ''", name=op.f("ck_address_points_key")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_address_points")),
    )
    op.create_index("ix_address_points_number", "address_points", ["number", "street_key"])
    op.create_index("ix_address_points_house", "address_points", ["street_key", "house"])
    op.create_index(
        "uq_address_points_source_key",
        "address_points",
        ["source", "source_key"],
        unique=True,
        postgresql_where=sa.text("source_key IS NOT NULL"),
    )
    op.create_index("ix_address_points_lat_lon", "address_points", ["lat", "lon"])
    op.create_table(
        "street_segments",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("street_key", sa.Text(), nullable=False),
        sa.Column("city", sa.Text(), nullable=True),
        sa.Column("coords", postgresql.JSONB(), nullable=False),
        sa.Column("min_lat", sa.Double(), nullable=False),
        sa.Column("max_lat", sa.Double(), nullable=False),
        sa.Column("min_lon", sa.Double(), nullable=False),
        sa.Column("max_lon", sa.Double(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("source_key", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "jsonb_typeof(coords) = 'array' AND jsonb_array_length(coords) >= 2",
            name=op.f("ck_street_segments_line"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_street_segments")),
    )
    op.create_index(
        "ix_street_segments_box", "street_segments", ["min_lat", "max_lat", "min_lon", "max_lon"]
    )
    op.create_index("ix_street_segments_street_key", "street_segments", ["street_key"])
    op.create_index(
        "uq_street_segments_source_key",
        "street_segments",
        ["source", "source_key"],
        unique=True,
        postgresql_where=sa.text("source_key IS NOT NULL"),
    )
    op.execute(STREETS)
    # Unique, so that the importer can refresh it concurrently (readers go on meanwhile).
    op.execute("CREATE UNIQUE INDEX uq_gazetteer_streets ON gazetteer_streets (street_key, city)")
    op.execute(
        "CREATE INDEX ix_gazetteer_streets_trgm ON gazetteer_streets"
        " USING gin (street_key gin_trgm_ops)"
    )
    _calls_verified()
    _compare_addresses_again()
    for statement in GRANTS:
        op.execute(statement)


def _calls_verified() -> None:
    op.add_column(
        "calls",
        sa.Column(
            "location_verified", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    # The calls taken so far: their position came from a named place or was given.
    op.execute("UPDATE calls SET location_verified = true WHERE lat IS NOT NULL")
    op.create_check_constraint(
        "verified_position", "calls", "NOT location_verified OR lat IS NOT NULL"
    )


# Each table with an address key: its rows' addresses, and how a key is written back.
_KEYED = (
    (
        "SELECT id, location_text FROM calls",
        "UPDATE calls SET address_key = :key WHERE id = :id",
    ),
    (
        "SELECT id, address FROM premise_notes",
        "UPDATE premise_notes SET address_key = :key WHERE id = :id",
    ),
)


def _compare_addresses_again() -> None:
    """Every stored address key, as `normalise_address` makes it now (see the docstring)."""
    conn = op.get_bind()
    for read, write in _KEYED:
        rows = conn.execute(sa.text(read)).all()
        # A note's key is never empty (ck_premise_notes_key); a call's may be NULL.
        keys = [{"id": i, "key": normalise_address(a) or None} for i, a in rows]
        keys = [k for k in keys if k["key"] or "calls" in write]
        if keys:
            conn.execute(sa.text(write), keys)


def downgrade() -> None:
    op.execute(
        "REVOKE INSERT (location_verified), UPDATE (location_verified) ON calls"
        " FROM dispatch_dispatcher"
    )
    op.drop_constraint(op.f("ck_calls_verified_position"), "calls", type_="check")
    op.drop_column("calls", "location_verified")
    op.execute("DROP MATERIALIZED VIEW gazetteer_streets")
    op.drop_table("street_segments")
    op.drop_table("address_points")
