"""Line-of-sight coverage: a camera's resolution and purpose, the range derived from them (EN 62676-4),
nested quality bands, and a flag saying whether buildings have been applied.

The trigger still draws the plain wedge (or disc) the moment a camera changes, so no path can leave a
camera without coverage; `app.analysis.coverage` then replaces it with the visibility polygon (the
wedge minus what buildings hide) and sets `line_of_sight`. Ranges and band distances are decided
here, in SQL, once: the Python side reads them back from `camera_coverage`.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Frozen history: the current definition of each function and trigger below is in app/sql/ (see 0014).

UPGRADE = r"""
ALTER TABLE camera
    ADD COLUMN resolution_px integer CHECK (resolution_px BETWEEN 160 AND 20000),
    ADD COLUMN purpose text CHECK (purpose IN ('detect', 'observe', 'recognise', 'identify'));

ALTER TABLE camera_coverage
    ADD COLUMN purpose text,
    ADD COLUMN bands jsonb NOT NULL DEFAULT '{}',      -- band name -> distance in metres
    ADD COLUMN line_of_sight boolean NOT NULL DEFAULT false;

-- EN 62676-4 pixel densities, px/m (design brief 6).
CREATE FUNCTION safermap_band_density(band text) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE band WHEN 'detect' THEN 25 WHEN 'observe' THEN 62.5
                     WHEN 'recognise' THEN 125 WHEN 'identify' THEN 250 END::double precision
$$;

-- How far a camera of horizontal resolution `px` and field of view `fov` degrees still gives
-- `density` px/m: W / (D * 2 * tan(f/2)) for a rectilinear lens. At 180 degrees and wider that
-- formula breaks down (a fisheye), so the pixels are spread evenly over the angle: W / (D * f).
CREATE FUNCTION safermap_density_distance(px integer, fov double precision, density double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least(2000, CASE WHEN fov < 180 THEN px / (density * 2 * tan(radians(fov) / 2))
                            ELSE px / (density * radians(fov)) END)
$$;

-- Defaults when a register gives none (design brief 6): a fixed camera sees a 57 degree wedge,
-- a dome or PTZ a disc; a camera whose direction is unknown is drawn as a disc. Range: as given;
-- else from resolution and field of view at the purpose's pixel density (detect when no purpose is
-- given); else 7 m per metre of mounting height (4 m assumed). Any default makes it 'assumed'.
CREATE OR REPLACE FUNCTION safermap_camera_coverage_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    crs       integer;
    eff_fov   double precision;
    eff_range double precision;
    eff_bands jsonb := '{}';
BEGIN
    IF NEW.status = 'decommissioned' THEN
        DELETE FROM camera_coverage WHERE camera_id = NEW.id;
        RETURN NULL;
    END IF;
    SELECT p.srid INTO crs FROM partnership p WHERE p.id = NEW.partnership_id;
    eff_fov := coalesce(NEW.fov, CASE WHEN NEW.camera_type IN ('ptz', 'dome') THEN 360 ELSE 57 END);
    IF NEW.bearing IS NULL THEN eff_fov := 360; END IF;
    IF NEW.resolution_px IS NOT NULL THEN
        SELECT jsonb_object_agg(b, round(least(
                   safermap_density_distance(NEW.resolution_px, eff_fov, safermap_band_density(b)),
                   coalesce(NEW.range_m, 2000))::numeric, 2))
        INTO eff_bands
        FROM unnest(ARRAY['identify', 'recognise', 'observe', 'detect']) AS b;
    END IF;
    eff_range := coalesce(NEW.range_m,
                          (eff_bands ->> coalesce(NEW.purpose, 'detect'))::double precision,
                          7 * coalesce(NULLIF(NEW.height_m, 0), 4));
    INSERT INTO camera_coverage AS cc (camera_id, partnership_id, geom, bearing, fov, range_m, assumed,
                                       purpose, bands, line_of_sight, computed_at)
    VALUES (NEW.id, NEW.partnership_id,
            safermap_coverage_shape(NEW.geom, coalesce(NEW.bearing, 0), eff_fov, eff_range, crs),
            NEW.bearing, eff_fov, eff_range,
            (NEW.range_m IS NULL AND NEW.resolution_px IS NULL) OR (NEW.fov IS NULL AND eff_fov < 360)
              OR (NEW.bearing IS NULL AND NEW.camera_type NOT IN ('ptz', 'dome')),
            NEW.purpose, eff_bands, false, now())
    ON CONFLICT (camera_id) DO UPDATE SET
        geom = EXCLUDED.geom, bearing = EXCLUDED.bearing, fov = EXCLUDED.fov,
        range_m = EXCLUDED.range_m, assumed = EXCLUDED.assumed, purpose = EXCLUDED.purpose,
        bands = EXCLUDED.bands, line_of_sight = false, computed_at = EXCLUDED.computed_at;
    RETURN NULL;
