"""API: keys, and per-minute / per-hour rollups of the stream tables.

Frozen: the column lists are written out as this revision created them (from the rollup
specs of 2026-11-24), and nothing is imported from the live code.

Revision ID: 0003_api
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0003_api"
down_revision = "0001"
branch_labels = None
depends_on = None

_RESOLUTIONS = ("1m", "1h")
_LATENCY_BUCKETS = 31  # lat_h00 .. lat_h30

# rollup -> (extra group keys, numeric fields with n/sum/min/max/last, extra counts)
_ROLLUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "inspection": ((), ("confidence", "inference_ms", "defect_count"), ("passed_n",)),
    "defects": (("defect_type",), (), ()),
    "agv": (
        (),
        ("x", "y", "heading", "speed", "battery", "localization"),
        (
            "idle_n",
            "moving_n",
            "charging_n",
            "loading_n",
            "error_n",
            "estop_n",
            "lowbatt_n",
            "estop_entries",
        ),
    ),
    "link": (
        (),
        ("rsrp", "sinr", "latency_ms", "rsrq", "jitter_ms", "loss_pct", "ul_mbps", "dl_mbps"),
        (
            *(f"rsrp_b{i}" for i in range(4)),
            *(f"sinr_b{i}" for i in range(4)),
            *(f"lat_h{i:02d}" for i in range(_LATENCY_BUCKETS)),
        ),
    ),
    "telemetry": (("metric",), ("value",), ()),
}


def _rollup_ddl(name: str, resolution: str) -> list[str]:
    keys, fields, counts = _ROLLUPS[name]
    table = f"rollup_{name}_{resolution}"
    cols = [
        "bucket TIMESTAMP WITH TIME ZONE NOT NULL",
        "project_id TEXT NOT NULL",
        "device_id TEXT NOT NULL",
        *(f"{key} TEXT NOT NULL" for key in keys),
        "n BIGINT NOT NULL",
        "last_ts TIMESTAMP WITH TIME ZONE NOT NULL",
    ]
    for f in fields:
        cols += [
            f"{f}_n BIGINT NOT NULL",
            f"{f}_sum DOUBLE PRECISION",
            f"{f}_min DOUBLE PRECISION",
            f"{f}_max DOUBLE PRECISION",
            f"{f}_last DOUBLE PRECISION",
        ]
    cols += [f"{c} BIGINT NOT NULL" for c in counts]
    unique = ", ".join(("project_id", "device_id", *keys, "bucket"))
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(cols)})",
        f"CREATE UNIQUE INDEX IF NOT EXISTS uq_{table} ON {table} ({unique})",
        f"CREATE INDEX IF NOT EXISTS ix_{table}_project_bucket ON {table} (project_id, bucket)",
    ]


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS api_keys (
            prefix TEXT NOT NULL,
            hash TEXT NOT NULL,
            name TEXT NOT NULL,
            scope TEXT NOT NULL,
            projects TEXT[],
            created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            revoked_at TIMESTAMP WITH TIME ZONE,
            PRIMARY KEY (prefix)
        )
        """
    )
    for column, comment in (
        ("prefix", "Visible part of the key, for lookup."),
        ("hash", "sha256 hex of the whole key."),
        ("scope", "read | operate | admin"),
        ("projects", "Visible projects; NULL = all."),
    ):
        op.execute(f"COMMENT ON COLUMN api_keys.{column} IS '{comment}'")
    op.execute(
        """
        CREATE TABLE IF NOT EXISTS rollup_watermarks (
            spec TEXT NOT NULL,
            resolution TEXT NOT NULL,
            watermark TIMESTAMP WITH TIME ZONE NOT NULL,
            updated_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
            PRIMARY KEY (spec, resolution)
        )
        """
    )
    # Plain tables, not hypertables: a month of per-minute summaries is a few million
    # rows, well served by their btree indexes.
    for name in _ROLLUPS:
        for resolution in _RESOLUTIONS:
            for statement in _rollup_ddl(name, resolution):
                op.execute(statement)


def downgrade() -> None:
    for name in _ROLLUPS:
        for resolution in _RESOLUTIONS:
            op.execute(f"DROP TABLE IF EXISTS rollup_{name}_{resolution}")
    op.execute("DROP TABLE IF EXISTS rollup_watermarks")
    op.execute("DROP TABLE IF EXISTS api_keys")
