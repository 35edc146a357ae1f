-- Anonymous locations: where an incident is shown to a caller below 'exact' (sharing.sql).
--
-- Street-based anonymous points in the manner of police.uk's snap points: points along the
-- partnership's named streets about every 175 m, one per street name and 100 m square. An incident's
-- anonymous location is the nearest such point within 500 m, else the centre of its 100 m cell in the
-- partnership's metric CRS: deterministic, so the same place always gives the same answer and
-- nothing about the exact location can be averaged out of repeated requests.

-- The anonymous location of a point: the nearest anonymous point of the partnership within
-- 500 m (ties by id, so it is always the same one), else the centre of its 100 m cell in the
-- partnership's metric CRS (anon_point_id NULL). Deterministic: same input, same answer.
CREATE OR REPLACE FUNCTION safermap_anon_location(p_partnership integer, p_geom geometry)
RETURNS TABLE (anon_point_id bigint, geom_anon geometry)
LANGUAGE sql STABLE AS $$
    SELECT a.id,
           coalesce(a.geom, ST_Transform(ST_SetSRID(ST_MakePoint(
               floor(ST_X(m.g) / 100) * 100 + 50, floor(ST_Y(m.g) / 100) * 100 + 50), pa.srid), 4326))
    FROM partnership pa
    CROSS JOIN LATERAL (SELECT ST_Transform(p_geom, pa.srid) AS g OFFSET 0) AS m  -- once, not per candidate
    LEFT JOIN LATERAL (
        SELECT c.id, c.geom FROM (  -- KNN on the metric index; ties go to the lowest id
            SELECT ap.id, ap.geom, ap.geom_m <-> m.g AS dist FROM anon_point ap
            WHERE ap.partnership_id = p_partnership AND ST_DWithin(ap.geom_m, m.g, 500)
            ORDER BY ap.geom_m <-> m.g LIMIT 4
        ) AS c
        ORDER BY c.dist, c.id LIMIT 1
    ) AS a ON true
    WHERE pa.id = p_partnership
$$;

-- New incidents get their anonymous location at once. Work is per distinct point (police.uk
-- points are already shared by thousands of incidents), but updating rows just written costs a
-- second write of each and of its index entries, so bulk loads should set geom_anon while
-- inserting (the police.uk import does, with safermap_anon_location per distinct point): rows that
-- arrive with it set cost only the scan of the transition table here.
-- (enable_seqscan off for this function only: on a small or freshly built anon_point table the
-- planner would otherwise scan every anonymous point for every incident point instead of KNN.)
CREATE OR REPLACE FUNCTION safermap_incident_anonymise() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE geom_anon IS NULL AND geom IS NOT NULL) THEN
        WITH d AS (
            SELECT DISTINCT ON (n.partnership_id, ST_AsEWKB(n.geom))
                   n.partnership_id, ST_AsEWKB(n.geom) AS k, n.geom FROM new_rows n
            WHERE n.geom_anon IS NULL AND n.geom IS NOT NULL
        ), m AS MATERIALIZED (  -- once per distinct point (a fence); keyed by its bytes: hashable, exact
            SELECT d.partnership_id, d.k, l.anon_point_id, l.geom_anon
            FROM d CROSS JOIN LATERAL safermap_anon_location(d.partnership_id, d.geom) AS l
        )
        UPDATE incident i SET geom_anon = m.geom_anon, anon_point_id = m.anon_point_id
        FROM new_rows n JOIN m ON m.partnership_id = n.partnership_id AND m.k = ST_AsEWKB(n.geom)
        WHERE i.id = n.id AND n.geom_anon IS NULL;
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS incident_anonymise ON incident;
CREATE TRIGGER incident_anonymise AFTER INSERT ON incident
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION safermap_incident_anonymise();

-- (Re)build a partnership's anonymous points from its named streets: points along each street
-- about every 175 m (a short street gets its middle), one per street name and 100 m square, then
-- move every incident of the partnership to its new anonymous location. Returns the point count.
CREATE OR REPLACE FUNCTION safermap_refresh_anon_points(p_partnership integer) RETURNS integer
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    crs integer;
    n   integer;
BEGIN
    SELECT srid INTO crs FROM partnership WHERE id = p_partnership;
    IF crs IS NULL THEN
        RAISE EXCEPTION 'no partnership %', p_partnership USING ERRCODE = 'no_data_found';
    END IF;
    DELETE FROM anon_point WHERE partnership_id = p_partnership;
    INSERT INTO anon_point (partnership_id, geom, geom_m, label)
    SELECT p_partnership, ST_Transform(ST_SetSRID(pt, crs), 4326), ST_SetSRID(pt, crs), 'On or near ' || name
    FROM (
        SELECT DISTINCT ON (name, floor(ST_X(pt) / 100), floor(ST_Y(pt) / 100)) name, pt
        FROM (
            SELECT s.name, (ST_Dump(CASE WHEN ST_Length(g) < 175 THEN ST_LineInterpolatePoint(g, 0.5)
                                    ELSE ST_LineInterpolatePoints(g, 175 / ST_Length(g), true) END)).geom AS pt
            FROM (SELECT name, ST_Transform(geom, crs) AS g FROM street
                  WHERE partnership_id = p_partnership AND coalesce(btrim(name), '') <> '') AS s
        ) AS raw
        ORDER BY name, floor(ST_X(pt) / 100), floor(ST_Y(pt) / 100), ST_X(pt), ST_Y(pt)
    ) AS pts;
    GET DIAGNOSTICS n = ROW_COUNT;

    WITH d AS (
        SELECT DISTINCT ON (ST_AsEWKB(geom)) ST_AsEWKB(geom) AS k, geom FROM incident
        WHERE partnership_id = p_partnership AND geom IS NOT NULL
    ), m AS MATERIALIZED (  -- once per distinct point
        SELECT d.k, l.anon_point_id, l.geom_anon
        FROM d CROSS JOIN LATERAL safermap_anon_location(p_partnership, d.geom) AS l
    )
    UPDATE incident i SET geom_anon = m.geom_anon, anon_point_id = m.anon_point_id
    FROM m
    WHERE i.partnership_id = p_partnership AND ST_AsEWKB(i.geom) = m.k
      AND (i.anon_point_id IS DISTINCT FROM m.anon_point_id OR i.geom_anon IS NULL
           OR NOT ST_Equals(i.geom_anon, m.geom_anon));
    RETURN n;
END $$;
