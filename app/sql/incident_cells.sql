-- Incident cells: a per-data-version aggregate of a partnership's incidents on the tile grid, so
-- that a low-zoom tile counts a few hundred rows instead of every incident under it.
--
-- One row per (data set, position kind, tile zoom, cell, category): how many incidents lie in the
-- cell and the sum of their grid positions (for the cell's mean position). The grid is the one the
-- tile SQL draws cells on (app/tiles/sql.py _cells): 16 cells per tile side, numbered on a world
-- grid computed from lon/lat alone, so a cell here is exactly the cell the every-point query puts
-- an incident in. `anon` rows place incidents at their anonymous point (what a caller below
-- 'exact' sees), the others at the real one: both are kept, and which one a caller reads is decided
-- at tile time by the sharing function, as are sensitive categories and suppression.
--
-- The aggregate of a partnership is stamped (incident_cell_build) with the partnership's
-- 'incident' data version it was read at, in the same statement as the incidents themselves. A
-- tile reads it only while that stamp equals the current version (checked in the tile's own
-- snapshot), so a stale aggregate is never drawn: after any change to the partnership's incidents
-- (imports, deletions, new anonymous points) tiles are drawn from every point until it is rebuilt.

-- Rebuild the aggregate of a partnership unless it is already current. Returns the version it now
-- holds, or NULL when another transaction is building it right now (the caller draws from every
-- point meanwhile instead of queueing behind it).
-- (lock_timeout: a build never queues behind a TRUNCATE or DDL, nor deadlocks with one; it fails at
-- once, the tiles stay right, drawn from every point, and the next tile asks again.)
CREATE OR REPLACE FUNCTION safermap_build_incident_cells(p_partnership integer) RETURNS bigint
LANGUAGE plpgsql SET lock_timeout = '200ms' AS $$
DECLARE
    current_version bigint;
    lvl integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('safermap_incident_cells'), p_partnership) THEN
        RETURN NULL;
    END IF;
    -- (each statement below sees what committed before it: a build that just finished is seen)
    IF EXISTS (SELECT 1 FROM incident_cell_build b
               WHERE b.partnership_id = p_partnership
                 AND b.version = coalesce((SELECT v.version FROM data_version v
                                           WHERE v.partnership_id = p_partnership AND v.source = 'incident'), 0)) THEN
        RETURN (SELECT version FROM incident_cell_build WHERE partnership_id = p_partnership);
    END IF;
    DELETE FROM incident_cell WHERE partnership_id = p_partnership;
    -- The finest level (tile zoom 15, 2^19 cells across the world) and the stamp, in one statement:
    -- the incidents and the version they are stamped with come from one snapshot. Points beyond
    -- Web Mercator's latitudes lie in no tile (the every-point query never draws them either).
    WITH v AS (
        SELECT coalesce((SELECT version FROM data_version
                         WHERE partnership_id = p_partnership AND source = 'incident'), 0) AS version
    ), pts AS (
        SELECT i.dataset_id, i.category, a.anon,
               (ST_X(a.g) + 180.0) / 360.0 * 524288 AS gx,
               (0.5 - ln(tan(pi() / 4 + radians(ST_Y(a.g)) / 2)) / (2 * pi())) * 524288 AS gy
        FROM incident i
        CROSS JOIN LATERAL (VALUES (false, i.geom), (true, i.geom_anon)) AS a(anon, g)
        WHERE i.partnership_id = p_partnership AND a.g IS NOT NULL
          AND ST_Y(a.g) BETWEEN -85.0511 AND 85.0511 AND ST_X(a.g) BETWEEN -180 AND 180
    ), added AS (
        INSERT INTO incident_cell (partnership_id, dataset_id, anon, z, x, y, cx, cy, category, n, sx, sy)
        SELECT p_partnership, dataset_id, anon, 15, cx >> 4, cy >> 4, cx, cy, category, count(*), sum(gx), sum(gy)
        FROM (SELECT dataset_id, category, anon, gx, gy, floor(gx)::integer AS cx, floor(gy)::integer AS cy
              FROM pts) AS c
        GROUP BY dataset_id, anon, cx, cy, category
        ORDER BY cx >> 4, cy >> 4  -- a tile's rows together on disk: a tile reads a few pages
    )
    INSERT INTO incident_cell_build (partnership_id, version, built_at)
    SELECT p_partnership, v.version, now() FROM v
    ON CONFLICT (partnership_id) DO UPDATE SET version = EXCLUDED.version, built_at = EXCLUDED.built_at
    RETURNING version INTO current_version;
    -- Each coarser level from the one below it: a cell is its four children (halving a position
    -- sum is exact in floating point, so a cell's mean position is the same as from its points).
    FOR lvl IN REVERSE 14..0 LOOP
        INSERT INTO incident_cell (partnership_id, dataset_id, anon, z, x, y, cx, cy, category, n, sx, sy)
        SELECT p_partnership, dataset_id, anon, lvl, (cx >> 1) >> 4, (cy >> 1) >> 4, cx >> 1, cy >> 1, category,
               sum(n), sum(sx) / 2, sum(sy) / 2
        FROM incident_cell c
        WHERE c.partnership_id = p_partnership AND c.z = lvl + 1
        GROUP BY dataset_id, anon, cx >> 1, cy >> 1, category
        ORDER BY (cx >> 1) >> 4, (cy >> 1) >> 4;
    END LOOP;
    RETURN current_version;
END $$;

-- The cells of one tile a caller may count: the same rules as safermap_visible_incidents (sharing.sql)
-- applied to the aggregate: the data sets and levels from safermap_dataset_levels, the real position
-- at 'exact' and the anonymous one at 'sanitised' and 'aggregate', sensitive categories hidden from
-- roles below their least role. A plain SQL function (one SELECT), so the planner inlines it.
CREATE OR REPLACE FUNCTION safermap_visible_incident_cells(p_partnership integer, p_role text, p_agency integer,
                                                           p_cap text, p_z integer, p_x integer, p_y integer)
RETURNS TABLE (partnership_id integer, dataset_id integer, category text, cx integer, cy integer, n integer,
               sx double precision, sy double precision, level text)
LANGUAGE sql STABLE AS $$
    SELECT c.partnership_id, c.dataset_id, c.category, c.cx, c.cy, c.n, c.sx, c.sy, v.level
    FROM (SELECT * FROM safermap_dataset_levels(p_partnership, p_role, p_agency, p_cap)
          OFFSET 0) AS v  -- a fence: each data set's level is worked out once, not once per cell
    JOIN incident_cell c ON c.partnership_id = v.partnership_id AND c.z = p_z AND c.x = p_x AND c.y = p_y
                        AND c.dataset_id = v.dataset_id AND c.anon = (v.level <> 'exact')
    WHERE v.level IN ('exact', 'sanitised', 'aggregate')
      AND NOT EXISTS (SELECT 1 FROM sensitive_category s
                      WHERE s.partnership_id = c.partnership_id AND s.category = c.category
                        AND safermap_role_rank(p_role) < safermap_role_rank(s.least_role))
$$;

-- The partnerships whose incidents a caller may count but whose aggregate is missing or older than
-- their incidents: a tile drawn from the aggregate is only used when this is empty (read in the
-- tile's own statement, so in the same snapshot as the cells).
CREATE OR REPLACE FUNCTION safermap_stale_incident_cells(p_partnership integer, p_role text, p_agency integer,
                                                         p_cap text)
RETURNS integer[] LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(DISTINCT v.partnership_id), '{}')
    FROM safermap_dataset_levels(p_partnership, p_role, p_agency, p_cap) AS v
    LEFT JOIN incident_cell_build b ON b.partnership_id = v.partnership_id
    WHERE v.level IN ('exact', 'sanitised', 'aggregate')
      AND b.version IS DISTINCT FROM coalesce((SELECT d.version FROM data_version d
                                               WHERE d.partnership_id = v.partnership_id
                                                 AND d.source = 'incident'), 0)
$$;
