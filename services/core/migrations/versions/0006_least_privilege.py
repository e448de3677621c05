"""Least privilege: each role can do exactly its job; API keys change only through
narrow, audited functions.

- `factory5g_api` loses INSERT and UPDATE on `api_keys`: with them it could mint an admin
  key or un-revoke one. Keys change through SECURITY DEFINER functions owned by the schema
  owner instead: `api_key_bootstrap` stores the operator's bootstrap admin key only while
  no admin key exists (a known prefix is left alone, so a revocation sticks);
  `api_key_create` / `api_key_revoke` act only for a live admin key whose token the caller
  presents (the table's hashes are not enough), and there is no way back from a revocation.
  Every change to `api_keys`, by these functions or by the owner directly, is recorded in
  `api_key_events` with the acting key and the database login.
- `factory5g_ingest` loses UPDATE on `projects` (it only inserts unknown projects).
- `factory5g_simulator` is the simulator's own role: it names its projects, nothing else.
- The database is no longer open to every role of the cluster: CONNECT goes to the groups,
  TEMPORARY to ingest alone (its staging tables).

Revision ID: 0006_least_privilege
Revises: 0005_stream_indexes
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0006_least_privilege"
down_revision = "0005_stream_indexes"
branch_labels = None
# Once it also depended on 0004_roles, a branch off 0001 then; the chain is linear now and
# 0004_roles an ancestor.
depends_on = None

_GROUPS = "factory5g_ingest, factory5g_rules, factory5g_api, factory5g_simulator"

_UPGRADE = [
    # Created by the bootstrap step where the owner may not create roles; created here
    # for clusters whose migrations still run with that right.
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factory5g_simulator') THEN "
    "CREATE ROLE factory5g_simulator NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON api_keys FROM factory5g_api",
    "REVOKE UPDATE ON projects FROM factory5g_ingest",
    "GRANT USAGE ON SCHEMA public TO factory5g_simulator",
    "GRANT SELECT, INSERT, UPDATE ON projects TO factory5g_simulator",
    # Only the roles of the platform may connect; only ingest needs temporary tables.
    "DO $$ BEGIN "
    "EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()); "
    "EXECUTE format('GRANT CONNECT ON DATABASE %I TO " + _GROUPS + "', current_database()); "
    "EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO factory5g_ingest', current_database()); "
    "END $$",
    """
    CREATE TABLE api_key_events (
        id bigserial PRIMARY KEY,
        ts timestamptz NOT NULL DEFAULT now(),
        prefix text NOT NULL,
        action text NOT NULL,
        scope text,
        actor text,
        db_user text NOT NULL DEFAULT session_user
    )
    """,
    "COMMENT ON TABLE api_key_events IS "
    "'Every change to api_keys: created, revoked, changed or deleted; actor is the prefix "
    "of the admin key that acted, bootstrap, or NULL for the owner''s direct SQL.'",
    "REVOKE ALL ON api_key_events FROM factory5g_api",
    "GRANT SELECT ON api_key_events TO factory5g_api",
    """
    CREATE FUNCTION api_key_audit() RETURNS trigger
    LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
    DECLARE
        row_ api_keys := CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        action_ text := CASE
            WHEN TG_OP = 'INSERT' THEN 'created'
            WHEN TG_OP = 'DELETE' THEN 'deleted'
            WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN 'revoked'
            ELSE 'changed' END;
    BEGIN
        INSERT INTO api_key_events (prefix, action, scope, actor)
        VALUES (row_.prefix, action_, row_.scope,
                nullif(current_setting('factory5g.key_actor', true), ''));
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER api_keys_audit AFTER INSERT OR UPDATE OR DELETE ON api_keys "
    "FOR EACH ROW EXECUTE FUNCTION api_key_audit()",
    # The prefix of the live admin key `token` belongs to, or insufficient_privilege.
    """
    CREATE FUNCTION api_key_admin(token text) RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        found_ text;
    BEGIN
        SELECT prefix INTO found_ FROM api_keys
        WHERE prefix = substring(token FROM '^f5g_([^_]{10})_')
          AND hash = encode(sha256(convert_to(token, 'UTF8')), 'hex')
          AND scope = 'admin' AND projects IS NULL AND revoked_at IS NULL;
        IF found_ IS NULL THEN
            RAISE EXCEPTION 'a live admin key is needed to change API keys'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN found_;
    END $$
    """,
    """
    CREATE FUNCTION api_key_bootstrap(token text, key_name text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        prefix_ text := substring(token FROM '^f5g_([^_]{10})_.{32,}$');
    BEGIN
        IF prefix_ IS NULL THEN
            RAISE EXCEPTION 'token must look like f5g_<10 letters or digits>_<32+ characters>'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        -- One bootstrap at a time, so two replicas cannot both pass the check below.
        LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE;
        IF EXISTS (SELECT 1 FROM api_keys WHERE prefix = prefix_) THEN
            RETURN false;  -- known, revoked or not: a revocation sticks
        END IF;
        IF EXISTS (SELECT 1 FROM api_keys WHERE scope = 'admin') THEN
            RAISE EXCEPTION 'an admin key exists already: the bootstrap key is only stored '
                'in a database without one; create keys with an admin key'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        PERFORM set_config('factory5g.key_actor', 'bootstrap', true);
        INSERT INTO api_keys (prefix, hash, name, scope, projects)
        VALUES (prefix_, encode(sha256(convert_to(token, 'UTF8')), 'hex'), key_name,
                'admin', NULL);
        PERFORM set_config('factory5g.key_actor', '', true);
        RETURN true;
    END $$
    """,
    """
    CREATE FUNCTION api_key_create(
        actor_token text, key_prefix text, key_hash text, key_name text, key_scope text,
        key_projects text[]
    ) RETURNS api_keys
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        actor_ text := api_key_admin(actor_token);
        created_ api_keys;
    BEGIN
        IF key_scope IS NULL OR key_scope NOT IN ('read', 'operate', 'admin') THEN
            RAISE EXCEPTION 'scope must be read, operate or admin'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF key_prefix !~ '^[^_]{10}$' OR key_hash !~ '^[0-9a-f]{64}$' THEN
            RAISE EXCEPTION 'prefix must be 10 characters and hash 64 hex digits'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM set_config('factory5g.key_actor', actor_, true);
        INSERT INTO api_keys (prefix, hash, name, scope, projects)
        VALUES (key_prefix, key_hash, key_name, key_scope, key_projects)
        RETURNING * INTO created_;
        PERFORM set_config('factory5g.key_actor', '', true);
        RETURN created_;
    END $$
    """,
    """
    CREATE FUNCTION api_key_revoke(actor_token text, key_prefix text) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        actor_ text := api_key_admin(actor_token);
        revoked_ integer;
    BEGIN
        PERFORM set_config('factory5g.key_actor', actor_, true);
        UPDATE api_keys SET revoked_at = now()
        WHERE prefix = key_prefix AND revoked_at IS NULL;
        GET DIAGNOSTICS revoked_ = ROW_COUNT;
        PERFORM set_config('factory5g.key_actor', '', true);
        RETURN revoked_ > 0;
    END $$
    """,
    # Functions are executable by PUBLIC unless revoked.
    "REVOKE ALL ON FUNCTION api_key_admin(text), api_key_bootstrap(text, text), "
    "api_key_create(text, text, text, text, text, text[]), api_key_revoke(text, text), "
    "api_key_audit() FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION api_key_bootstrap(text, text), "
    "api_key_create(text, text, text, text, text, text[]), api_key_revoke(text, text) "
    "TO factory5g_api",
]

_DOWNGRADE = [
    "DROP FUNCTION IF EXISTS api_key_revoke(text, text)",
    "DROP FUNCTION IF EXISTS api_key_create(text, text, text, text, text, text[])",
    "DROP FUNCTION IF EXISTS api_key_bootstrap(text, text)",
    "DROP FUNCTION IF EXISTS api_key_admin(text)",
    "DROP TRIGGER IF EXISTS api_keys_audit ON api_keys",
    "DROP FUNCTION IF EXISTS api_key_audit()",
    "DROP TABLE IF EXISTS api_key_events",
    "DO $$ BEGIN "
    "EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO PUBLIC', current_database()); "
    "END $$",
    "REVOKE ALL ON projects FROM factory5g_simulator",
    "REVOKE USAGE ON SCHEMA public FROM factory5g_simulator",
    "GRANT UPDATE ON projects TO factory5g_ingest",
    "GRANT INSERT, UPDATE ON api_keys TO factory5g_api",
]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
