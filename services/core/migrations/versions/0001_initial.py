"""Initial schema: projects, devices, stream hypertables, alarms, dead letters.

Frozen: the DDL is written out as this revision created it, and nothing is imported from
the live code, so a database built today gets the schema a database built on 2026-11-24
got. Later changes belong in later revisions (0007_optional_position made the AGV
position columns nullable; 0005_stream_indexes dropped three of the project indexes).

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TABLES = [
    """
    CREATE TABLE IF NOT EXISTS projects (
        id TEXT NOT NULL,
        name TEXT NOT NULL,
        enterprise TEXT,
        city TEXT,
        scenario TEXT,
        status TEXT DEFAULT 'active' NOT NULL,
        targets JSONB DEFAULT '{}'::jsonb NOT NULL,
        created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        PRIMARY KEY (id)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS devices (
        project_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        first_seen TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        last_seen TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
        online BOOLEAN DEFAULT true NOT NULL,
        metadata JSONB DEFAULT '{}'::jsonb NOT NULL,
        PRIMARY KEY (project_id, device_id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS ix_devices_project_kind ON devices (project_id, kind)",
    """
    CREATE TABLE IF NOT EXISTS inspections (
        ts TIMESTAMP WITH TIME ZONE NOT NULL,
        project_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        station TEXT NOT NULL,
        part_id TEXT NOT NULL,
        passed BOOLEAN NOT NULL,
        defect_count SMALLINT NOT NULL,
        defects JSONB,
        confidence DOUBLE PRECISION NOT NULL,
        inference_ms DOUBLE PRECISION NOT NULL,
        model TEXT,
        received_at TIMESTAMP WITH TIME ZONE NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS agv_status (
        ts TIMESTAMP WITH TIME ZONE NOT NULL,
        project_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        x DOUBLE PRECISION NOT NULL,
        y DOUBLE PRECISION NOT NULL,
        heading DOUBLE PRECISION NOT NULL,
        speed DOUBLE PRECISION NOT NULL,
        battery DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        localization DOUBLE PRECISION NOT NULL,
        task_id TEXT,
        error_code TEXT,
        received_at TIMESTAMP WITH TIME ZONE NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS link_kpis (
        ts TIMESTAMP WITH TIME ZONE NOT NULL,
        project_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        rsrp DOUBLE PRECISION NOT NULL,
        sinr DOUBLE PRECISION NOT NULL,
        latency_ms DOUBLE PRECISION NOT NULL,
        rsrq DOUBLE PRECISION,
        jitter_ms DOUBLE PRECISION,
        loss_pct DOUBLE PRECISION,
        ul_mbps DOUBLE PRECISION,
        dl_mbps DOUBLE PRECISION,
        cell_id TEXT,
        slice TEXT,
        received_at TIMESTAMP WITH TIME ZONE NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS telemetry (
        ts TIMESTAMP WITH TIME ZONE NOT NULL,
        project_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        metric TEXT NOT NULL,
        value DOUBLE PRECISION NOT NULL,
        received_at TIMESTAMP WITH TIME ZONE NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS alarms (
        id BIGSERIAL NOT NULL,
        project_id TEXT NOT NULL,
        device_id TEXT NOT NULL,
        rule TEXT NOT NULL,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        message TEXT DEFAULT '' NOT NULL,
        count INTEGER DEFAULT '1' NOT NULL,
        last_value DOUBLE PRECISION,
        evidence JSONB DEFAULT '{}'::jsonb NOT NULL,
        opened_at TIMESTAMP WITH TIME ZONE NOT NULL,
        updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
        acknowledged_at TIMESTAMP WITH TIME ZONE,
        acknowledged_by TEXT,
        cleared_at TIMESTAMP WITH TIME ZONE,
        PRIMARY KEY (id)
    )
    """,
    "CREATE INDEX IF NOT EXISTS ix_alarms_device_rule ON alarms (project_id, device_id, rule)",
    "CREATE INDEX IF NOT EXISTS ix_alarms_project_opened ON alarms (project_id, opened_at)",
    "CREATE UNIQUE INDEX IF NOT EXISTS uq_alarms_active ON alarms (project_id, device_id, rule) "
    "WHERE state <> 'cleared'",
    """
    CREATE TABLE IF NOT EXISTS alarm_events (
        ts TIMESTAMP WITH TIME ZONE NOT NULL,
        alarm_id BIGINT NOT NULL,
        project_id TEXT NOT NULL,
        transition TEXT NOT NULL,
        severity TEXT NOT NULL,
        actor TEXT,
        evidence JSONB DEFAULT '{}'::jsonb NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS ix_alarm_events_alarm ON alarm_events (alarm_id, ts)",
    """
    CREATE TABLE IF NOT EXISTS dead_letters (
        received_at TIMESTAMP WITH TIME ZONE NOT NULL,
        topic TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        project_id TEXT,
        device_id TEXT,
        payload BYTEA,
        payload_size INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS ix_dead_letters_device "
    "ON dead_letters (project_id, device_id, received_at)",
    "CREATE INDEX IF NOT EXISTS ix_dead_letters_reason ON dead_letters (reason, received_at)",
    "COMMENT ON COLUMN projects.id IS 'Project id as used in topics.'",
    "COMMENT ON COLUMN projects.scenario IS 'e.g. vision inspection, AGV logistics'",
    "COMMENT ON COLUMN alarms.state IS 'open | acknowledged | cleared'",
    "COMMENT ON COLUMN alarm_events.transition IS 'opened|updated|escalated|acknowledged|cleared'",
    "COMMENT ON COLUMN dead_letters.payload IS 'First bytes of the payload.'",
]

# table -> (time column, chunk interval)
_HYPERTABLES = {
    "inspections": ("ts", "1 day"),
    "agv_status": ("ts", "1 day"),
    "link_kpis": ("ts", "1 day"),
    "telemetry": ("ts", "1 day"),
    "alarm_events": ("ts", "7 days"),
    "dead_letters": ("received_at", "7 days"),
}

# stream table -> natural key (a redelivered message maps onto the same rows)
_STREAM_KEYS = {
    "inspections": "project_id, device_id, ts, seq",
    "agv_status": "project_id, device_id, ts, seq",
    "link_kpis": "project_id, device_id, ts, seq",
    "telemetry": "project_id, device_id, metric, ts, seq",
}


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    for statement in _TABLES:
        op.execute(statement)
    for name, (time_col, interval) in _HYPERTABLES.items():
        op.execute(
            f"SELECT create_hypertable('{name}', '{time_col}', "
            f"chunk_time_interval => INTERVAL '{interval}', if_not_exists => TRUE)"
        )
    for name, key in _STREAM_KEYS.items():
        op.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS uq_{name}_key ON {name} ({key})")
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_{name}_project_ts ON {name} (project_id, ts DESC)"
        )


def downgrade() -> None:
    for name in (
        "dead_letters",
        "alarm_events",
        "alarms",
        "telemetry",
        "link_kpis",
        "agv_status",
        "inspections",
        "devices",
        "projects",
    ):
        op.execute(f"DROP TABLE IF EXISTS {name}")
