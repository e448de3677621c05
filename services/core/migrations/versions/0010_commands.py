"""Commands to devices: the allow-list, the commands with their lifecycle, their events.

A command is a row before it is a message: the API inserts it `queued` (with the acting
key's name, its deadline and its parameters) and announces it; the commander claims
queued rows with FOR UPDATE SKIP LOCKED, publishes them and records each
transition (`sent`, `accepted | rejected`, `completed | failed`, or `expired` at the
deadline) on the row and as one row of `command_events`, the audit trail. Because the
state is in the database, a commander or broker restart between send and reply still
records the outcome.

`command_targets` says how to reach a device that is not native (VDA 5050 manufacturer and
serial number, Sparkplug B group, node and device), as the commander learnt it from the
device's own messages; the API reads the protocol from it.

`command_allow` is the per-project allow-list of command names per device kind: nothing is
sendable until an admin puts a name there. `command_headers` keeps the last VDA 5050
`headerId` per topic, so a restarted commander never counts backwards.

Roles: the new group `factory5g_commands` (created here if the bootstrap step has not)
may read devices and the allow-list, claim and update commands, append events and dead
letters; the API may insert commands and events and manage the allow-list; no role but
the owner deletes a command or an event.

Revision ID: 0010_commands
Revises: 0009_admin
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0010_commands"
down_revision = "0009_admin"
branch_labels = None
depends_on = None

_UPGRADE = [
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factory5g_commands') THEN "
    "CREATE ROLE factory5g_commands NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factory5g_api') THEN "
    "CREATE ROLE factory5g_api NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    """
    CREATE TABLE command_allow (
        project_id text NOT NULL,
        kind text NOT NULL,
        name text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        created_by text,
        PRIMARY KEY (project_id, kind, name)
    )
    """,
    """
    CREATE TABLE commands (
        id uuid PRIMARY KEY,
        project_id text NOT NULL,
        device_id text NOT NULL,
        kind text NOT NULL,
        name text NOT NULL,
        protocol text NOT NULL DEFAULT 'native',
        params jsonb NOT NULL DEFAULT '{}'::jsonb,
        state text NOT NULL DEFAULT 'queued',
        actor text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        deadline timestamptz NOT NULL,
        sent_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        sends integer NOT NULL DEFAULT 0,
        message text,
        result jsonb,
        CONSTRAINT ck_commands_state CHECK (state IN
            ('queued', 'sent', 'accepted', 'rejected', 'completed', 'failed', 'expired'))
    )
    """,
    "CREATE INDEX ix_commands_queued ON commands (created_at) WHERE state = 'queued'",
    "CREATE INDEX ix_commands_open ON commands (deadline) "
    "WHERE state IN ('queued', 'sent', 'accepted')",
    "CREATE INDEX ix_commands_device ON commands (project_id, device_id, created_at DESC)",
    """
    CREATE TABLE command_events (
        id bigserial PRIMARY KEY,
        command_id uuid NOT NULL REFERENCES commands (id),
        project_id text NOT NULL,
        device_id text NOT NULL,
        ts timestamptz NOT NULL DEFAULT now(),
        state text NOT NULL,
        actor text,
        detail jsonb NOT NULL DEFAULT '{}'::jsonb
    )
    """,
    "CREATE INDEX ix_command_events_command ON command_events (command_id, id)",
    """
    CREATE TABLE command_targets (
        project_id text NOT NULL,
        device_id text NOT NULL,
        protocol text NOT NULL,
        address jsonb NOT NULL DEFAULT '{}'::jsonb,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (project_id, device_id)
    )
    """,
    """
    CREATE TABLE command_headers (
        topic text PRIMARY KEY,
        header_id bigint NOT NULL
    )
    """,
    "GRANT USAGE ON SCHEMA public TO factory5g_commands",
    "GRANT SELECT ON devices, command_allow TO factory5g_commands",
    "GRANT SELECT, UPDATE ON commands TO factory5g_commands",
    "GRANT SELECT, INSERT ON command_events TO factory5g_commands",
    "GRANT SELECT, INSERT, UPDATE ON command_headers, command_targets TO factory5g_commands",
    "GRANT SELECT ON command_targets TO factory5g_api",
    "GRANT INSERT ON dead_letters TO factory5g_commands",
    "GRANT USAGE ON SEQUENCE command_events_id_seq TO factory5g_commands",
    "GRANT SELECT, INSERT, DELETE ON command_allow TO factory5g_api",
    "GRANT SELECT, INSERT ON commands, command_events TO factory5g_api",
    "GRANT USAGE ON SEQUENCE command_events_id_seq TO factory5g_api",
    "DO $$ BEGIN "
    "EXECUTE format('GRANT CONNECT ON DATABASE %I TO factory5g_commands', current_database()); "
    "END $$",
]

_DOWNGRADE = [
    "DROP TABLE command_headers",
    "DROP TABLE command_targets",
    "DROP TABLE command_events",
    "DROP TABLE commands",
    "DROP TABLE command_allow",
    "DO $$ BEGIN "
    "EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM factory5g_commands', current_database()); "
    "END $$",
    "REVOKE ALL ON dead_letters, devices FROM factory5g_commands",
    "REVOKE USAGE ON SCHEMA public FROM factory5g_commands",
]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
