-- Safety attributes of the walkable network's segments (route_edge), and the published safe routes.
--
-- What a segment offers a person walking it that does not depend on who asks is kept on the
-- segment itself, in metres of its length (so part-way pieces of a segment get their share):
--   covered_m    inside working cameras' coverage (coverage_union, kind 'working': line of sight);
--   monitored_m  inside the coverage of operational cameras that are live-monitored;
--   lamp_m       within safermap_route_lamp_reach_m() of a lamp of the council's register;
--   park_id      the park the segment runs through (its midpoint), and opening_hours: the segment's
--                own OSM opening_hours, else its park's.
-- Incident risk is NOT kept here: it depends on who asks (sharing rules, sensitive categories,
-- anonymous points), so app/analysis/routing_risk.py derives it per caller through
-- safermap_visible_incidents.
--
-- Kept up to date incrementally: a change of coverage (the union's pieces are rewritten cell by
-- cell at commit), of a camera's monitored flag, of lamps or of parks notes the places it touched
-- in route_safety_dirty; a deferred trigger then recomputes only the segments there, once per
-- transaction, at commit (after the coverage union's own deferred rebuild, which queues it). A
-- rebuilt network (safermap_build_route_network) recomputes every segment.
--
-- Published routes (route_published) keep figures that are refreshed by the same deferred trigger
-- when coverage or incidents change: the share under working cameras and the incidents near them,
-- counted as the least-privileged reader of the `safe_routes` layer sees them (an embed: data sets'
-- default levels, capped at anonymous points, sensitive categories held back).
--
-- route_edge, park, street_lamp and route_published carry data versions (versions.sql), which name
-- the route caches (app/analysis/routing_graph.py) and the safe_routes tiles.

-- Lamps light a segment this far along either side of them (metres).
CREATE OR REPLACE FUNCTION safermap_route_lamp_reach_m() RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 25::double precision $$;

-- Incidents this close to a route count as near it (metres).
CREATE OR REPLACE FUNCTION safermap_route_near_m() RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 25::double precision $$;

-- The first month of the 12-month window that incident figures use: the 12 months ending with the
-- latest month this caller sees any placed incident of the partnership in (police.uk publishes a
-- month or two late, so "now" would often be an empty month). NULL when there are none.
CREATE OR REPLACE FUNCTION safermap_route_incident_since(p_partnership integer, p_role text, p_agency integer,
                                                         p_cap text)
RETURNS date LANGUAGE sql STABLE AS $$
    SELECT (max(v.month) - interval '11 months')::date
    FROM safermap_visible_incidents(p_partnership, p_role, p_agency, p_cap) AS v
    WHERE v.partnership_id = p_partnership AND v.geom IS NOT NULL AND v.level IN ('sanitised', 'exact')
$$;

-- Recompute the safety attributes of a partnership's segments: those whose metric geometry meets
-- `p_box` (a box in the metric CRS), or all of them when it is NULL. Returns the number of segments.
-- A union or intersection that GEOS refuses (an invalid shape from elsewhere) is retried on repaired
-- shapes, so a camera edit's commit never fails here.
CREATE OR REPLACE FUNCTION safermap_refresh_route_safety(p_partnership integer, p_box geometry DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    crs integer;
    n   integer;
BEGIN
    SELECT srid INTO crs FROM partnership WHERE id = p_partnership;
    IF crs IS NULL THEN
        RETURN 0;
    END IF;
    BEGIN
        n := safermap_route_safety_update(p_partnership, crs, p_box, false);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'route safety of partnership % failed (%), retrying on repaired shapes',
            p_partnership, SQLERRM;
        n := safermap_route_safety_update(p_partnership, crs, p_box, true);
    END;
    RETURN n;
END $$;

CREATE OR REPLACE FUNCTION safermap_route_safety_update(p_partnership integer, crs integer, p_box geometry,
                                                        repair boolean)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    WITH seg AS MATERIALIZED (
        SELECT e.id, e.geom, e.geom_m, e.street_id
        FROM route_edge e
        WHERE e.partnership_id = p_partnership AND e.geom_m IS NOT NULL
          AND (p_box IS NULL OR e.geom_m && ST_SetSRID(p_box, crs))
    ), attrs AS (
        SELECT s.id,
            coalesce((SELECT ST_Length(ST_Intersection(s.geom_m, ST_Union(
                          CASE WHEN repair THEN ST_MakeValid(u.geom_m) ELSE u.geom_m END)))
                      FROM coverage_union u
                      WHERE u.partnership_id = p_partnership AND u.kind = 'working'
                        AND u.geom_m && s.geom_m AND ST_SRID(u.geom_m) = crs), 0) AS covered_m,
            coalesce((SELECT ST_Length(ST_Intersection(s.geom_m, ST_Union(
                          CASE WHEN repair THEN ST_MakeValid(ST_Transform(cc.geom, crs))
                               ELSE ST_Transform(cc.geom, crs) END)))
                      FROM camera_coverage cc
                      JOIN camera c ON c.id = cc.camera_id AND c.status = 'operational' AND c.monitored
                      WHERE cc.partnership_id = p_partnership AND cc.geom && s.geom), 0) AS monitored_m,
            coalesce((SELECT ST_Length(ST_Intersection(s.geom_m, ST_Union(
                          ST_Buffer(ST_Transform(l.geom, crs), safermap_route_lamp_reach_m(), 8))))
                      FROM street_lamp l
                      WHERE l.partnership_id = p_partnership
                        AND ST_DWithin(ST_Transform(l.geom, crs), s.geom_m, safermap_route_lamp_reach_m())
                        AND l.geom && ST_Expand(s.geom, 0.001)), 0) AS lamp_m,
            (SELECT pk.id FROM park pk
             WHERE pk.partnership_id = p_partnership AND ST_Intersects(pk.geom, ST_LineInterpolatePoint(s.geom, 0.5))
             ORDER BY ST_Area(pk.geom), pk.id LIMIT 1) AS park_id,
            (SELECT nullif(st.tags ->> 'opening_hours', '') FROM street st WHERE st.id = s.street_id) AS own_hours
        FROM seg s
    )
    UPDATE route_edge e
    SET covered_m = least(a.covered_m, e.length_m), monitored_m = least(a.monitored_m, e.length_m),
        lamp_m = least(a.lamp_m, e.length_m), park_id = a.park_id,
        opening_hours = coalesce(a.own_hours, (SELECT nullif(pk.opening_hours, '') FROM park pk WHERE pk.id = a.park_id))
    FROM attrs a
    WHERE e.id = a.id
      AND (e.covered_m, e.monitored_m, e.lamp_m, e.park_id, e.opening_hours) IS DISTINCT FROM
          (least(a.covered_m, e.length_m), least(a.monitored_m, e.length_m), least(a.lamp_m, e.length_m),
           a.park_id, coalesce(a.own_hours, (SELECT nullif(pk.opening_hours, '') FROM park pk WHERE pk.id = a.park_id)));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Refresh the figures of a partnership's published routes: the share of each route under working
-- cameras (its line, as published) and the incidents within safermap_route_near_m() of it in the
-- 12-month window, counted as an embed sees them. Returns the number of routes.
CREATE OR REPLACE FUNCTION safermap_refresh_published_routes(p_partnership integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    crs   integer;
    since date;
    n     integer;
BEGIN
    SELECT srid INTO crs FROM partnership WHERE id = p_partnership;
    IF crs IS NULL OR NOT EXISTS (SELECT 1 FROM route_published WHERE partnership_id = p_partnership) THEN
        RETURN 0;
    END IF;
    since := safermap_route_incident_since(p_partnership, 'embed', NULL, 'sanitised');
    UPDATE route_published r
    SET camera_share = CASE WHEN r.length_m > 0 THEN least(1, coalesce((
            SELECT ST_Length(ST_Intersection(ST_Transform(r.geom, crs), ST_Union(ST_MakeValid(u.geom_m))))
            FROM coverage_union u
            WHERE u.partnership_id = p_partnership AND u.kind = 'working' AND u.geom && r.geom
              AND ST_SRID(u.geom_m) = crs), 0) / r.length_m) ELSE 0 END,
        incidents_near = (
            SELECT count(*)
            FROM safermap_visible_incidents(p_partnership, 'embed', NULL, 'sanitised') AS v
            WHERE v.partnership_id = p_partnership AND v.level IN ('sanitised', 'exact') AND v.month >= since
              AND v.geom && ST_Expand(r.geom, 0.001)
              AND ST_DWithin(ST_Transform(v.geom, crs), ST_Transform(r.geom, crs), safermap_route_near_m())),
        evaluated_at = now()
    WHERE r.partnership_id = p_partnership;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Note places (EPSG:4326 shapes, each with its partnership) whose segments need recomputing, and
-- the partnerships as pending for this transaction; shapes may be NULL (incidents changed: only the
-- published routes' figures). Nothing is noted for a partnership being deleted.
CREATE OR REPLACE FUNCTION safermap_route_note(partnerships integer[], shapes geometry[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO route_safety_dirty (partnership_id, bbox)
    SELECT pa.id, ST_Envelope(s.g)
    FROM unnest(partnerships, shapes) AS s(partnership_id, g)
    JOIN partnership pa ON pa.id = s.partnership_id
    WHERE s.g IS NOT NULL;
    INSERT INTO route_safety_pending (partnership_id)
    SELECT DISTINCT pa.id FROM unnest(partnerships) AS s(partnership_id) JOIN partnership pa ON pa.id = s.partnership_id
    ON CONFLICT DO NOTHING;
END $$;

-- Coverage pieces written or removed (the union's rebuild of its dirty cells): note each cell's extent.
CREATE OR REPLACE FUNCTION safermap_route_coverage_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ps integer[];
    gs geometry[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT array_agg(partnership_id), array_agg(g) INTO ps, gs FROM (
            SELECT partnership_id, ST_Envelope(ST_Collect(geom)) AS g FROM old_rows GROUP BY partnership_id, cx, cy) AS c;
    ELSE
        SELECT array_agg(partnership_id), array_agg(g) INTO ps, gs FROM (
            SELECT partnership_id, ST_Envelope(ST_Collect(geom)) AS g FROM new_rows GROUP BY partnership_id, cx, cy) AS c;
    END IF;
    IF ps IS NOT NULL THEN
        PERFORM safermap_route_note(ps, gs);
    END IF;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS coverage_union_route_insert ON coverage_union;
CREATE TRIGGER coverage_union_route_insert AFTER INSERT ON coverage_union
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION safermap_route_coverage_changed();
DROP TRIGGER IF EXISTS coverage_union_route_delete ON coverage_union;
CREATE TRIGGER coverage_union_route_delete AFTER DELETE ON coverage_union
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION safermap_route_coverage_changed();

-- A camera turned live-monitored or not: the segments in its coverage.
CREATE OR REPLACE FUNCTION safermap_route_camera_monitored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM safermap_route_note(ARRAY[cc.partnership_id], ARRAY[cc.geom])
    FROM camera_coverage cc WHERE cc.camera_id = NEW.id;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS camera_route_monitored ON camera;
CREATE TRIGGER camera_route_monitored AFTER UPDATE OF monitored ON camera
    FOR EACH ROW WHEN (OLD.monitored IS DISTINCT FROM NEW.monitored)
    EXECUTE FUNCTION safermap_route_camera_monitored();

-- Lamps and parks added, moved or removed (once per statement: a register import writes thousands).
-- Lamps light this far around them, so their places are grown by a little more than the reach in degrees.
CREATE OR REPLACE FUNCTION safermap_route_places_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ps integer[];
    gs geometry[];
    grow double precision := CASE WHEN TG_TABLE_NAME = 'street_lamp' THEN 0.001 ELSE 0 END;
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        SELECT array_agg(partnership_id), array_agg(g) INTO ps, gs FROM (
            SELECT partnership_id, ST_Expand(ST_Envelope(ST_Collect(geom)), grow) AS g
            FROM old_rows GROUP BY partnership_id) AS c;
        IF ps IS NOT NULL THEN
            PERFORM safermap_route_note(ps, gs);
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT array_agg(partnership_id), array_agg(g) INTO ps, gs FROM (
            SELECT partnership_id, ST_Expand(ST_Envelope(ST_Collect(geom)), grow) AS g
            FROM new_rows GROUP BY partnership_id) AS c;
        IF ps IS NOT NULL THEN
            PERFORM safermap_route_note(ps, gs);
        END IF;
    END IF;
    RETURN NULL;
END $$;

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['street_lamp', 'park'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_route_insert', t);
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION safermap_route_places_changed()', t || '_route_insert', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_route_update', t);
        EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION safermap_route_places_changed()', t || '_route_update', t);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_route_delete', t);
        EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION safermap_route_places_changed()', t || '_route_delete', t);
    END LOOP;
END $$;

-- Incidents or who may see them changed: only the published routes' figures (no segment attribute
-- depends on incidents). Once per statement; the incident table is written a million rows at a time.
CREATE OR REPLACE FUNCTION safermap_route_incidents_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ps integer[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        SELECT array_agg(DISTINCT partnership_id) INTO ps FROM old_rows;
    ELSE
        SELECT array_agg(DISTINCT partnership_id) INTO ps FROM new_rows;
    END IF;
    IF ps IS NOT NULL THEN
        PERFORM safermap_route_note(ps, array_fill(NULL::geometry, ARRAY[cardinality(ps)]));
    END IF;
    RETURN NULL;
END $$;

DO $$
DECLARE
    t  text;
    ev text;
BEGIN
    FOREACH t IN ARRAY ARRAY['incident', 'dataset', 'sharing_rule', 'sensitive_category'] LOOP
        FOREACH ev IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_route_' || ev, t);
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I REFERENCING %s FOR EACH STATEMENT '
                           'EXECUTE FUNCTION safermap_route_incidents_changed()',
                           t || '_route_' || ev, upper(ev), t,
                           CASE ev WHEN 'delete' THEN 'OLD TABLE AS old_rows' ELSE 'NEW TABLE AS new_rows' END);
        END LOOP;
    END LOOP;
END $$;

-- Deferred to commit, once per partnership and transaction: recompute the segments in the noted
-- places (each place's segments once, however many places overlap them), then the published
-- routes' figures. Queued while the coverage union rebuilds at commit, so it runs after it.
CREATE OR REPLACE FUNCTION safermap_route_safety_sync() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    crs   integer;
    boxes geometry;
BEGIN
    SELECT srid INTO crs FROM partnership WHERE id = NEW.partnership_id;
    IF crs IS NULL THEN
        RETURN NULL;
    END IF;
    DELETE FROM route_safety_pending WHERE partnership_id = NEW.partnership_id;
    WITH taken AS (
        DELETE FROM route_safety_dirty WHERE partnership_id = NEW.partnership_id RETURNING bbox
    )
    SELECT ST_Collect(ST_Expand(ST_Transform(bbox, crs), 1)) INTO boxes FROM taken;
    IF boxes IS NOT NULL AND EXISTS (SELECT 1 FROM route_edge WHERE partnership_id = NEW.partnership_id) THEN
        PERFORM safermap_refresh_route_safety(NEW.partnership_id, d.geom)
        FROM ST_Dump(boxes) AS d;
    END IF;
    PERFORM safermap_refresh_published_routes(NEW.partnership_id);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS route_safety_pending_sync ON route_safety_pending;
CREATE CONSTRAINT TRIGGER route_safety_pending_sync AFTER INSERT ON route_safety_pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION safermap_route_safety_sync();
