"""Safe walking routes: safety attributes on the walkable network's segments, the OSM tags and parks
routing reads, a council street-lamp register, and published routes with their tile layer.

- `street.tags`: the OSM tags of a street that routing reads (opening_hours, access, foot, ...).
- `park`: OpenStreetMap parks (leisure=park) with their name and opening_hours.
- `street_lamp`: a council's lamp register (points); a segment is lit where lamps stand near it.
- `route_edge` gains its metric geometry (`geom_m`) and its safety attributes in metres
  (`covered_m`, `monitored_m`, `lamp_m`), its park and its opening hours; app/sql/route_safety.sql
  keeps them up to date, incrementally, after coverage, lamp and park changes.
- `route_published`: named routes an analyst saves, drawn by the `safe_routes` layer
  (view `layer_safe_routes`), their figures refreshed when coverage or incidents change.

Revision ID: 0016
Revises: 0014 (the lead re-chains it after 0015 on merge)
Create Date: 2026-12-04
"""
from alembic import op

from app import sql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

LOADS_SQL = {
    "versions": "3da99ce14c8b0d58",       # data versions for the new tables and route_edge
    "routing": "e70b63dd1d91172e",
    "route_safety": "bfedb0f0ef596e11",
}

UPGRADE = r"""
ALTER TABLE street ADD COLUMN tags jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE TABLE park (
    id              bigserial PRIMARY KEY,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    osm_id          bigint,
    name            text,
    opening_hours   text,           -- the OSM value as tagged
    geom            geometry(MultiPolygon, 4326) NOT NULL
);
CREATE INDEX park_geom_idx ON park USING gist (geom);
CREATE INDEX park_partnership_idx ON park (partnership_id);

CREATE TABLE street_lamp (
    id              bigserial PRIMARY KEY,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    reference       text,
    geom            geometry(Point, 4326) NOT NULL
);
CREATE INDEX street_lamp_geom_idx ON street_lamp USING gist (geom);
CREATE INDEX street_lamp_partnership_idx ON street_lamp (partnership_id);

ALTER TABLE route_edge
    ADD COLUMN geom_m geometry(LineString),      -- the same line in the partnership's metric CRS
    ADD COLUMN covered_m double precision NOT NULL DEFAULT 0,
    ADD COLUMN monitored_m double precision NOT NULL DEFAULT 0,
    ADD COLUMN lamp_m double precision NOT NULL DEFAULT 0,
    ADD COLUMN park_id bigint REFERENCES park(id) ON DELETE SET NULL,
    ADD COLUMN opening_hours text;
CREATE INDEX route_edge_geom_m_idx ON route_edge USING gist (geom_m);

-- No primary key (two transactions noting one place must not wait on each other).
CREATE TABLE route_safety_dirty (
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    bbox            geometry(Geometry, 4326) NOT NULL
);
CREATE INDEX route_safety_dirty_partnership_idx ON route_safety_dirty (partnership_id);

CREATE TABLE route_safety_pending (
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    xact            bigint NOT NULL DEFAULT txid_current(),
    PRIMARY KEY (partnership_id, xact)
);

CREATE TABLE route_published (
    id              serial PRIMARY KEY,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    profile         text NOT NULL CHECK (profile IN ('safest', 'shortest')),
    max_detour      double precision NOT NULL CHECK (max_detour >= 1 AND max_detour <= 3),
    time_of_day     text NOT NULL CHECK (time_of_day IN ('day', 'night')),
    from_geom       geometry(Point, 4326) NOT NULL,
    to_geom         geometry(Point, 4326) NOT NULL,
    geom            geometry(LineString, 4326) NOT NULL,
    length_m        double precision NOT NULL,
    camera_share    double precision NOT NULL,
    lit_share       double precision NOT NULL,
    incidents_near  integer,        -- as an embed sees them; shown only from suppress_below up
    suppress_below  integer NOT NULL,
    explanation     text NOT NULL DEFAULT '',
    created_by      integer REFERENCES principal(id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    evaluated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX route_published_geom_idx ON route_published USING gist (geom);
CREATE INDEX route_published_partnership_idx ON route_published (partnership_id);

-- What the safe_routes layer draws: whole per cent and minutes, small incident counts held back.
CREATE VIEW layer_safe_routes AS
SELECT r.id, r.partnership_id, r.geom, r.name, r.profile, r.time_of_day,
       round(r.length_m)::integer AS length_m,
       round(r.camera_share * 100)::integer AS camera_pct,
       round(r.lit_share * 100)::integer AS lit_pct,
       CASE WHEN r.incidents_near > 0 AND r.incidents_near < r.suppress_below THEN NULL
            ELSE r.incidents_near END AS incidents_near,
       r.explanation
FROM route_published r;
"""

