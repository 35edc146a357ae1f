-- Deleting a data set (or its partnership) deletes its incidents. Not a foreign-key cascade: the
-- per-row check of incident -> dataset cost about 9 s per million rows of a police.uk import
-- (migration 0008), so one statement trigger removes them instead. TRUNCATE of dataset does not
-- reach incident: truncate both.

CREATE OR REPLACE FUNCTION safermap_dataset_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM incident WHERE dataset_id IN (SELECT id FROM old_rows);
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS dataset_deleted_incidents ON dataset;
CREATE TRIGGER dataset_deleted_incidents AFTER DELETE ON dataset
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION safermap_dataset_deleted();
