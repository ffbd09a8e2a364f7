"""the gazetteer: the agency's own address points and street lines, offline

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01

- **`address_points`**: one row per addressable point (house number, street as written, unit,
  city, postcode, position), from the agency's GIS data (`dispatch-tui gis import`) or the demo
  seed. `street_key` is the street as compared (lower case, words only, the usual
  abbreviations in one form); `source`/`source_key` make an import idempotent.
- **`street_segments`**: a street's line as a list of points (`coords`, GeoJSON order:
  `[[lon, lat], ...]`) with its bounding box, so the map reads only what is in view.
- Extensions: `pg_trgm` (fuzzy and prefix search on street names), `fuzzystrmatch`.
- Rights: every staff login and board reads both; only the owner (the importer) writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

GRANTS = ("GRANT SELECT ON address_points, street_segments TO dispatch_operator, dispatch_board",)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch")
    op.create_table(
        "address_points",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("number", sa.Text(), nullable=False),
        sa.Column("street", sa.Text(), nullable=False),
        sa.Column("street_key", sa.Text(), nullable=False),
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
    op.create_index(
        "ix_address_points_street_key_number", "address_points", ["street_key", "number"]
    )
    op.create_index(
        "ix_address_points_street_key_trgm",
        "address_points",
        ["street_key"],
        postgresql_using="gin",
        postgresql_ops={"street_key": "gin_trgm_ops"},
    )
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
    for statement in GRANTS:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("street_segments")
    op.drop_table("address_points")
