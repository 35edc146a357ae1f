-- Incident partitions (migration 0018): incident is partitioned by RANGE (dataset_id, month), one
-- partition per data set and month, named incident_p_<dataset>_<yyyymm>, plus incident_p_default
-- for rows no partition takes (plain INSERTs of a data set-month no import has loaded yet).
--
-- A bulk import replaces a force-month without touching the live table while it loads:
--   1. safermap_incident_load_table: an empty plain table with incident's columns and a CHECK that
--      matches the partition bound (so ATTACH need not scan it), incident_load_<run>_<dataset>_<yyyymm>;
--   2. the importer fills it at COPY speed: no index, no trigger;
--   3. safermap_incident_load_index builds the indexes incident's partitions carry;
--   4. safermap_incident_month_swap, at the end of the same transaction: drop the old partition,
--      attach the new one, and do what incident's statement triggers would have done.
-- Readers see the old month or the new one (one transaction), and wait only while the swap holds
-- incident ACCESS EXCLUSIVE: it asks for that lock with a short lock_timeout and retries, so a long
-- read ahead of it never makes the readers queued behind it wait more than that timeout.
--
-- Steps 1-4 run in the importer's one transaction, so a killed import leaves nothing behind; the
-- importer still drops any visible incident_load_* table that is not a partition at its start
-- (safermap_incident_load_cleanup), should one ever be committed. The steps are SECURITY DEFINER:
-- the app role may not own tables, but may run these, which only ever touch incident_load_* and
-- incident_p_* tables named from integers.
--
-- Nothing before the swap takes a lock on incident itself (the column list is read from the
-- catalog, not by CREATE TABLE ... LIKE): two imports each holding a lock on incident while asking
-- for ACCESS EXCLUSIVE would wait for each other forever.

