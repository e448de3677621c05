"""Initial schema: projects, devices, stream hypertables, alarms, dead letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from services.core import tables as t

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_CREATED = [
    t.projects,
    t.devices,
    t.inspections,
    t.agv_status,
    t.link_kpis,
    t.telemetry,
    t.alarms,
    t.alarm_events,
    t.dead_letters,
]


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    bind = op.get_bind()
    for table in _CREATED:
        table.create(bind, checkfirst=True)
    for name, interval in t.HYPERTABLES.items():
        time_col = "received_at" if name == "dead_letters" else "ts"
        op.execute(
            f"SELECT create_hypertable('{name}', '{time_col}', "
            f"chunk_time_interval => INTERVAL '{interval}', if_not_exists => TRUE)"
        )
    for name, key in t.STREAM_KEYS.items():
        op.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS uq_{name}_key ON {name} ({', '.join(key)})")
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_{name}_project_ts ON {name} (project_id, ts DESC)"
        )


def downgrade() -> None:
    for table in reversed(_CREATED):
        table.drop(op.get_bind(), checkfirst=True)