DOWNGRADE = r"""
DROP VIEW IF EXISTS layer_safe_routes;
DROP TRIGGER IF EXISTS route_edge_version_insert ON route_edge;
DROP TRIGGER IF EXISTS route_edge_version_update ON route_edge;
DROP TRIGGER IF EXISTS route_edge_version_delete ON route_edge;
DROP TRIGGER IF EXISTS coverage_union_route_insert ON coverage_union;
DROP TRIGGER IF EXISTS coverage_union_route_delete ON coverage_union;
DROP TRIGGER IF EXISTS camera_route_monitored ON camera;
DO $$
DECLARE
    t  text;
    ev text;
BEGIN
    FOREACH t IN ARRAY ARRAY['incident', 'dataset', 'sharing_rule', 'sensitive_category'] LOOP
        FOREACH ev IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_route_' || ev, t);
        END LOOP;
    END LOOP;
END $$;
-- Tables before functions: their triggers go with them.
DROP TABLE IF EXISTS route_published, route_safety_pending, route_safety_dirty;
DROP INDEX IF EXISTS route_edge_geom_m_idx;
ALTER TABLE route_edge DROP COLUMN IF EXISTS geom_m, DROP COLUMN IF EXISTS covered_m,
    DROP COLUMN IF EXISTS monitored_m, DROP COLUMN IF EXISTS lamp_m, DROP COLUMN IF EXISTS park_id,
    DROP COLUMN IF EXISTS opening_hours;
DROP TABLE IF EXISTS street_lamp, park;
ALTER TABLE street DROP COLUMN IF EXISTS tags;
DROP FUNCTION IF EXISTS safermap_route_safety_sync(), safermap_route_incidents_changed(),
    safermap_route_places_changed(), safermap_route_camera_monitored(), safermap_route_coverage_changed(),
    safermap_route_note(integer[], geometry[]), safermap_refresh_published_routes(integer),
    safermap_route_safety_update(integer, integer, geometry, boolean),
    safermap_refresh_route_safety(integer, geometry),
    safermap_route_incident_since(integer, text, integer, text), safermap_route_near_m(),
    safermap_route_lamp_reach_m();
"""