CREATE OR REPLACE FUNCTION safermap_incident_partition_name(p_dataset integer, p_month date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('incident_p_%s_%s', p_dataset, to_char(p_month, 'YYYYMM'))
$$;

CREATE OR REPLACE FUNCTION safermap_incident_load_name(p_run integer, p_dataset integer, p_month date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT format('incident_load_%s_%s_%s', p_run, p_dataset, to_char(p_month, 'YYYYMM'))
$$;

-- An empty table to load one data set-month into, shaped like incident; its name.
CREATE OR REPLACE FUNCTION safermap_incident_load_table(p_run integer, p_dataset integer, p_month date)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    tbl  text := safermap_incident_load_name(p_run, p_dataset, date_trunc('month', p_month)::date);
    m    date := date_trunc('month', p_month)::date;
    cols text;
BEGIN
    SELECT string_agg(format('%I %s%s%s', a.attname, format_type(a.atttypid, a.atttypmod),
                             CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END,
                             coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')), ', ' ORDER BY a.attnum)
    INTO cols
    FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = 'public.incident'::regclass AND a.attnum > 0 AND NOT a.attisdropped;
    EXECUTE format('CREATE TABLE %I (%s, CONSTRAINT incident_load_bound CHECK (dataset_id = %s AND month >= %L AND month < %L))',
                   tbl, cols, p_dataset, m, (m + interval '1 month')::date);
    EXECUTE format('GRANT SELECT, INSERT ON %I TO safermap_app', tbl);
    RETURN tbl;
END $$;

-- Build on a loaded table every index and key incident's partitions carry (ATTACH adopts them
-- instead of building its own while holding incident locked).
CREATE OR REPLACE FUNCTION safermap_incident_load_index(p_run integer, p_dataset integer, p_month date)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
SET maintenance_work_mem = '256MB' AS $$
DECLARE
    tbl text := safermap_incident_load_name(p_run, p_dataset, date_trunc('month', p_month)::date);
    r   record;
BEGIN
    FOR r IN SELECT k.conname, pg_get_constraintdef(k.oid) AS def FROM pg_constraint k
             WHERE k.conrelid = 'public.incident'::regclass AND k.contype IN ('p', 'u') LOOP
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I %s', tbl, tbl || substr(r.conname, 9), r.def);
    END LOOP;
    FOR r IN SELECT i.relname, x.indexrelid FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
             WHERE x.indrelid = 'public.incident'::regclass
               AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid) LOOP
        -- 'CREATE INDEX incident_geom_idx ON ONLY public.incident USING gist (geom)'
        EXECUTE regexp_replace(pg_get_indexdef(r.indexrelid),
                               '^CREATE (UNIQUE )?INDEX \S+ ON ONLY public\.incident ',
                               format('CREATE \1INDEX %I ON public.%I ', tbl || substr(r.relname, 9), tbl));
    END LOOP;
END $$;

-- Put the loaded tables of run p_run in place of their data set-months, all at once, and do what
-- incident's statement triggers do for a change of the partnership's incidents. Incidents of
-- those months in the default partition (plain INSERTs) are deleted; returns how many.
CREATE OR REPLACE FUNCTION safermap_incident_month_swap(p_partnership integer, p_run integer,
                                                        p_datasets integer[], p_months date[])
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    wait     text := current_setting('lock_timeout');
    give_up  timestamptz := clock_timestamp() + interval '60 seconds';
    i        integer;
    m        date;
    part     text;
    load     text;
    idx      text;
    n        bigint;
    deleted  bigint := 0;
BEGIN
    -- Readers queue behind a waiting ACCESS EXCLUSIVE request: wait at most 50 ms at a time for
    -- the reads ahead to end, stepping aside (and letting the queue through) in between.
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '50ms', true);
            LOCK TABLE incident IN ACCESS EXCLUSIVE MODE;
            EXIT;
        EXCEPTION WHEN lock_not_available THEN
            -- (an open transaction that has read incident, even idle, holds the swap off)
            IF clock_timestamp() > give_up THEN
                RAISE EXCEPTION 'incident stayed in use for a minute: gave up replacing the months'
                    USING ERRCODE = 'lock_not_available';
            END IF;
            PERFORM pg_sleep(0.02 + random() * 0.08);
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', wait, true);

    FOR i IN 1 .. cardinality(p_datasets) LOOP
        m := date_trunc('month', p_months[i])::date;
        part := safermap_incident_partition_name(p_datasets[i], m);
        IF EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhparent = 'public.incident'::regclass
                   AND h.inhrelid = to_regclass(format('public.%I', part))) THEN
            EXECUTE format('DROP TABLE %I', part);
        END IF;
        DELETE FROM incident WHERE dataset_id = p_datasets[i] AND month >= m AND month < m + interval '1 month';
        GET DIAGNOSTICS n = ROW_COUNT;
        deleted := deleted + n;
        EXECUTE format('ALTER TABLE incident ATTACH PARTITION %I FOR VALUES FROM (%s, %L) TO (%s, %L)',
                       safermap_incident_load_name(p_run, p_datasets[i], m), p_datasets[i], m,
                       p_datasets[i], (m + interval '1 month')::date);
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT incident_load_bound',
                       safermap_incident_load_name(p_run, p_datasets[i], m));
        load := safermap_incident_load_name(p_run, p_datasets[i], m);
        EXECUTE format('ALTER TABLE %I RENAME TO %I', load, part);
        -- its indexes too (a constraint's with it): the next load of this month reuses no name
        FOR idx IN SELECT c.relname FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                   WHERE x.indrelid = format('public.%I', part)::regclass LOOP
            EXECUTE format('ALTER INDEX %I RENAME TO %I', idx, part || substr(idx, length(load) + 1));
        END LOOP;
    END LOOP;

    -- What incident_version_* and incident_route_* do for a statement (versions.sql, route_safety.sql):
    -- no trigger fires for rows that arrive by ATTACH or leave by DROP.
    INSERT INTO data_version (partnership_id, source, version)
    VALUES (p_partnership, 'incident', nextval('data_version_seq'))
    ON CONFLICT (partnership_id, source) DO UPDATE SET version = EXCLUDED.version;
    PERFORM safermap_route_note(ARRAY[p_partnership], ARRAY[NULL::geometry]);
    RETURN deleted;
END $$;

-- Drop incident_load_* tables left by an import that committed without attaching them. An import
-- still running has its table uncommitted, invisible here.
CREATE OR REPLACE FUNCTION safermap_incident_load_cleanup() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT c.relname FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
               AND c.relname LIKE 'incident\_load\_%' AND NOT c.relispartition LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', r.relname);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- Only the app role (migration 0004) may run the steps that make, attach and drop tables.
DO $$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['safermap_incident_load_table(integer, integer, date)',
                             'safermap_incident_load_index(integer, integer, date)',
                             'safermap_incident_month_swap(integer, integer, integer[], date[])',
                             'safermap_incident_load_cleanup()'] LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
        IF to_regrole('safermap_app') IS NOT NULL THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO safermap_app', f);
        END IF;
    END LOOP;
END $$;