END $$;

DROP TRIGGER camera_coverage_sync ON camera;
CREATE TRIGGER camera_coverage_sync
    AFTER INSERT OR UPDATE OF geom, bearing, fov, range_m, height_m, camera_type, status,
                              resolution_px, purpose ON camera
    FOR EACH ROW EXECUTE FUNCTION safermap_camera_coverage_sync();

-- Nested quality bands of a camera whose resolution is known: the part of its line-of-sight
-- coverage within each band's distance (identify inside recognise inside observe inside detect).
CREATE TABLE camera_coverage_band (
    camera_id       integer NOT NULL REFERENCES camera(id) ON DELETE CASCADE,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    band            text NOT NULL CHECK (band IN ('detect', 'observe', 'recognise', 'identify')),
    distance_m      double precision NOT NULL,
    geom            geometry(Polygon, 4326) NOT NULL,
    PRIMARY KEY (camera_id, band)
);
CREATE INDEX camera_coverage_band_geom_idx ON camera_coverage_band USING gist (geom);

-- Bands are recomputed with the coverage; stale ones go the moment the plain wedge is redrawn.
CREATE FUNCTION safermap_coverage_bands_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM camera_coverage_band b USING new_rows n
    WHERE b.camera_id = n.camera_id AND NOT n.line_of_sight;
    RETURN NULL;
END $$;
CREATE TRIGGER camera_coverage_bands_reset AFTER UPDATE ON camera_coverage
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION safermap_coverage_bands_reset();

DROP VIEW layer_coverage;
CREATE VIEW layer_coverage AS
SELECT cc.camera_id AS id, cc.partnership_id, cc.geom, c.reference, c.name, c.status,
       c.camera_type, cc.bearing, cc.fov, cc.range_m, cc.assumed, a.name AS owner_agency,
       cc.line_of_sight, c.monitored, cc.purpose
FROM camera_coverage cc
JOIN camera c ON c.id = cc.camera_id
LEFT JOIN agency a ON a.id = c.owner_agency_id;

CREATE VIEW layer_coverage_bands AS
SELECT b.camera_id * 4 + array_position(ARRAY['identify', 'recognise', 'observe', 'detect'], b.band) AS id,
       b.camera_id, b.partnership_id, b.geom, b.band, b.distance_m, c.reference, c.status,
       cc.assumed, a.name AS owner_agency
FROM camera_coverage_band b
JOIN camera c ON c.id = b.camera_id
JOIN camera_coverage cc ON cc.camera_id = b.camera_id
LEFT JOIN agency a ON a.id = c.owner_agency_id;

DROP VIEW layer_cameras;
CREATE VIEW layer_cameras AS
SELECT c.id, c.partnership_id, c.geom, c.reference, c.name, a.name AS owner_agency, c.camera_type,
       c.status, c.bearing, c.fov, c.range_m, c.height_m, c.monitored, c.retention_days,
       to_char(c.verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS verified_at,
       c.version, c.source, c.resolution_px, c.purpose, cc.assumed AS coverage_assumed
FROM camera c LEFT JOIN agency a ON a.id = c.owner_agency_id
LEFT JOIN camera_coverage cc ON cc.camera_id = c.id;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    for event, ref in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "NEW TABLE AS new_rows"),
                       ("DELETE", "OLD TABLE AS old_rows")):
        op.execute(
            f"CREATE TRIGGER camera_coverage_band_version_{event.lower()} AFTER {event} ON camera_coverage_band "
            f"REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION safermap_bump_version()"
        )


