"""Administration without a shell: the audit trail and the broker credential registry.

`audit_events` records every administrative and operator act (API keys, projects, alarm
acknowledge/clear, and what later branches add) in the same transaction as the act, so an
act without its row, or a row without its act, cannot be committed. Who acted is the API
key's name and prefix, or `cli:<login>` for the `factory5g` commands; `request_id` ties a
row to the HTTP request (and the `X-Request-ID` the API answered with).

The trail is append-only for the API role: INSERT and SELECT, no UPDATE, DELETE or
TRUNCATE, so a stolen API login cannot rewrite history. A BEFORE INSERT trigger stamps the
time and the database login itself, so the writer cannot back-date a row or claim to be
another login. It is a plain table, not a hypertable: administrative acts are few, and no
chunk retention may ever drop them.

`api_key_events` (0006_least_privilege) stays as it is: its trigger lives in the database
and records every change to `api_keys`, including the owner's direct SQL that no
application code sees. The application also writes `audit_events` rows for key creation
and revocation, with the key name, request id and before/after, so the trail has every
act in one place.

`broker_credentials` lists the broker accounts issued through the API (native device,
Sparkplug edge node, VDA 5050 AGV, alarm reader): type, project, parameters, who made it,
rotation and revocation times. No password is stored anywhere in the database; the API
role may insert rows and set only the two times, so it can neither rename an account nor
move it to another project.

Revision ID: 0009_admin
Revises: 0008_notifications
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0009_admin"
down_revision = "0008_notifications"
branch_labels = None
depends_on = None

_UPGRADE = [
    """
    CREATE TABLE audit_events (
        id bigserial PRIMARY KEY,
        ts timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        actor_key text,
        action text NOT NULL,
        target_type text NOT NULL,
        target_id text NOT NULL,
        project_id text,
        before jsonb,
        after jsonb,
        request_id text,
        db_user text NOT NULL DEFAULT session_user
    )
    """,
    "COMMENT ON TABLE audit_events IS "
    "'Every administrative and operator act, written in the transaction of the act; "
    "append-only for the API role.'",
    "CREATE INDEX ix_audit_events_ts ON audit_events (ts DESC, id DESC)",
    "CREATE INDEX ix_audit_events_project ON audit_events (project_id, ts DESC, id DESC)",
    "CREATE INDEX ix_audit_events_target ON audit_events (target_type, target_id, ts DESC)",
    """
    CREATE FUNCTION audit_events_stamp() RETURNS trigger
    LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
    BEGIN
        NEW.ts := now();
        NEW.db_user := session_user;
        RETURN NEW;
    END $$
    """,
    "CREATE TRIGGER audit_events_stamp BEFORE INSERT ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_stamp()",
    "REVOKE ALL ON FUNCTION audit_events_stamp() FROM PUBLIC",
    # Branches off 0001 once ran in no fixed order; the API group may not exist yet.
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factory5g_api') THEN "
    "CREATE ROLE factory5g_api NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "REVOKE ALL ON audit_events FROM factory5g_api",
    "GRANT SELECT, INSERT ON audit_events TO factory5g_api",
    "GRANT USAGE ON SEQUENCE audit_events_id_seq TO factory5g_api",
    # Broker credentials issued through the API: what exists and for whom, never a
    # password (the broker keeps only its hash). One live credential per user name.
    """
    CREATE TABLE broker_credentials (
        id bigserial PRIMARY KEY,
        username text NOT NULL,
        type text NOT NULL,
        project_id text NOT NULL,
        params jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text NOT NULL,
        rotated_at timestamptz,
        revoked_at timestamptz
    )
    """,
    "CREATE UNIQUE INDEX uq_broker_credentials_live ON broker_credentials (username) "
    "WHERE revoked_at IS NULL",
    "CREATE INDEX ix_broker_credentials_project ON broker_credentials (project_id, id)",
    "REVOKE ALL ON broker_credentials FROM factory5g_api",
    "GRANT SELECT, INSERT ON broker_credentials TO factory5g_api",
    "GRANT UPDATE (rotated_at, revoked_at) ON broker_credentials TO factory5g_api",
    "GRANT USAGE ON SEQUENCE broker_credentials_id_seq TO factory5g_api",
    # The device registry: ingest still inserts a device on its first message (status
    # 'unregistered'); an admin registers it (kind, profiles, metadata), retires it (its
    # history stays) or deletes it with its data. The API role gets no UPDATE or DELETE on
    # the tables: it acts through the owner's functions below, which touch only the
    # registry columns (never online/last_seen, which are ingest's) and delete a device's
    # or a project's rows from every table that has them.
    "ALTER TABLE devices ADD COLUMN status text NOT NULL DEFAULT 'unregistered'",
    "ALTER TABLE devices ADD COLUMN profiles text[] NOT NULL DEFAULT '{}'",
    "ALTER TABLE devices ADD COLUMN registered_at timestamptz",
    "ALTER TABLE devices ADD COLUMN retired_at timestamptz",
    "ALTER TABLE devices ADD CONSTRAINT ck_devices_status "
    "CHECK (status IN ('unregistered', 'registered', 'retired'))",
    """
    CREATE FUNCTION device_set(
        p text, d text, k text, profiles_ text[], meta jsonb, status_ text
    ) RETURNS devices
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        out_ devices;
    BEGIN
        IF status_ NOT IN ('registered', 'retired') THEN
            RAISE EXCEPTION 'status must be registered or retired'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        INSERT INTO projects (id, name) VALUES (p, p) ON CONFLICT (id) DO NOTHING;
        UPDATE devices AS x
        SET kind = coalesce(k, x.kind),
            metadata = coalesce(meta, x.metadata),
            profiles = coalesce(profiles_, x.profiles),
            status = status_,
            registered_at = coalesce(x.registered_at, now()),
            retired_at = CASE WHEN status_ = 'retired' THEN coalesce(x.retired_at, now()) END
        WHERE x.project_id = p AND x.device_id = d
        RETURNING * INTO out_;
        IF NOT FOUND THEN
            IF k IS NULL THEN
                RAISE EXCEPTION 'a new device needs its kind'
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            -- Ingest may register it meanwhile: then its row is updated instead.
            INSERT INTO devices AS x (project_id, device_id, kind, online, metadata, profiles,
                                      status, registered_at, retired_at)
            VALUES (p, d, k, false, coalesce(meta, '{}'::jsonb), coalesce(profiles_, '{}'),
                    status_, now(), CASE WHEN status_ = 'retired' THEN now() END)
            ON CONFLICT (project_id, device_id) DO UPDATE
            SET kind = excluded.kind, metadata = excluded.metadata,
                profiles = excluded.profiles, status = excluded.status,
                registered_at = coalesce(x.registered_at, now()),
                retired_at = excluded.retired_at
            RETURNING * INTO out_;
        END IF;
        RETURN out_;
    END $$
    """,
    # Every row of a device (or of a project) in every table that names one: the streams,
    # rollups, alarms, alarm events, dead letters and the registry. The audit trail and
    # the credential registry are history and stay.
    """
    CREATE FUNCTION admin_purge(p text, d text) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        t record;
        n bigint;
        total bigint := 0;
    BEGIN
        IF d IS NOT NULL THEN
            DELETE FROM alarm_events e USING alarms a
            WHERE e.alarm_id = a.id AND a.project_id = p AND a.device_id = d;
            GET DIAGNOSTICS n = ROW_COUNT;
            total := total + n;
        END IF;
        FOR t IN
            SELECT c.table_name FROM information_schema.columns c
            JOIN information_schema.tables tb
              ON tb.table_schema = c.table_schema AND tb.table_name = c.table_name
            WHERE c.table_schema = 'public' AND c.column_name = 'project_id'
              AND tb.table_type = 'BASE TABLE'
              AND c.table_name NOT IN ('audit_events', 'broker_credentials')
              AND (d IS NULL OR EXISTS (
                  SELECT 1 FROM information_schema.columns c2
                  WHERE c2.table_schema = 'public' AND c2.table_name = c.table_name
                    AND c2.column_name = 'device_id'))
            ORDER BY c.table_name
        LOOP
            IF d IS NULL THEN
                EXECUTE format('DELETE FROM %I WHERE project_id = $1', t.table_name) USING p;
            ELSE
                EXECUTE format('DELETE FROM %I WHERE project_id = $1 AND device_id = $2',
                               t.table_name) USING p, d;
            END IF;
            GET DIAGNOSTICS n = ROW_COUNT;
            total := total + n;
        END LOOP;
        IF d IS NULL THEN
            DELETE FROM projects WHERE id = p;
            GET DIAGNOSTICS n = ROW_COUNT;
            total := total + n;
        END IF;
        RETURN total;
    END $$
    """,
    "REVOKE ALL ON FUNCTION device_set(text, text, text, text[], jsonb, text), "
    "admin_purge(text, text) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION device_set(text, text, text, text[], jsonb, text), "
    "admin_purge(text, text) TO factory5g_api",
    # Retention: how long each raw store and each rollup resolution is kept (no row: for
    # ever). Dropping chunks needs the tables' owner, so the API runs `retention_drop`,
    # which refuses to drop anything its target's policy still keeps; the application
    # holds raw data back further until the rollups have aggregated it.
    """
    CREATE TABLE retention_policies (
        target text PRIMARY KEY CHECK (target IN (
            'inspections', 'agv_status', 'link_kpis', 'telemetry', 'alarm_events',
            'dead_letters', 'rollup_1m', 'rollup_1h')),
        keep interval NOT NULL CHECK (keep >= interval '1 hour'),
        updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by text NOT NULL
    )
    """,
    "GRANT SELECT, INSERT, UPDATE, DELETE ON retention_policies TO factory5g_api",
    r"""
    CREATE FUNCTION retention_drop(target_ text, older_than_ timestamptz) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
    DECLARE
        keep_ interval;
        t record;
        n bigint;
        total bigint := 0;
    BEGIN
        SELECT keep INTO keep_ FROM retention_policies WHERE target = target_;
        IF keep_ IS NULL THEN
            RAISE EXCEPTION 'no retention policy for %', target_
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF older_than_ > now() - keep_ THEN
            RAISE EXCEPTION '% keeps % of data: nothing after % may be dropped',
                target_, keep_, now() - keep_
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF target_ IN ('inspections', 'agv_status', 'link_kpis', 'telemetry',
                       'alarm_events', 'dead_letters') THEN
            SELECT count(*) INTO total
            FROM drop_chunks(target_::regclass, older_than => older_than_);
        ELSE
            FOR t IN
                SELECT tablename FROM pg_tables
                WHERE schemaname = 'public'
                  AND tablename LIKE 'rollup\_%\_' || substring(target_ FROM 8)
                ORDER BY tablename
            LOOP
                EXECUTE format('DELETE FROM %I WHERE bucket < $1', t.tablename)
                    USING older_than_;
                GET DIAGNOSTICS n = ROW_COUNT;
                total := total + n;
            END LOOP;
        END IF;
        RETURN total;
    END $$
    """,
    "REVOKE ALL ON FUNCTION retention_drop(text, timestamptz) FROM PUBLIC",
    "GRANT EXECUTE ON FUNCTION retention_drop(text, timestamptz) TO factory5g_api",
    # Rule documents submitted through the API, versioned: who, when, the diff to the one
    # before. The rules service validates each with the rule file's own parser (the API
    # may not import it) and marks it active or rejected with the precise error; the
    # active one replaces the rule file's rules within seconds.
    """
    CREATE TABLE rule_versions (
        id bigserial PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text NOT NULL,
        yaml text NOT NULL,
        diff text NOT NULL DEFAULT '',
        status text NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'active', 'rejected', 'superseded')),
        error text,
        decided_at timestamptz
    )
    """,
    "CREATE INDEX ix_rule_versions_status ON rule_versions (status, id)",
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factory5g_rules') THEN "
    "CREATE ROLE factory5g_rules NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "REVOKE ALL ON rule_versions FROM factory5g_api, factory5g_rules",
    "GRANT SELECT, INSERT ON rule_versions TO factory5g_api",
    "GRANT USAGE ON SEQUENCE rule_versions_id_seq TO factory5g_api",
    "GRANT SELECT ON rule_versions TO factory5g_rules",
    "GRANT UPDATE (status, error, decided_at) ON rule_versions TO factory5g_rules",
    # Backtests: "what would this document have raised over the last N days", run by the
    # rules service with its replay (the API may not import it) over the stored history.
    """
    CREATE TABLE rule_backtests (
        id bigserial PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text NOT NULL,
        yaml text NOT NULL,
        project_id text,
        range_start timestamptz NOT NULL,
        range_end timestamptz NOT NULL,
        status text NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'running', 'done', 'rejected', 'failed')),
        result jsonb,
        error text,
        decided_at timestamptz
    )
    """,
    "CREATE INDEX ix_rule_backtests_status ON rule_backtests (status, id)",
    "REVOKE ALL ON rule_backtests FROM factory5g_api, factory5g_rules",
    "GRANT SELECT, INSERT ON rule_backtests TO factory5g_api",
    "GRANT USAGE ON SEQUENCE rule_backtests_id_seq TO factory5g_api",
    "GRANT SELECT ON rule_backtests TO factory5g_rules",
    "GRANT UPDATE (status, result, error, decided_at) ON rule_backtests TO factory5g_rules",
]

_DOWNGRADE = [
    "DROP TABLE IF EXISTS rule_backtests",
    "DROP TABLE IF EXISTS rule_versions",
    "DROP FUNCTION IF EXISTS retention_drop(text, timestamptz)",
    "DROP TABLE IF EXISTS retention_policies",
    "DROP FUNCTION IF EXISTS admin_purge(text, text)",
    "DROP FUNCTION IF EXISTS device_set(text, text, text, text[], jsonb, text)",
    "ALTER TABLE devices DROP CONSTRAINT IF EXISTS ck_devices_status",
    "ALTER TABLE devices DROP COLUMN IF EXISTS retired_at",
    "ALTER TABLE devices DROP COLUMN IF EXISTS registered_at",
    "ALTER TABLE devices DROP COLUMN IF EXISTS profiles",
    "ALTER TABLE devices DROP COLUMN IF EXISTS status",
    "DROP TABLE IF EXISTS broker_credentials",
    "DROP TABLE IF EXISTS audit_events",
    "DROP FUNCTION IF EXISTS audit_events_stamp()",
]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
