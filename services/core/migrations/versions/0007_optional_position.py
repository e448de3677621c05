"""AGV status without a position (nullable columns), and a table for text telemetry.

VDA 5050 (2.0.0 and 2.1.0) makes `agvPosition` and `velocity` optional: a line-guided AGV
never reports a map position. Ingest used to dead-letter such a state, or invent the last
position with localisation 0, which raised a false critical alarm. Now it stores what the
AGV sent and NULL for the rest; the rollups' count/sum/min/max skip NULLs already.

Dropping NOT NULL only changes the catalogue (no table rewrite), also on hypertables,
whose chunks inherit the change. The downgrade cannot restore NOT NULL while rows hold
NULLs; it refuses rather than delete or invent data.

`telemetry_text` holds Sparkplug B String and Text metrics, which the numeric `telemetry`
table cannot: same columns with a text value, same natural key (so a redelivered message
maps onto the same rows). It is a plain table, not a hypertable: string metrics are states,
recipes and versions that change rarely.

Revision ID: 0007_optional_position
Revises: 0005_stream_indexes
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007_optional_position"
down_revision = "0005_stream_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE agv_status"
        " ALTER COLUMN x DROP NOT NULL,"
        " ALTER COLUMN y DROP NOT NULL,"
        " ALTER COLUMN heading DROP NOT NULL,"
        " ALTER COLUMN speed DROP NOT NULL,"
        " ALTER COLUMN localization DROP NOT NULL"
    )

    op.execute(
        "CREATE TABLE IF NOT EXISTS telemetry_text ("
        " ts timestamptz NOT NULL,"
        " project_id text NOT NULL,"
        " device_id text NOT NULL,"
        " seq bigint NOT NULL,"
        " metric text NOT NULL,"
        " value text NOT NULL,"
        " received_at timestamptz NOT NULL)"
    )
    op.execute(
        "CREATE UNIQUE INDEX IF NOT EXISTS uq_telemetry_text_key"
        " ON telemetry_text (project_id, device_id, metric, ts, seq)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS telemetry_text")
    # Fails (and changes nothing) if any stored status lacks one of these values.
    op.execute(
        "ALTER TABLE agv_status"
        " ALTER COLUMN x SET NOT NULL,"
        " ALTER COLUMN y SET NOT NULL,"
        " ALTER COLUMN heading SET NOT NULL,"
        " ALTER COLUMN speed SET NOT NULL,"
        " ALTER COLUMN localization SET NOT NULL"
    )
