"""Embedded read-only maps for partner intranets.

An embed belongs to a partnership and names the catalog layers it shows, an optional area, the
precision of incident data (never exact), the origins allowed to frame it and when it expires.
Its key is stored only as a SHA-256 digest, like API tokens. `views` counts page loads;
`view_audited_at` limits 'embed.view' audit events to one per embed per minute.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE embed (
    id               serial PRIMARY KEY,
    partnership_id   integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    public_id        text NOT NULL UNIQUE CHECK (public_id ~ '^[A-Za-z0-9_-]{8,64}$'),
    key_hash         bytea NOT NULL UNIQUE,
    title            text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    layers           text[] NOT NULL CHECK (cardinality(layers) BETWEEN 1 AND 20),
    -- the area shown (WGS84); NULL for the partnership's whole data
    area             geometry(Polygon, 4326),
    precision        text NOT NULL CHECK (precision IN ('sanitised', 'aggregate')),
    allowed_origins  text[] NOT NULL CHECK (cardinality(allowed_origins) BETWEEN 1 AND 20),
    expires_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       integer REFERENCES principal(id) ON DELETE SET NULL,
    revoked_at       timestamptz,
    views            bigint NOT NULL DEFAULT 0,
    view_audited_at  timestamptz
);
CREATE INDEX embed_partnership_idx ON embed (partnership_id, id DESC);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS embed")
