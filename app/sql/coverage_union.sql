-- The coverage union: what working (and planned) cameras see, per partnership, and the incidents
-- outside it (the `gaps` layer, app/analysis/gaps.py).
--
-- coverage_union holds kind 'working' (the union of operational cameras' coverage) and 'planned' (the
-- area planned cameras would add to it, disjoint from 'working'). It is tiled on a fixed grid of
-- square cells (250 m) in the partnership's metric CRS: each piece lies in one cell, carries it
-- (cx, cy), and is cut to at most 128 vertices (ST_Subdivide), so point-in-polygon tests and tiles
-- touch few vertices. Pieces of neighbouring cells meet exactly on the grid line, so a point there
-- is inside either and areas add up.
--
-- A camera edit rebuilds only the cells its old and new coverage reach: triggers on camera_coverage
-- (and on a camera's status, which decides the set its coverage belongs to) note where the shapes
-- were and are in coverage_union_dirty, and a deferred trigger rebuilds those cells once per
-- transaction, at commit; an import of thousands of cameras costs one rebuild of the cells it
-- touched. A new metric CRS, a new cell size or no union yet rebuilds every cell.

-- The grid the union is cut on, in metres of the partnership's metric CRS. Small enough that one
-- camera's cells hold little else (a union of a few dozen shapes), large enough that a camera
-- (20-60 m, up to 2 km) reaches only a few cells.
CREATE OR REPLACE FUNCTION safermap_coverage_cell_m() RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 250::double precision $$;

-- Cell (cx, cy) is the square [cx, cx + 1) x [cy, cy + 1) times the cell size, in CRS `crs`.
CREATE OR REPLACE FUNCTION safermap_coverage_cell(cx integer, cy integer, crs integer) RETURNS geometry
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ST_MakeEnvelope(cx * safermap_coverage_cell_m(), cy * safermap_coverage_cell_m(),
                           (cx + 1) * safermap_coverage_cell_m(), (cy + 1) * safermap_coverage_cell_m(), crs)
$$;

-- The cells a shape in the metric CRS may reach: those of its bounding box, which never fails,
-- even on an invalid shape, and at worst names a cell with nothing in it.
CREATE OR REPLACE FUNCTION safermap_coverage_cells_m(m geometry) RETURNS TABLE (cx integer, cy integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT x, y
    FROM generate_series(floor(ST_XMin(m) / safermap_coverage_cell_m())::integer,
                         floor(ST_XMax(m) / safermap_coverage_cell_m())::integer) AS x,
         generate_series(floor(ST_YMin(m) / safermap_coverage_cell_m())::integer,
                         floor(ST_YMax(m) / safermap_coverage_cell_m())::integer) AS y
$$;

-- The same for a shape in EPSG:4326 and the metric CRS `crs`. Only its bounding box is transformed
-- (a few points instead of the whole outline), grown by a metre for the slight curve its edges
-- make in metres over a camera's reach (centimetres at 2 km).
CREATE OR REPLACE FUNCTION safermap_coverage_cells(g geometry, crs integer) RETURNS TABLE (cx integer, cy integer)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT c.cx, c.cy FROM safermap_coverage_cells_m(ST_Expand(ST_Transform(ST_Envelope(g), crs), 1)) AS c
$$;

-- Whether the union matches the cameras as they are, on the partnership's current grid.
CREATE OR REPLACE FUNCTION safermap_coverage_union_fresh(p_partnership integer) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM coverage_union_state s JOIN partnership pa ON pa.id = s.partnership_id
                   WHERE s.partnership_id = p_partnership AND s.srid = pa.srid
                     AND s.cell_m = safermap_coverage_cell_m())
       AND NOT EXISTS (SELECT 1 FROM coverage_union_dirty d WHERE d.partnership_id = p_partnership)
$$;

-- The pieces of the given cells: in each cell, the union of the operational cameras' coverage
-- clipped to the cell, and the planned cameras' minus it, cut to at most 128 vertices. Unions are
-- done in the metric CRS; `repair` runs every shape through ST_MakeValid first.
-- Each shape is transformed once and paired with the wanted cells of its bounding box by their
-- numbers (a hash join), so the plan stays linear whether one cell or every cell is wanted, and
-- whatever the planner believes about a table just filled by an import.
CREATE OR REPLACE FUNCTION safermap_coverage_union_pieces(p_partnership integer, crs integer, xs integer[],
                                                          ys integer[], repair boolean)
RETURNS TABLE (kind text, cx integer, cy integer, piece geometry) LANGUAGE sql STABLE AS $$
    WITH cells AS MATERIALIZED (
        SELECT DISTINCT c.cx, c.cy FROM unnest(xs, ys) AS c(cx, cy)
    ), region AS (
        -- The cells' extent in 4326, where the coverage index is. The grid's straight lines are
        -- slight curves there, so the extent's edges are cut every cell and it is grown by a metre.
        SELECT ST_Transform(ST_Segmentize(ST_Expand(ST_MakeEnvelope(
                   min(cx) * safermap_coverage_cell_m(), min(cy) * safermap_coverage_cell_m(),
                   (max(cx) + 1) * safermap_coverage_cell_m(), (max(cy) + 1) * safermap_coverage_cell_m(), crs),
                   1), safermap_coverage_cell_m()), 4326) AS g
        FROM cells HAVING count(*) > 0
    ), shapes AS MATERIALIZED (
        SELECT c.status,
               CASE WHEN repair THEN ST_MakeValid(ST_Transform(cc.geom, crs)) ELSE ST_Transform(cc.geom, crs) END AS m
        FROM region r
        JOIN camera_coverage cc ON cc.partnership_id = p_partnership AND cc.geom && r.g
        JOIN camera c ON c.id = cc.camera_id AND c.status IN ('operational', 'planned')
    ), pairs AS MATERIALIZED (
        -- materialized: the clip below must only ever run on these pairs, never on every shape
        -- and cell (which a planner that thinks `shapes` is one row would otherwise try)
        SELECT cl.cx, cl.cy, s.status, s.m
        FROM shapes s
        CROSS JOIN LATERAL safermap_coverage_cells_m(s.m) AS b
        JOIN cells cl ON cl.cx = b.cx AND cl.cy = b.cy
    ), clipped AS (
        -- Only the polygonal part of a clip counts (a shape touching the cell gives a line).
        SELECT cx, cy, status,
               ST_CollectionExtract(ST_Intersection(m, safermap_coverage_cell(cx, cy, crs)), 3) AS g
        FROM pairs
    ), sets AS (
        SELECT cx, cy,
               ST_UnaryUnion(ST_Collect(g) FILTER (WHERE status = 'operational')) AS working,
               ST_UnaryUnion(ST_Collect(g) FILTER (WHERE status = 'planned')) AS planned
        FROM clipped WHERE NOT ST_IsEmpty(g)
        GROUP BY cx, cy
    ), kinds AS (
        SELECT s.cx, s.cy, 'working' AS kind, s.working AS g FROM sets s
        UNION ALL
        SELECT s.cx, s.cy, 'planned',
               CASE WHEN s.working IS NULL THEN s.planned ELSE ST_Difference(s.planned, s.working) END
        FROM sets s
    )
    SELECT k.kind, k.cx, k.cy, d.geom
    FROM kinds k
    CROSS JOIN LATERAL ST_Subdivide(ST_CollectionExtract(k.g, 3), 128) AS sub(g)
    CROSS JOIN LATERAL ST_Dump(sub.g) AS d
    WHERE k.g IS NOT NULL AND NOT ST_IsEmpty(k.g) AND ST_Dimension(d.geom) = 2 AND ST_Area(d.geom) > 0
$$;

-- Bring a partnership's union up to date: rebuild its dirty cells, or every cell when the grid
-- changed (a new metric CRS or cell size), there is no union yet, or `p_full` asks for it.
-- Returns the number of pieces written.
CREATE OR REPLACE FUNCTION safermap_refresh_coverage_union(p_partnership integer, p_full boolean DEFAULT false)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    crs   integer;
    whole boolean;
    xs    integer[];
    ys    integer[];
    n     integer;
BEGIN
    SELECT srid INTO crs FROM partnership WHERE id = p_partnership;
    IF crs IS NULL THEN
        RETURN 0;  -- the partnership went in this same transaction
    END IF;
    -- One builder at a time per partnership (two commits touching its cameras at once); the
    -- statements below run after the wait, so they see what the other one committed.
    PERFORM pg_advisory_xact_lock(hashtext('safermap_coverage_union'), p_partnership);
    whole := p_full OR NOT EXISTS (
        SELECT 1 FROM coverage_union_state
        WHERE partnership_id = p_partnership AND srid = crs AND cell_m = safermap_coverage_cell_m());

    -- Take the dirty places (this transaction's and any left committed) and their cells; a whole
    -- rebuild takes them too, and then every cell that working or planned coverage reaches.
    DELETE FROM coverage_union_pending WHERE partnership_id = p_partnership;
    WITH taken AS (
        DELETE FROM coverage_union_dirty WHERE partnership_id = p_partnership RETURNING bbox
    ), cells AS (
        SELECT c.cx, c.cy FROM taken t CROSS JOIN LATERAL safermap_coverage_cells(t.bbox, crs) AS c
        WHERE NOT whole
        UNION
        SELECT c.cx, c.cy
        FROM camera_coverage cc
        JOIN camera cam ON cam.id = cc.camera_id AND cam.status IN ('operational', 'planned')
        CROSS JOIN LATERAL safermap_coverage_cells(cc.geom, crs) AS c
        WHERE whole AND cc.partnership_id = p_partnership
    )
    SELECT coalesce(array_agg(cx ORDER BY cx, cy), '{}'), coalesce(array_agg(cy ORDER BY cx, cy), '{}')
    INTO xs, ys FROM cells;

    IF whole THEN
        DELETE FROM coverage_union WHERE partnership_id = p_partnership;
    ELSE
        DELETE FROM coverage_union u USING unnest(xs, ys) AS c(cx, cy)
        WHERE u.partnership_id = p_partnership AND u.cx = c.cx AND u.cy = c.cy;
    END IF;

    -- A union that GEOS refuses (an invalid shape from elsewhere) is retried on repaired shapes.
    BEGIN
        INSERT INTO coverage_union (partnership_id, kind, cx, cy, geom, geom_m)
        SELECT p_partnership, kind, cx, cy, ST_Transform(piece, 4326), piece
        FROM safermap_coverage_union_pieces(p_partnership, crs, xs, ys, false);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'coverage union of partnership % failed (%), retrying on repaired shapes',
            p_partnership, SQLERRM;
        INSERT INTO coverage_union (partnership_id, kind, cx, cy, geom, geom_m)
        SELECT p_partnership, kind, cx, cy, ST_Transform(piece, 4326), piece
        FROM safermap_coverage_union_pieces(p_partnership, crs, xs, ys, true);
    END;
    GET DIAGNOSTICS n = ROW_COUNT;

    INSERT INTO coverage_union_state AS s (partnership_id, srid, cell_m, built_at, synced_at)
    VALUES (p_partnership, crs, safermap_coverage_cell_m(), now(), now())
    ON CONFLICT (partnership_id) DO UPDATE
        SET srid = EXCLUDED.srid, cell_m = EXCLUDED.cell_m, synced_at = EXCLUDED.synced_at,
            built_at = CASE WHEN whole THEN EXCLUDED.built_at ELSE s.built_at END;
    RETURN n;
END $$;

-- Note where coverage shapes (EPSG:4326, each with its partnership) are as dirty, and their
-- partnerships as pending for this transaction. Nothing is noted for a partnership that is being
-- deleted (its union goes with it).
CREATE OR REPLACE FUNCTION safermap_coverage_note_cells(partnerships integer[], shapes geometry[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO coverage_union_dirty (partnership_id, bbox)
    SELECT pa.id, ST_Envelope(s.g)
    FROM unnest(partnerships, shapes) AS s(partnership_id, g)
    JOIN partnership pa ON pa.id = s.partnership_id;
    INSERT INTO coverage_union_pending (partnership_id)
    SELECT DISTINCT pa.id FROM unnest(partnerships) AS s(partnership_id) JOIN partnership pa ON pa.id = s.partnership_id
    ON CONFLICT DO NOTHING;
END $$;

-- A coverage shape added or removed (one camera at a time: the camera trigger writes them).
CREATE OR REPLACE FUNCTION safermap_coverage_added_or_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM safermap_coverage_note_cells(ARRAY[OLD.partnership_id], ARRAY[OLD.geom]);
    ELSE
        PERFORM safermap_coverage_note_cells(ARRAY[NEW.partnership_id], ARRAY[NEW.geom]);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS camera_coverage_union_cells ON camera_coverage;
CREATE TRIGGER camera_coverage_union_cells AFTER INSERT OR DELETE ON camera_coverage
    FOR EACH ROW EXECUTE FUNCTION safermap_coverage_added_or_removed();

-- Shapes rewritten: the cells each reached before and reaches after. Once per statement, as the
-- line-of-sight refresh rewrites thousands in one; a rewrite with the same shape (nothing new
-- around the camera) changes nothing.
CREATE OR REPLACE FUNCTION safermap_coverage_rewritten() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ps integer[];
    gs geometry[];
BEGIN
    SELECT array_agg(shape.p), array_agg(shape.g) INTO ps, gs
    FROM old_rows o
    JOIN new_rows n ON n.camera_id = o.camera_id
    CROSS JOIN LATERAL (VALUES (o.partnership_id, o.geom), (n.partnership_id, n.geom)) AS shape(p, g)
    WHERE o.geom IS DISTINCT FROM n.geom OR o.partnership_id <> n.partnership_id;
    IF ps IS NOT NULL THEN  -- (the camera trigger's upsert runs this for every new camera too)
        PERFORM safermap_coverage_note_cells(ps, gs);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS camera_coverage_union_cells_update ON camera_coverage;
CREATE TRIGGER camera_coverage_union_cells_update AFTER UPDATE ON camera_coverage
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION safermap_coverage_rewritten();

-- A camera's status (operational, faulty, planned) decides which set its coverage belongs to.
CREATE OR REPLACE FUNCTION safermap_camera_status_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM safermap_coverage_note_cells(ARRAY[cc.partnership_id], ARRAY[cc.geom])
    FROM camera_coverage cc WHERE cc.camera_id = NEW.id;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS camera_union_cells ON camera;
CREATE TRIGGER camera_union_cells AFTER UPDATE OF status ON camera
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION safermap_camera_status_changed();

-- Deferred to commit: bring the union up to date once; later calls in the same commit find it fresh.
CREATE OR REPLACE FUNCTION safermap_coverage_union_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pid integer;
BEGIN
    IF TG_TABLE_NAME = 'partnership' THEN
        pid := NEW.id;
    ELSE
        pid := NEW.partnership_id;
    END IF;
    IF NOT safermap_coverage_union_fresh(pid) THEN
        PERFORM safermap_refresh_coverage_union(pid);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS coverage_union_pending_sync ON coverage_union_pending;
CREATE CONSTRAINT TRIGGER coverage_union_pending_sync AFTER INSERT ON coverage_union_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION safermap_coverage_union_sync();
-- A new metric CRS moves the grid: every cell is rebuilt at commit.
DROP TRIGGER IF EXISTS partnership_coverage_union_sync ON partnership;
CREATE CONSTRAINT TRIGGER partnership_coverage_union_sync AFTER UPDATE OF srid ON partnership
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.srid IS DISTINCT FROM NEW.srid)
    EXECUTE FUNCTION safermap_coverage_union_sync();

-- The incidents of the caller's own partnership, at the caller's level, that can be placed on a
-- map (sanitised or exact) and lie outside every working camera's coverage. Judged at the
-- position the caller is given (an anonymous point below exact), so nothing about an exact
-- location leaks through it. One SELECT over the sharing function: the planner inlines both.
CREATE OR REPLACE FUNCTION safermap_uncovered_incidents(p_partnership integer, p_role text, p_agency integer,
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
