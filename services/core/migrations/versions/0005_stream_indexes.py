"""Drop the (project_id, ts) index of the high-rate stream tables.

Every row written pays for every index on its table, and on these tables this index cost
about a fifth of PostgreSQL's per-row insert time while serving no query that needs it:
project-wide reads of link KPIs, AGV status and telemetry come from the rollups, and the
raw rows they add (the ragged edges of a range, the last minute or two) are found through
the hypertable's own time index. Device reads use the unique key, which starts with
(project_id, device_id, ts). Inspections keep theirs: the dashboard's station chart reads
raw inspections per project over its whole range.

Revision ID: 0005_stream_indexes
Revises: 0004_roles
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0005_stream_indexes"
# Branched off 0001 until the chain was made linear (see services/core/db.py `migrate`).
down_revision = "0004_roles"

_UNINDEXED_BY_PROJECT = ("agv_status", "link_kpis", "telemetry")
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in _UNINDEXED_BY_PROJECT:
        op.execute(f"DROP INDEX IF EXISTS ix_{name}_project_ts")


def downgrade() -> None:
    for name in _UNINDEXED_BY_PROJECT:
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_{name}_project_ts ON {name} (project_id, ts DESC)"
        )