# routing.sql as it was before this revision (frozen), for the downgrade: the network builder
# without geom_m and the safety attributes.
ROUTING_BEFORE = r"""
-- The walkable street network for pgRouting (route_vertex, route_edge), rebuilt from a partnership's
-- streets by safermap_build_route_network(partnership); the footage path search walks it.
--
-- Ways are split where they share an OpenStreetMap node (a vertex of two or more walkable ways), not
-- wherever two lines cross, so a footbridge over a road does not become a junction. Edge ends are
-- rounded to 1 cm in the partnership's metric CRS to give vertex ids; cost and reverse_cost are the
-- length in metres (walking goes both ways).

-- The highway classes a person may walk along (motorways and trunk roads are not among them).
CREATE OR REPLACE FUNCTION safermap_walkable(highway text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT highway IN ('footway', 'path', 'pedestrian', 'residential', 'service', 'living_street',
                       'steps', 'cycleway', 'unclassified', 'tertiary', 'secondary', 'primary',
                       'track', 'tertiary_link', 'secondary_link', 'primary_link', 'bridleway',
                       'corridor', 'road', 'trail')
$$;

-- (Re)build a partnership's network from its streets; returns the number of edges.
CREATE OR REPLACE FUNCTION safermap_build_route_network(p_partnership integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    crs integer;
    n   integer;
BEGIN
    SELECT srid INTO crs FROM partnership WHERE id = p_partnership;
    IF crs IS NULL THEN
        RAISE EXCEPTION 'no partnership %', p_partnership USING ERRCODE = 'no_data_found';
    END IF;
    DELETE FROM route_edge WHERE partnership_id = p_partnership;
    DELETE FROM route_vertex WHERE partnership_id = p_partnership;

    CREATE TEMP TABLE _route_piece ON COMMIT DROP AS
    WITH walk AS (
        SELECT id, geom FROM street
        WHERE partnership_id = p_partnership AND safermap_walkable(highway)
    ), pts AS (
        SELECT w.id, ST_X(d.geom) AS x, ST_Y(d.geom) AS y
        FROM walk w CROSS JOIN LATERAL ST_DumpPoints(w.geom) AS d
    ), shared AS (  -- a node of two or more ways (or twice in one way): a junction
        SELECT x, y FROM pts GROUP BY x, y HAVING count(*) > 1
    ), blades AS MATERIALIZED (
        SELECT p.id, ST_SetSRID(ST_Collect(ST_MakePoint(p.x, p.y)), 4326) AS blade
        FROM pts p JOIN shared s USING (x, y) GROUP BY p.id
    )
    SELECT w.id AS street_id, ST_Transform(d.geom, crs) AS gm, d.geom AS geom
    FROM walk w LEFT JOIN blades b USING (id)
    CROSS JOIN LATERAL ST_Dump(CASE WHEN b.blade IS NULL THEN w.geom
                                    ELSE ST_Split(w.geom, b.blade) END) AS d
    WHERE d.geom IS NOT NULL AND ST_GeometryType(d.geom) = 'ST_LineString';
    DELETE FROM _route_piece WHERE ST_Length(gm) = 0;
    -- Each end as whole centimetres of the metric CRS: equal keys are one vertex.
    ALTER TABLE _route_piece ADD COLUMN sx bigint, ADD COLUMN sy bigint, ADD COLUMN ex bigint,
                             ADD COLUMN ey bigint;
    UPDATE _route_piece SET sx = round(ST_X(ST_StartPoint(gm)) * 100), sy = round(ST_Y(ST_StartPoint(gm)) * 100),
                            ex = round(ST_X(ST_EndPoint(gm)) * 100), ey = round(ST_Y(ST_EndPoint(gm)) * 100);

    CREATE TEMP TABLE _route_end ON COMMIT DROP AS
    SELECT nextval(pg_get_serial_sequence('route_vertex', 'id')) AS id, x, y FROM (
        SELECT DISTINCT x, y FROM (
            SELECT sx AS x, sy AS y FROM _route_piece UNION ALL SELECT ex, ey FROM _route_piece
        ) AS e
    ) AS d;
    ANALYZE _route_piece;
    ANALYZE _route_end;
    INSERT INTO route_vertex (id, partnership_id, geom)
    SELECT id, p_partnership, ST_Transform(ST_SetSRID(ST_MakePoint(x / 100.0, y / 100.0), crs), 4326)
    FROM _route_end;

    INSERT INTO route_edge (partnership_id, street_id, source, target, cost, reverse_cost, length_m,
                            lit, highway, name, geom)
    SELECT p_partnership, r.street_id, a.id, b.id, ST_Length(r.gm), ST_Length(r.gm), ST_Length(r.gm),
           s.lit, s.highway, s.name, r.geom
    FROM _route_piece r
    JOIN street s ON s.id = r.street_id
    JOIN _route_end a ON a.x = r.sx AND a.y = r.sy
    JOIN _route_end b ON b.x = r.ex AND b.y = r.ey;
    GET DIAGNOSTICS n = ROW_COUNT;
    DROP TABLE _route_piece, _route_end;
    RETURN n;
END $$;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    sql.apply(op.get_bind(), *LOADS_SQL)
    # Networks built before: their metric lines and safety attributes.
    op.execute("""
        UPDATE route_edge e SET geom_m = ST_Transform(e.geom, p.srid)
        FROM partnership p WHERE p.id = e.partnership_id;
        SELECT safermap_refresh_route_safety(p.id) FROM partnership p
        WHERE EXISTS (SELECT 1 FROM route_edge e WHERE e.partnership_id = p.id);
    """)


def downgrade() -> None:
    op.execute(DOWNGRADE)
    op.execute(ROUTING_BEFORE)
