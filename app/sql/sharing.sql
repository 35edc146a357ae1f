-- Sharing: THE one place that decides which incidents a caller sees and at which level.
--
-- Every face that shows incidents (API, categories, tiles, TileJSON bounds, pages, the gaps layer)
-- reads them through safermap_visible_incidents(partnership, role, agency, cap): it decides which
-- data sets a caller may see and at which level (none < aggregate < sanitised < exact), hides
-- sensitive categories from roles below their least role, and hands out the anonymous point
-- (anonymous_locations.sql) instead of the real one below 'exact'. It is a plain SQL function (one
-- SELECT), so the planner inlines it and filters on its `geom` still use the GiST indexes (a UNION ALL
-- of an exact branch over incident.geom and an anonymous one over geom_anon). The data sets' levels
-- sit behind a fence (OFFSET 0): inlined, their CASE and its sharing-rule look-ups were evaluated
-- again for every incident that used the level (a tile of 27k points spent most of its time there).

-- Levels are ordered none < aggregate < sanitised < exact.
CREATE OR REPLACE FUNCTION safermap_level_rank(level text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_position(ARRAY['none', 'aggregate', 'sanitised', 'exact'], level) - 1, 0)
$$;

-- Roles least to most privileged (app/roles.py). An unknown role (an embed) ranks below all.
CREATE OR REPLACE FUNCTION safermap_role_rank(role text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_position(ARRAY['viewer', 'pcso', 'operator', 'analyst', 'admin'], role) - 1, -1)
$$;

-- The level at which a caller (partnership, role, agency) sees each data set, capped at p_cap
-- (an embed passes 'sanitised'). Members of the owning agency and the partnership's admins see
-- their own data exactly; otherwise a rule for the caller's agency (of any partnership), else a
-- rule for the caller's role (same partnership only), else the data set's own default for its
-- partnership; another partnership without an agency rule sees nothing.
CREATE OR REPLACE FUNCTION safermap_dataset_levels(p_partnership integer, p_role text, p_agency integer,
                                                   p_cap text DEFAULT 'exact')
RETURNS TABLE (dataset_id integer, partnership_id integer, source_key text, level text)
LANGUAGE sql STABLE AS $$
    SELECT d.id, d.partnership_id, d.source_key,
           CASE WHEN safermap_level_rank(l.level) > safermap_level_rank(p_cap) THEN p_cap ELSE l.level END
    FROM dataset d
    CROSS JOIN LATERAL (SELECT CASE
        WHEN d.partnership_id = p_partnership
             AND (p_role = 'admin' OR (p_agency IS NOT NULL AND d.agency_id = p_agency)) THEN 'exact'
        ELSE coalesce(
            (SELECT r.level FROM sharing_rule r
             WHERE r.dataset_id = d.id AND r.grantee_agency_id = p_agency),
            CASE WHEN d.partnership_id = p_partnership THEN coalesce(
                (SELECT r.level FROM sharing_rule r WHERE r.dataset_id = d.id AND r.grantee_role = p_role),
                d.sharing_level)
            ELSE 'none' END)
        END AS level) AS l
    WHERE d.partnership_id = p_partnership
       OR d.id IN (SELECT r.dataset_id FROM sharing_rule r
                   WHERE r.grantee_agency_id = p_agency AND r.level <> 'none')
$$;

-- The partnerships whose data a caller may see (its own, plus those granting its agency):
-- the tiles' ETags are made of these partnerships' data versions.
CREATE OR REPLACE FUNCTION safermap_visible_partnerships(p_partnership integer, p_agency integer)
RETURNS SETOF integer LANGUAGE sql STABLE AS $$
    SELECT p_partnership
    UNION
    SELECT r.partnership_id FROM sharing_rule r WHERE r.grantee_agency_id = p_agency AND r.level <> 'none'
$$;

-- THE one place sharing is enforced. Rows of level 'aggregate' carry the anonymous point and
-- may only be counted (with suppression); they are never to be shown one by one.
CREATE OR REPLACE FUNCTION safermap_visible_incidents(p_partnership integer, p_role text, p_agency integer,
                                                      p_cap text DEFAULT 'exact')
RETURNS TABLE (id bigint, partnership_id integer, dataset_id integer, category text, month date,
               month_label text, geom geometry, location_text text, lsoa_code text, lsoa_name text,
               outcome text, external_ref text, dataset text, level text)
LANGUAGE sql STABLE AS $$
    SELECT i.id, i.partnership_id, i.dataset_id, i.category, i.month, to_char(i.month, 'YYYY-MM'),
           i.geom, i.location_text, i.lsoa_code, i.lsoa_name, i.outcome, i.external_ref,
           v.source_key, v.level
    FROM (SELECT * FROM safermap_dataset_levels(p_partnership, p_role, p_agency, p_cap) OFFSET 0) AS v
    JOIN incident i ON i.dataset_id = v.dataset_id
    WHERE v.level = 'exact'
      AND NOT EXISTS (SELECT 1 FROM sensitive_category s
                      WHERE s.partnership_id = i.partnership_id AND s.category = i.category
                        AND safermap_role_rank(p_role) < safermap_role_rank(s.least_role))
    UNION ALL
    SELECT i.id, i.partnership_id, i.dataset_id, i.category, i.month, to_char(i.month, 'YYYY-MM'),
           i.geom_anon,
           CASE WHEN i.geom_anon IS NULL THEN NULL
                ELSE coalesce((SELECT a.label FROM anon_point a WHERE a.id = i.anon_point_id),
                              'Near grid cell') END,
           i.lsoa_code, i.lsoa_name, i.outcome, NULL, v.source_key, v.level
    FROM (SELECT * FROM safermap_dataset_levels(p_partnership, p_role, p_agency, p_cap) OFFSET 0) AS v
    JOIN incident i ON i.dataset_id = v.dataset_id
    WHERE v.level IN ('sanitised', 'aggregate')
      AND NOT EXISTS (SELECT 1 FROM sensitive_category s
                      WHERE s.partnership_id = i.partnership_id AND s.category = i.category
                        AND safermap_role_rank(p_role) < safermap_role_rank(s.least_role))
$$;
