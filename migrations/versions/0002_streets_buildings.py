"""Streets and buildings from OpenStreetMap: the offline background map, and later the routing
network and the buildings that block a camera's view.

Written by hand so that each spatial index is created exactly once.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen history: the current definition of each function and trigger below is in app/sql/ (see 0014).

UPGRADE = r"""
-- 0001's version of this function applied DISTINCT to rows that each carried their own nextval(),
-- so a statement touching two rows of one partnership proposed the same key twice and failed
-- ("ON CONFLICT DO UPDATE command cannot affect row a second time"): every multi-row insert,
-- COPY or delete did. One new version per partnership and statement is what is meant.
CREATE OR REPLACE FUNCTION safermap_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO data_version (partnership_id, source, version)
        SELECT d.partnership_id, TG_TABLE_NAME, nextval('data_version_seq')
        FROM (SELECT DISTINCT partnership_id FROM old_rows) AS d
        ON CONFLICT (partnership_id, source) DO UPDATE SET version = EXCLUDED.version;
    ELSE
        INSERT INTO data_version (partnership_id, source, version)
        SELECT d.partnership_id, TG_TABLE_NAME, nextval('data_version_seq')
        FROM (SELECT DISTINCT partnership_id FROM new_rows) AS d
        ON CONFLICT (partnership_id, source) DO UPDATE SET version = EXCLUDED.version;
    END IF;
    RETURN NULL;
END $$;

CREATE TABLE street (
    id              bigserial PRIMARY KEY,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    osm_id          bigint,
    name            text,
    highway         text,
    lit             text,           -- the OSM value as tagged: yes, no, 24/7, automatic, ...
    geom            geometry(LineString, 4326) NOT NULL
);
CREATE INDEX street_geom_idx ON street USING gist (geom);
CREATE INDEX street_partnership_idx ON street (partnership_id);

CREATE TABLE building (
    id              bigserial PRIMARY KEY,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    osm_id          bigint,
    name            text,
    height_m        double precision CHECK (height_m > 0 AND height_m <= 1000),
    levels          double precision CHECK (levels >= 0 AND levels <= 300),
    geom            geometry(MultiPolygon, 4326) NOT NULL
);
CREATE INDEX building_geom_idx ON building USING gist (geom);
CREATE INDEX building_partnership_idx ON building (partnership_id);
"""

VERSIONED_TABLES = ("street", "building")

LAYER_VIEWS = r"""
CREATE VIEW layer_streets AS
SELECT s.id, s.partnership_id, s.geom, s.name, s.highway, s.lit FROM street s;

CREATE VIEW layer_buildings AS
SELECT b.id, b.partnership_id, b.geom, b.name, b.height_m FROM building b;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    # The same per-statement data-version triggers as 0001's tables, so tile ETags follow changes.
    for table in VERSIONED_TABLES:
        for event, ref in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "NEW TABLE AS new_rows"),
                           ("DELETE", "OLD TABLE AS old_rows")):
            op.execute(
                f"CREATE TRIGGER {table}_version_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION safermap_bump_version()"
            )
    op.execute(LAYER_VIEWS)


def downgrade() -> None:
    # safermap_bump_version() keeps its corrected body: 0001's tables work the same with it.
    op.execute("""
        DROP VIEW IF EXISTS layer_buildings, layer_streets;
        DROP TABLE IF EXISTS building, street;
    """)
