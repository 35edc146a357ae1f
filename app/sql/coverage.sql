-- A camera's plain coverage: THE one definition of what a camera is taken to see before buildings
-- are applied, used by the camera trigger (camera_coverage), by footage lookups for cameras
-- decommissioned since (app/analysis/footage.py), and through app/analysis/camera_rule.py by the
-- capture page's live preview.
--
-- The rule (design brief 6). Field of view: `fov` when given, else the camera type's default (a fixed
-- camera 57 degrees, a dome or PTZ a disc); a camera whose direction is unknown is drawn as a disc.
-- Range: `range_m` when given; else, when the horizontal resolution is known, the distance at which
-- the camera still gives its purpose's pixel density (EN 62676-4: W / (D * 2 * tan(f/2)); at 180
-- degrees and wider, a fisheye, W / (D * f); 'detect' when no purpose is given); else 7 m per metre of
-- mounting height (4 m assumed). Any value taken from these defaults makes the coverage `assumed`.
-- app/analysis/coverage.py then cuts the plain wedge to line of sight and the bands from it.
--
-- The numbers live in safermap_camera_rule() only; the functions below read them from there.

-- The rule's numbers, as JSON for the pages that draw a preview from them.
CREATE OR REPLACE FUNCTION safermap_camera_rule() RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_object(
        'fov_deg_by_type', jsonb_build_object('fixed', 57, 'anpr', 57, 'redeployable', 57,
                                              'dome', 360, 'ptz', 360),
        'range_m_per_height_m', 7,
        'assumed_height_m', 4,
        -- EN 62676-4 pixel densities, px/m, by purpose (each band's distance)
        'density_px_per_m', jsonb_build_object('detect', 25, 'observe', 62.5, 'recognise', 125,
                                               'identify', 250),
        'purpose_when_unknown', 'detect',
        'fisheye_from_fov_deg', 180,
        'max_range_m', 2000)
$$;

-- The pixel density of a band (purpose), px/m; NULL for an unknown one.
CREATE OR REPLACE FUNCTION safermap_band_density(band text) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (safermap_camera_rule() -> 'density_px_per_m' ->> band)::double precision
$$;

-- How far a camera of horizontal resolution `px` and field of view `fov` degrees still gives
-- `density` px/m: W / (D * 2 * tan(f/2)) for a rectilinear lens. At 180 degrees and wider that
-- formula breaks down (a fisheye), so the pixels are spread evenly over the angle: W / (D * f).
CREATE OR REPLACE FUNCTION safermap_density_distance(px integer, fov double precision, density double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT least((safermap_camera_rule() ->> 'max_range_m')::double precision,
                 CASE WHEN fov < (safermap_camera_rule() ->> 'fisheye_from_fov_deg')::double precision
                      THEN px / (density * 2 * tan(radians(fov) / 2))
                      ELSE px / (density * radians(fov)) END)
$$;

-- The coverage shape of a camera: a wedge of `fov` degrees centred on `bearing` (clockwise from
-- north), or a disc when fov is 360, drawn in the partnership's metric CRS and returned in WGS84.
CREATE OR REPLACE FUNCTION safermap_coverage_shape(pt geometry, bearing double precision, fov double precision,
                                                   range_m double precision, srid integer)
RETURNS geometry LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ST_Transform(
        CASE WHEN fov >= 360 THEN ST_Buffer(p.g, range_m, 16)
        ELSE ST_MakePolygon(ST_MakeLine(
            ARRAY[p.g]
            || ARRAY(SELECT ST_Translate(p.g,
                         range_m * sin(radians(bearing - fov / 2 + fov * i / n.steps)),
                         range_m * cos(radians(bearing - fov / 2 + fov * i / n.steps)))
                     FROM generate_series(0, n.steps) AS i)
            || ARRAY[p.g]))
        END, 4326)
    FROM (SELECT ST_Transform(pt, srid) AS g) AS p,
         (SELECT greatest(4, ceil(fov / 4))::int AS steps) AS n
$$;

-- A camera's plain coverage from its register values (any of them NULL when not known): the wedge
-- or disc in WGS84 (for a camera at `p_geom`, drawn in metric CRS `p_srid`), the field of view and
-- range it was drawn with, the distance of each quality band (only with a resolution; none beyond
-- a given range), and whether any of it came from defaults. One SELECT: inlined where it is used,
-- and the rule's numbers folded into constants when the plan is made.
CREATE OR REPLACE FUNCTION safermap_plain_coverage(
    p_geom geometry, p_srid integer, p_camera_type text, p_bearing double precision, p_fov double precision,
    p_range_m double precision, p_height_m double precision, p_resolution_px integer, p_purpose text)
RETURNS TABLE (geom geometry, fov double precision, range_m double precision, bands jsonb, assumed boolean)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT safermap_coverage_shape(p_geom, coalesce(p_bearing, 0), f.fov, rg.range_m, p_srid),
           f.fov, rg.range_m, b.bands,
           (p_range_m IS NULL AND p_resolution_px IS NULL)     -- range from the mounting height
             OR (p_fov IS NULL AND f.fov < 360)                -- the type's default angle
             OR (p_bearing IS NULL AND t.type_fov < 360)       -- a wedge camera of unknown direction
    FROM (SELECT safermap_camera_rule() AS j) AS r
    -- an unknown type (none passes the camera table's check) is taken as fixed
    CROSS JOIN LATERAL (SELECT coalesce((r.j -> 'fov_deg_by_type' ->> p_camera_type)::double precision,
                                        (r.j -> 'fov_deg_by_type' ->> 'fixed')::double precision) AS type_fov) AS t
    CROSS JOIN LATERAL (SELECT CASE WHEN p_bearing IS NULL THEN 360
                                    ELSE coalesce(p_fov, t.type_fov) END AS fov) AS f
    -- each band's distance, with a resolution (OFFSET 0 fences it: worked out once, not for each use)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN p_resolution_px IS NULL THEN '{}'::jsonb ELSE (
                   SELECT jsonb_object_agg(d.key, round(least(
                              safermap_density_distance(p_resolution_px, f.fov, d.value::double precision),
                              coalesce(p_range_m, (r.j ->> 'max_range_m')::double precision))::numeric, 2))
                   FROM jsonb_each_text(r.j -> 'density_px_per_m') AS d) END AS bands
        OFFSET 0) AS b
    CROSS JOIN LATERAL (SELECT coalesce(
        p_range_m,
        (b.bands ->> coalesce(p_purpose, r.j ->> 'purpose_when_unknown'))::double precision,
        (r.j ->> 'range_m_per_height_m')::double precision
          * coalesce(nullif(p_height_m, 0), (r.j ->> 'assumed_height_m')::double precision)) AS range_m) AS rg
$$;

-- The trigger: a camera's plain coverage is redrawn the moment anything it depends on changes, so no
-- path can leave a camera without coverage; a decommissioned camera covers nothing. Redrawing
-- resets line_of_sight (app/analysis/coverage.py cuts it again) and the bands (below).
CREATE OR REPLACE FUNCTION safermap_camera_coverage_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'decommissioned' THEN
        DELETE FROM camera_coverage WHERE camera_id = NEW.id;
        RETURN NULL;
    END IF;
    INSERT INTO camera_coverage AS cc (camera_id, partnership_id, geom, bearing, fov, range_m, assumed,
                                       purpose, bands, line_of_sight, computed_at)
    SELECT NEW.id, NEW.partnership_id, pc.geom, NEW.bearing, pc.fov, pc.range_m, pc.assumed,
           NEW.purpose, pc.bands, false, now()
    FROM partnership p
    CROSS JOIN LATERAL safermap_plain_coverage(NEW.geom, p.srid, NEW.camera_type, NEW.bearing, NEW.fov,
                                               NEW.range_m, NEW.height_m, NEW.resolution_px, NEW.purpose) AS pc
    WHERE p.id = NEW.partnership_id
    ON CONFLICT (camera_id) DO UPDATE SET
        geom = EXCLUDED.geom, bearing = EXCLUDED.bearing, fov = EXCLUDED.fov,
        range_m = EXCLUDED.range_m, assumed = EXCLUDED.assumed, purpose = EXCLUDED.purpose,
        bands = EXCLUDED.bands, line_of_sight = false, computed_at = EXCLUDED.computed_at;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS camera_coverage_sync ON camera;
CREATE TRIGGER camera_coverage_sync
    AFTER INSERT OR UPDATE OF geom, bearing, fov, range_m, height_m, camera_type, status,
                              resolution_px, purpose ON camera
    FOR EACH ROW EXECUTE FUNCTION safermap_camera_coverage_sync();

-- Bands are recomputed with the coverage; stale ones go the moment the plain wedge is redrawn.
CREATE OR REPLACE FUNCTION safermap_coverage_bands_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM camera_coverage_band b USING new_rows n
    WHERE b.camera_id = n.camera_id AND NOT n.line_of_sight;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS camera_coverage_bands_reset ON camera_coverage;
CREATE TRIGGER camera_coverage_bands_reset AFTER UPDATE ON camera_coverage
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION safermap_coverage_bands_reset();
