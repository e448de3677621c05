"""Requests for the effective rules of a device, answered by the rules service.

The API may not import the rules service's parser, and only the running rules service knows
which rule document is in force (the active version, or its file). So `GET
/api/v1/rules/effective` stores a request here, any rules service replica answers it within
a second (the first conditional UPDATE wins) with every rule the device gets, each setting
with the layer it came from, and the API reads the answer and deletes the row. A row the API
never collected (a crashed request) is deleted by the rules service after an hour.

The API role may ask (INSERT), read and delete its requests, never write an answer; the
rules role may write only the answer columns, and delete stale rows.

Revision ID: 0011_effective_rules
Revises: 0010_commands
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0011_effective_rules"
down_revision = "0010_commands"
branch_labels = None
depends_on = None

_UPGRADE = [
    """
    CREATE TABLE rule_effective_requests (
        id bigserial PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        project_id text NOT NULL,
        device_id text NOT NULL,
        kinds text[] NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
        result jsonb,
        error text,
        decided_at timestamptz
    )
    """,
    "CREATE INDEX ix_rule_effective_requests_pending ON rule_effective_requests (id) "
    "WHERE status = 'pending'",
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factory5g_rules') THEN "
    "CREATE ROLE factory5g_rules NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "REVOKE ALL ON rule_effective_requests FROM factory5g_api, factory5g_rules",
    "GRANT SELECT, INSERT, DELETE ON rule_effective_requests TO factory5g_api",
    "GRANT USAGE ON SEQUENCE rule_effective_requests_id_seq TO factory5g_api",
    "GRANT SELECT, DELETE ON rule_effective_requests TO factory5g_rules",
    "GRANT UPDATE (status, result, error, decided_at) ON rule_effective_requests "
    "TO factory5g_rules",
]

_DOWNGRADE = ["DROP TABLE IF EXISTS rule_effective_requests"]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
