-- The walkable street network for pgRouting (route_vertex, route_edge), rebuilt from a partnership's
-- streets by safermap_build_route_network(partnership); the footage path search walks it.
--
-- Ways are split where they share an OpenStreetMap node (a vertex of two or more walkable ways), not
-- wherever two lines cross, so a footbridge over a road does not become a junction. Edge ends are
-- rounded to 1 cm in the partnership's metric CRS to give vertex ids; cost and reverse_cost are the
-- length in metres (walking goes both ways). Each edge keeps its metric geometry (geom_m), and its
-- safety attributes (route_safety.sql) are computed as the network is built.

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
                            lit, highway, name, geom, geom_m)
    SELECT p_partnership, r.street_id, a.id, b.id, ST_Length(r.gm), ST_Length(r.gm), ST_Length(r.gm),
           s.lit, s.highway, s.name, r.geom, r.gm
    FROM _route_piece r
    JOIN street s ON s.id = r.street_id
    JOIN _route_end a ON a.x = r.sx AND a.y = r.sy
    JOIN _route_end b ON b.x = r.ex AND b.y = r.ey;
    GET DIAGNOSTICS n = ROW_COUNT;
    DROP TABLE _route_piece, _route_end;
    PERFORM safermap_refresh_route_safety(p_partnership);
    RETURN n;
END $$;
