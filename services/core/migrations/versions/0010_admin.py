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

Revision ID: 0010_admin
Revises: 0007_optional_position
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0010_admin"
down_revision = "0007_optional_position"
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
]

_DOWNGRADE = [
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
