"""5G communication service availability: flow settings and the silences of link streams.

`availability_flows` holds a project's transfer interval and survival time, per device
profile (`profile = '*'` is the project's default). `link_gaps` keeps every silence of a
device's `link` stream longer than the gap floor (settings `availability.gap_floor_s`) as
(last message, next message); the API's rollup maintainer fills it incrementally behind a
watermark in `rollup_watermarks` (spec `link_gaps`), so a scorecard over thirty days reads
a few rows per outage instead of every link row. Both are the API's: it reads and writes
them; nothing else needs them.

Revision ID: 0013_service_availability
Revises: 0014_floor_maps
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0013_service_availability"
down_revision = "0014_floor_maps"
branch_labels = None
depends_on = None

_UPGRADE = [
    """
    CREATE TABLE availability_flows (
        project_id text NOT NULL,
        profile text NOT NULL,
        transfer_interval_s double precision NOT NULL CHECK (transfer_interval_s > 0),
        survival_time_s double precision NOT NULL CHECK (survival_time_s >= 0),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (project_id, profile)
    )
    """,
    """
    CREATE TABLE link_gaps (
        project_id text NOT NULL,
        device_id text NOT NULL,
        last_ts timestamptz NOT NULL,
        next_ts timestamptz NOT NULL,
        PRIMARY KEY (project_id, device_id, last_ts),
        CHECK (next_ts > last_ts)
    )
    """,
    "CREATE INDEX ix_link_gaps_project_next ON link_gaps (project_id, next_ts)",
    "CREATE INDEX ix_link_gaps_next ON link_gaps (next_ts)",
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factory5g_api') THEN "
    "CREATE ROLE factory5g_api NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON availability_flows, link_gaps TO factory5g_api",
]

_DOWNGRADE = ["DROP TABLE IF EXISTS link_gaps", "DROP TABLE IF EXISTS availability_flows"]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
