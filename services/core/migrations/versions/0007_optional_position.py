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
recipes and versions that change rarely. The ingest group role may append to it and the
API role read it, as with the other stores (0004_roles). Branches off 0001 run in no fixed
order, so the two group roles are created here if 0004_roles has not yet, with the same
idempotent statement.

Revision ID: 0007_optional_position
Revises: 0006_least_privilege
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0007_optional_position"
# Branched off 0005_stream_indexes, beside 0006_least_privilege, until the chain was made
# linear (see services/core/db.py `migrate`).
down_revision = "0006_least_privilege"
branch_labels = None
depends_on = None

_ROLE_SQL = (
    "DO $$ BEGIN "
    "IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
    "CREATE ROLE {role} NOLOGIN; END IF; "
    "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
)


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
    for role in ("factory5g_ingest", "factory5g_api"):
        op.execute(_ROLE_SQL.format(role=role))
    op.execute("GRANT SELECT, INSERT ON telemetry_text TO factory5g_ingest")
    op.execute("GRANT SELECT ON telemetry_text TO factory5g_api")


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
