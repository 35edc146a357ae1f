"""Incident cells: the per-data-version aggregate that low-zoom incident tiles count from.

- `incident_cell`: per partnership, data set, position kind (real or anonymous point), tile zoom,
  grid cell (16 per tile side) and category, the count of incidents and the sum of their grid
  positions. No primary key: it is only ever rebuilt whole per partnership and read by tile.
- `incident_cell_build`: the partnership's 'incident' data version the aggregate was read at. A
  tile reads the aggregate only while this equals the current version (app/sql/incident_cells.sql).
- `safermap_visible_incidents` (app/sql/sharing.sql) works out each data set's level once per
  statement instead of once per incident (same rows, same levels).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""
from alembic import op

from app import sql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

LOADS_SQL = {
    "sharing": "90bd665f9392c46c",         # the data sets' levels behind a fence (worked out once per tile)
    "incident_cells": "113c3af1b92c8346",
}

UPGRADE = """
CREATE TABLE incident_cell (
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    dataset_id      integer NOT NULL,
    anon            boolean NOT NULL,   -- at the anonymous point (callers below 'exact')
    z               smallint NOT NULL,  -- the tile zoom whose cells these are
    x               integer NOT NULL,   -- the tile
    y               integer NOT NULL,
    cx              integer NOT NULL,   -- the cell, on the world grid of 16 * 2^z cells a side
    cy              integer NOT NULL,
    category        text NOT NULL,
    n               integer NOT NULL,
    sx              double precision NOT NULL,  -- sums of the incidents' grid positions
    sy              double precision NOT NULL
);
-- a tile's rows of one data set at one position kind: the index alone says which to read
CREATE INDEX incident_cell_tile_idx ON incident_cell (partnership_id, z, x, y, dataset_id, anon);

CREATE TABLE incident_cell_build (
    partnership_id  integer PRIMARY KEY REFERENCES partnership(id) ON DELETE CASCADE,
    version         bigint NOT NULL,
    built_at        timestamptz NOT NULL
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    sql.apply(op.get_bind(), *LOADS_SQL)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS safermap_build_incident_cells(integer)")
    op.execute("DROP TABLE IF EXISTS incident_cell_build, incident_cell")
