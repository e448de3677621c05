"""OEE (ISO 22400-2): per-project settings and the maintained machine-state tables.

Machines publish `state`, `reason`, `count.produced` and `count.good` on the telemetry
stream. Summing thirty days of raw rows per request is far too slow, so the rollup
maintainer keeps, per device and five-minute bucket, the seconds spent in each (state,
reason) with the number of entries, and the counters' deltas (resets handled), and the
same per hour (merged from the five minutes). Queries sum these small tables (a shift's
whole hours from the hourly ones, its edges from the five-minute ones) inside the
project's planned shifts, which stay settings: changing a shift re-plans the past
without re-aggregating anything.

A partial index on telemetry holds only the machine-state metrics, so the maintainer
reads those rows and nothing else, and finding where a catch-up starts is one index
probe; other telemetry rows never touch it.

Written out literally: a migration must do the same thing whenever it runs.

Revision ID: 0012_oee
Revises: 0013_service_availability
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0012_oee"
down_revision = "0013_service_availability"
branch_labels = None
depends_on = None

_UPGRADE = [
    """
    CREATE TABLE oee_settings (
        project_id text PRIMARY KEY,
        settings jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now(),
        updated_by text NOT NULL
    )
    """,
    *(
        f"""
        CREATE TABLE oee_states_{res} (
            project_id text NOT NULL,
            device_id text NOT NULL,
            bucket timestamptz NOT NULL,
            state smallint NOT NULL,
            reason integer NOT NULL,
            seconds double precision NOT NULL,
            entries integer NOT NULL,
            PRIMARY KEY (project_id, bucket, device_id, state, reason)
        )
        """
        for res in ("5m", "1h")
    ),
    *(
        f"""
        CREATE TABLE oee_counts_{res} (
            project_id text NOT NULL,
            device_id text NOT NULL,
            bucket timestamptz NOT NULL,
            produced double precision NOT NULL,
            good double precision NOT NULL,
            PRIMARY KEY (project_id, bucket, device_id)
        )
        """
        for res in ("5m", "1h")
    ),
    """
    CREATE TABLE oee_watermark (
        id smallint PRIMARY KEY CHECK (id = 1),
        watermark timestamptz NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX IF NOT EXISTS ix_telemetry_machine_state ON telemetry (ts) "
    "WHERE metric IN ('state', 'reason', 'count.produced', 'count.good')",
    "GRANT SELECT, INSERT, UPDATE ON oee_settings TO factory5g_api",
    # The simulator gives its demo projects a plan (never overwriting one).
    "GRANT SELECT, INSERT ON oee_settings TO factory5g_simulator",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON oee_states_5m, oee_counts_5m, oee_states_1h, "
    "oee_counts_1h, oee_watermark TO factory5g_api",
]

_DOWNGRADE = [
    "DROP INDEX IF EXISTS ix_telemetry_machine_state",
    "DROP TABLE IF EXISTS oee_watermark",
    "DROP TABLE IF EXISTS oee_counts_5m",
    "DROP TABLE IF EXISTS oee_counts_1h",
    "DROP TABLE IF EXISTS oee_states_1h",
    "DROP TABLE IF EXISTS oee_states_5m",
    "DROP TABLE IF EXISTS oee_settings",
]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
