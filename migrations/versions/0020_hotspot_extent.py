"""Kept study extents (issue 13): the metric bounds of every placed incident a caller sees, kept
under the data versions they were read at, so a cold hotspot surface (a new process, another
worker) reads four numbers instead of scanning every incident again. A data change bumps a data
version (app/sql/versions.sql), and an extent read at other versions is never used: it is replaced
by the next computation. One row per partnership and access (role, agency, level cap).

Revision ID: 0020
Revises: 0017
Create Date: 2026-12-03
"""
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE hotspot_extent (
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    access          text NOT NULL,   -- sharing.access_key: what the sharing function's answer depends on
    versions        text NOT NULL,   -- the data versions the extent was read at (hotspot_data.VERSIONED_BY)
    srid            integer NOT NULL,
    minx            double precision,  -- all NULL: the caller sees no placed incident
    miny            double precision,
    maxx            double precision,
    maxy            double precision,
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partnership_id, access)
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS hotspot_extent")