def downgrade() -> None:
    _restore_sync_function()
    op.execute("""
        DROP VIEW IF EXISTS layer_coverage_bands;
        DROP VIEW layer_coverage;
        CREATE VIEW layer_coverage AS
        SELECT cc.camera_id AS id, cc.partnership_id, cc.geom, c.reference, c.name, c.status,
               c.camera_type, cc.bearing, cc.fov, cc.range_m, cc.assumed, a.name AS owner_agency
        FROM camera_coverage cc
        JOIN camera c ON c.id = cc.camera_id
        LEFT JOIN agency a ON a.id = c.owner_agency_id;
        DROP VIEW layer_cameras;
        CREATE VIEW layer_cameras AS
        SELECT c.id, c.partnership_id, c.geom, c.reference, c.name, a.name AS owner_agency, c.camera_type,
               c.status, c.bearing, c.fov, c.range_m, c.height_m, c.monitored, c.retention_days,
               to_char(c.verified_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS verified_at,
               c.version, c.source
        FROM camera c LEFT JOIN agency a ON a.id = c.owner_agency_id;
        DROP TABLE camera_coverage_band;
        DROP TRIGGER camera_coverage_bands_reset ON camera_coverage;
        DROP FUNCTION safermap_coverage_bands_reset();
        ALTER TABLE camera_coverage DROP COLUMN purpose, DROP COLUMN bands, DROP COLUMN line_of_sight;
        ALTER TABLE camera DROP COLUMN resolution_px, DROP COLUMN purpose;
        DROP FUNCTION safermap_density_distance(integer, double precision, double precision),
            safermap_band_density(text);
    """)


def _restore_sync_function() -> None:
    # 0001's body of the sync function (without resolution, purpose and bands), and its trigger.
    op.execute("""
        CREATE OR REPLACE FUNCTION safermap_camera_coverage_sync() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            crs integer; eff_fov double precision; eff_range double precision;
        BEGIN
            IF NEW.status = 'decommissioned' THEN
                DELETE FROM camera_coverage WHERE camera_id = NEW.id;
                RETURN NULL;
            END IF;
            SELECT p.srid INTO crs FROM partnership p WHERE p.id = NEW.partnership_id;
            eff_fov := coalesce(NEW.fov, CASE WHEN NEW.camera_type IN ('ptz', 'dome') THEN 360 ELSE 57 END);
            IF NEW.bearing IS NULL THEN eff_fov := 360; END IF;
            eff_range := coalesce(NEW.range_m, 7 * coalesce(NULLIF(NEW.height_m, 0), 4));
            INSERT INTO camera_coverage AS cc (camera_id, partnership_id, geom, bearing, fov, range_m, assumed, computed_at)
            VALUES (NEW.id, NEW.partnership_id,
                    safermap_coverage_shape(NEW.geom, coalesce(NEW.bearing, 0), eff_fov, eff_range, crs),
                    NEW.bearing, eff_fov, eff_range,
                    NEW.range_m IS NULL OR (NEW.fov IS NULL AND eff_fov < 360)
                      OR (NEW.bearing IS NULL AND NEW.camera_type NOT IN ('ptz', 'dome')),
                    now())
            ON CONFLICT (camera_id) DO UPDATE SET
                geom = EXCLUDED.geom, bearing = EXCLUDED.bearing, fov = EXCLUDED.fov,
                range_m = EXCLUDED.range_m, assumed = EXCLUDED.assumed, computed_at = EXCLUDED.computed_at;
            RETURN NULL;
        END $$;
        DROP TRIGGER camera_coverage_sync ON camera;
        CREATE TRIGGER camera_coverage_sync
            AFTER INSERT OR UPDATE OF geom, bearing, fov, range_m, height_m, camera_type, status ON camera
            FOR EACH ROW EXECUTE FUNCTION safermap_camera_coverage_sync();
    """)
