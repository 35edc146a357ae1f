-- Live state: each app process keeps in memory who is behind a bearer token or a session cookie,
-- the data versions behind tile ETags and which partnerships share with which agency
-- (app/live_state.py). These triggers tell every process, on the channel 'safermap_live', what
-- would make that memory wrong. pg_notify in the changing transaction is delivered at its commit
-- (never for a change rolled back), in commit order. Payloads, one short text each:
--   t:<token id>                        a token revoked, re-dated, re-keyed, moved or deleted
--   p:<principal id>                    a principal renamed, re-roled, moved, disabled or enabled,
--                                       its sessions ended (session epoch), or deleted
--   P:<partnership id>                  a partnership's slug or metric CRS changed, or it was deleted
--   v:<partnership id>:<source>:<version>   a data version set ('' after the colon: row deleted)
--   g                                   sharing rules changed (which partnerships an agency sees)
--   e:<embed id>                        an embedded map revoked, re-dated, re-keyed or changed, or deleted
--   reset                               one of these tables was truncated: read everything again
-- A changed `last_used_at` or sign-in counter sends nothing: the triggers fire only on the columns
-- that decide who a caller is and what they may do.

CREATE OR REPLACE FUNCTION safermap_notify_token() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('safermap_live', 't:' || OLD.id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION safermap_notify_principal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('safermap_live', 'p:' || OLD.id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION safermap_notify_partnership() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('safermap_live', 'P:' || OLD.id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION safermap_notify_embed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('safermap_live', 'e:' || OLD.id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION safermap_notify_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('safermap_live', 'v:' || OLD.partnership_id || ':' || OLD.source || ':');
    ELSE
        PERFORM pg_notify('safermap_live', 'v:' || NEW.partnership_id || ':' || NEW.source || ':' || NEW.version);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION safermap_notify_grants() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('safermap_live', 'g');
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION safermap_notify_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('safermap_live', 'reset');
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS api_token_live_update ON api_token;
CREATE TRIGGER api_token_live_update AFTER UPDATE ON api_token FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.principal_id IS DISTINCT FROM NEW.principal_id OR OLD.token_hash IS DISTINCT FROM NEW.token_hash)
    EXECUTE FUNCTION safermap_notify_token();
DROP TRIGGER IF EXISTS api_token_live_delete ON api_token;
CREATE TRIGGER api_token_live_delete AFTER DELETE ON api_token FOR EACH ROW
    EXECUTE FUNCTION safermap_notify_token();

DROP TRIGGER IF EXISTS principal_live_update ON principal;
CREATE TRIGGER principal_live_update AFTER UPDATE ON principal FOR EACH ROW
    WHEN (OLD.name IS DISTINCT FROM NEW.name OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.agency_id IS DISTINCT FROM NEW.agency_id OR OLD.partnership_id IS DISTINCT FROM NEW.partnership_id
          OR OLD.disabled_at IS DISTINCT FROM NEW.disabled_at OR OLD.session_epoch IS DISTINCT FROM NEW.session_epoch)
    EXECUTE FUNCTION safermap_notify_principal();
DROP TRIGGER IF EXISTS principal_live_delete ON principal;
CREATE TRIGGER principal_live_delete AFTER DELETE ON principal FOR EACH ROW
    EXECUTE FUNCTION safermap_notify_principal();

DROP TRIGGER IF EXISTS partnership_live_update ON partnership;
CREATE TRIGGER partnership_live_update AFTER UPDATE ON partnership FOR EACH ROW
    WHEN (OLD.slug IS DISTINCT FROM NEW.slug OR OLD.srid IS DISTINCT FROM NEW.srid)
    EXECUTE FUNCTION safermap_notify_partnership();
DROP TRIGGER IF EXISTS partnership_live_delete ON partnership;
CREATE TRIGGER partnership_live_delete AFTER DELETE ON partnership FOR EACH ROW
    EXECUTE FUNCTION safermap_notify_partnership();

-- Every column an embed's tiles depend on; its view counters send nothing.
DROP TRIGGER IF EXISTS embed_live_update ON embed;
CREATE TRIGGER embed_live_update AFTER UPDATE ON embed FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at
          OR OLD.key_hash IS DISTINCT FROM NEW.key_hash OR OLD.public_id IS DISTINCT FROM NEW.public_id
          OR OLD.partnership_id IS DISTINCT FROM NEW.partnership_id OR OLD.layers IS DISTINCT FROM NEW.layers
          OR OLD.precision IS DISTINCT FROM NEW.precision OR OLD.allowed_origins IS DISTINCT FROM NEW.allowed_origins
          OR OLD.title IS DISTINCT FROM NEW.title OR OLD.area IS DISTINCT FROM NEW.area)
    EXECUTE FUNCTION safermap_notify_embed();
DROP TRIGGER IF EXISTS embed_live_delete ON embed;
CREATE TRIGGER embed_live_delete AFTER DELETE ON embed FOR EACH ROW
    EXECUTE FUNCTION safermap_notify_embed();

DROP TRIGGER IF EXISTS data_version_live_insert ON data_version;
CREATE TRIGGER data_version_live_insert AFTER INSERT ON data_version FOR EACH ROW
    EXECUTE FUNCTION safermap_notify_version();
DROP TRIGGER IF EXISTS data_version_live_update ON data_version;
CREATE TRIGGER data_version_live_update AFTER UPDATE ON data_version FOR EACH ROW
    WHEN (OLD.version IS DISTINCT FROM NEW.version OR OLD.source IS DISTINCT FROM NEW.source
          OR OLD.partnership_id IS DISTINCT FROM NEW.partnership_id)
    EXECUTE FUNCTION safermap_notify_version();
DROP TRIGGER IF EXISTS data_version_live_delete ON data_version;
CREATE TRIGGER data_version_live_delete AFTER DELETE ON data_version FOR EACH ROW
    EXECUTE FUNCTION safermap_notify_version();

DROP TRIGGER IF EXISTS sharing_rule_live ON sharing_rule;
CREATE TRIGGER sharing_rule_live AFTER INSERT OR UPDATE OR DELETE ON sharing_rule FOR EACH STATEMENT
    EXECUTE FUNCTION safermap_notify_grants();

-- TRUNCATE (also by CASCADE) skips row triggers: every table whose rows the memory mirrors says 'reset'.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_token', 'principal', 'partnership', 'data_version', 'sharing_rule', 'embed'] LOOP
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_live_truncate', t);
        EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %I FOR EACH STATEMENT '
                       'EXECUTE FUNCTION safermap_notify_reset()', t || '_live_truncate', t);
    END LOOP;
END $$;
