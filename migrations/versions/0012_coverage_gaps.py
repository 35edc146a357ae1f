"""Coverage gaps: the union of what working (and planned) cameras see, kept per partnership, and
the incidents that lie outside it as a sharing function for the `gaps` tile layer.

`coverage_union` holds each partnership's union of coverage, cut into small pieces (ST_Subdivide)
so that point-in-polygon tests and tiles touch only a few vertices each: kind 'working' is the
union of operational cameras' coverage, kind 'planned' the area planned cameras would add to it
(disjoint from 'working'), so working + planned is the coverage once the planned ones are bought.

It is rebuilt once per transaction that changed cameras or coverage, at commit, by a deferred
trigger: a camera import of thousands of rows (one coverage statement per camera, from the row
trigger of 0001/0010) costs one union, not thousands. The state table records the data versions it
was built from, so the first deferred call rebuilds and the others see it is fresh.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE coverage_union (
    id              bigserial PRIMARY KEY,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    kind            text NOT NULL CHECK (kind IN ('working', 'planned')),
    geom            geometry(Polygon, 4326) NOT NULL,
    geom_m          geometry(Polygon) NOT NULL     -- the same piece in the partnership's metric CRS
);
CREATE INDEX coverage_union_geom_idx ON coverage_union USING gist (geom);
CREATE INDEX coverage_union_geom_m_idx ON coverage_union USING gist (geom_m);
CREATE INDEX coverage_union_partnership_idx ON coverage_union (partnership_id, kind);

CREATE TABLE coverage_union_state (
    partnership_id  integer PRIMARY KEY REFERENCES partnership(id) ON DELETE CASCADE,
    built_from      bigint NOT NULL,               -- the camera/coverage data version it reflects
    srid            integer NOT NULL,              -- the metric CRS of geom_m
    built_at        timestamptz NOT NULL DEFAULT now()
);

-- The latest data version of a partnership's cameras and coverage (0 when never changed).
CREATE FUNCTION safermap_camera_data_version(p_partnership integer) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(version), 0) FROM data_version
    WHERE partnership_id = p_partnership AND source IN ('camera', 'camera_coverage')
$$;

-- Whether the union reflects the cameras as they are and the partnership's metric CRS.
CREATE FUNCTION safermap_coverage_union_fresh(p_partnership integer) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM coverage_union_state s JOIN partnership pa ON pa.id = s.partnership_id
                   WHERE s.partnership_id = p_partnership AND s.srid = pa.srid
                     AND s.built_from = safermap_camera_data_version(p_partnership))
$$;

-- (Re)build a partnership's coverage union. Unions are done in the metric CRS; a union that
-- GEOS refuses (an invalid shape from elsewhere) is retried on repaired shapes.
CREATE FUNCTION safermap_refresh_coverage_union(p_partnership integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    crs integer;
    n   integer;
BEGIN
    SELECT srid INTO crs FROM partnership WHERE id = p_partnership;
    IF crs IS NULL THEN
        RETURN 0;  -- the partnership went in this same transaction
    END IF;
    -- one builder at a time per partnership (two commits touching cameras at once)
    PERFORM pg_advisory_xact_lock(hashtext('safermap_coverage_union'), p_partnership);
    DELETE FROM coverage_union WHERE partnership_id = p_partnership;
    BEGIN
        INSERT INTO coverage_union (partnership_id, kind, geom, geom_m)
        SELECT p_partnership, kind, ST_Transform(piece, 4326), piece
        FROM safermap_coverage_union_pieces(p_partnership, crs, false);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'coverage union of partnership % failed (%), retrying on repaired shapes',
            p_partnership, SQLERRM;
        INSERT INTO coverage_union (partnership_id, kind, geom, geom_m)
        SELECT p_partnership, kind, ST_Transform(piece, 4326), piece
        FROM safermap_coverage_union_pieces(p_partnership, crs, true);
    END;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO coverage_union_state (partnership_id, built_from, srid, built_at)
    VALUES (p_partnership, safermap_camera_data_version(p_partnership), crs, now())
    ON CONFLICT (partnership_id) DO UPDATE
        SET built_from = EXCLUDED.built_from, srid = EXCLUDED.srid, built_at = EXCLUDED.built_at;
    RETURN n;
END $$;

-- The pieces: at most 128 vertices each, polygons only.
CREATE FUNCTION safermap_coverage_union_pieces(p_partnership integer, crs integer, repair boolean)
RETURNS TABLE (kind text, piece geometry) LANGUAGE sql STABLE AS $$
    WITH cams AS (
        SELECT c.status,
               CASE WHEN repair THEN ST_MakeValid(ST_Transform(cc.geom, crs))
                    ELSE ST_Transform(cc.geom, crs) END AS g
        FROM camera_coverage cc JOIN camera c ON c.id = cc.camera_id
        WHERE cc.partnership_id = p_partnership AND c.status IN ('operational', 'planned')
    ), working AS (
        SELECT ST_UnaryUnion(ST_Collect(g)) AS g FROM cams WHERE status = 'operational'
    ), planned AS (
        SELECT ST_UnaryUnion(ST_Collect(g)) AS g FROM cams WHERE status = 'planned'
    ), sets AS (
        SELECT 'working' AS kind, w.g FROM working w
        UNION ALL
        SELECT 'planned', CASE WHEN w.g IS NULL THEN p.g ELSE ST_Difference(p.g, w.g) END
        FROM planned p, working w
    )
    SELECT s.kind, d.geom
    FROM sets s
    CROSS JOIN LATERAL ST_Subdivide(ST_CollectionExtract(s.g, 3), 128) AS sub(g)
    CROSS JOIN LATERAL ST_Dump(sub.g) AS d
    WHERE s.g IS NOT NULL AND NOT ST_IsEmpty(s.g) AND ST_Dimension(d.geom) = 2 AND ST_Area(d.geom) > 0
$$;

-- Deferred to commit: rebuild once if the cameras changed since the union was built.
CREATE FUNCTION safermap_coverage_union_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pid integer := CASE WHEN TG_OP = 'DELETE' THEN OLD.partnership_id ELSE NEW.partnership_id END;
BEGIN
    IF NOT safermap_coverage_union_fresh(pid) THEN
        PERFORM safermap_refresh_coverage_union(pid);
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER camera_coverage_union_sync AFTER INSERT OR UPDATE OR DELETE ON camera_coverage
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION safermap_coverage_union_sync();
-- A camera's status (operational, faulty, planned) decides which set its coverage belongs to.
CREATE CONSTRAINT TRIGGER camera_union_sync AFTER INSERT OR UPDATE OR DELETE ON camera
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION safermap_coverage_union_sync();

-- The incidents of the caller's own partnership, at the caller's level, that can be placed on a
-- map (sanitised or exact) and lie outside every working camera's coverage. Judged at the
-- position the caller is given (an anonymous point below exact), so nothing about an exact
-- location leaks through it. One SELECT over the sharing function: the planner inlines both.
CREATE FUNCTION safermap_uncovered_incidents(p_partnership integer, p_role text, p_agency integer,
                                             p_cap text DEFAULT 'exact')
RETURNS TABLE (id bigint, partnership_id integer, dataset_id integer, category text, month date,
               month_label text, geom geometry, location_text text, lsoa_code text, lsoa_name text,
               outcome text, external_ref text, dataset text, level text)
LANGUAGE sql STABLE AS $$
    SELECT v.id, v.partnership_id, v.dataset_id, v.category, v.month, v.month_label, v.geom,
           v.location_text, v.lsoa_code, v.lsoa_name, v.outcome, v.external_ref, v.dataset, v.level
    FROM safermap_visible_incidents(p_partnership, p_role, p_agency, p_cap) AS v
    WHERE v.partnership_id = p_partnership AND v.geom IS NOT NULL AND v.level IN ('sanitised', 'exact')
      AND NOT EXISTS (SELECT 1 FROM coverage_union u
                      WHERE u.partnership_id = p_partnership AND u.kind = 'working'
                        AND ST_Intersects(u.geom, v.geom))
$$;

CREATE VIEW layer_coverage_union AS
SELECT u.id, u.partnership_id, u.geom, u.kind FROM coverage_union u;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for event, ref in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "NEW TABLE AS new_rows"),
                       ("DELETE", "OLD TABLE AS old_rows")):
        op.execute(
            f"CREATE TRIGGER coverage_union_version_{event.lower()} AFTER {event} ON coverage_union "
            f"REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION safermap_bump_version()"
        )
    op.execute("SELECT safermap_refresh_coverage_union(id) FROM partnership")


def downgrade() -> None:
    op.execute("""
        DROP VIEW IF EXISTS layer_coverage_union;
        DROP FUNCTION IF EXISTS safermap_uncovered_incidents(integer, text, integer, text);
        DROP TRIGGER IF EXISTS camera_union_sync ON camera;
        DROP TRIGGER IF EXISTS camera_coverage_union_sync ON camera_coverage;
        DROP FUNCTION IF EXISTS safermap_coverage_union_sync(),
            safermap_refresh_coverage_union(integer),
            safermap_coverage_union_pieces(integer, integer, boolean),
            safermap_coverage_union_fresh(integer), safermap_camera_data_version(integer);
        DROP TABLE IF EXISTS coverage_union_state, coverage_union;
        DELETE FROM data_version WHERE source = 'coverage_union';
    """)
