"""The loss ledger: per device and minute / hour, records received and expected from counters.

Devices number their records (`seq` of native streams, VDA 5050 `headerId`, Sparkplug
`seq` 0-255 of an edge node). How many records a device sent over 30 days follows from
those numbers, but reading them means reading every raw row; these tables keep, per
(project, device, counter, minute / hour), the records received, the records expected from
the counter's steps (the step into the bucket's first record included), repeats, resets,
and the bucket's first and last counter values, so a report sums a few hundred rows per
device. The API's rollup loop fills them (services/api/report/ledger.py); the watermark
lives in `rollup_watermarks` (spec `ledger`), so a rewind and the retention of
`rollup_1m` / `rollup_1h` cover them (their names follow the rollups' pattern).

Revision ID: 0015_report
Revises: 0016_commands_fast
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0015_report"
down_revision = "0016_commands_fast"
branch_labels = None
depends_on = None


def _table(name: str) -> list[str]:
    return [
        f"""
        CREATE TABLE {name} (
            bucket timestamptz NOT NULL,
            project_id text NOT NULL,
            device_id text NOT NULL,
            counter text NOT NULL CHECK (counter IN ('seq', 'sparkplug')),
            received bigint NOT NULL,
            repeats bigint NOT NULL,
            expected bigint NOT NULL,
            resets bigint NOT NULL,
            first_seq bigint NOT NULL,
            last_seq bigint NOT NULL,
            first_ts timestamptz NOT NULL,
            last_ts timestamptz NOT NULL
        )
        """,
        f"CREATE UNIQUE INDEX uq_{name} ON {name} (project_id, device_id, counter, bucket)",
        f"CREATE INDEX ix_{name}_project_bucket ON {name} (project_id, bucket)",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {name} TO factory5g_api",
    ]


_UPGRADE = [*_table("rollup_ledger_1m"), *_table("rollup_ledger_1h")]

_DOWNGRADE = [
    "DROP TABLE IF EXISTS rollup_ledger_1m",
    "DROP TABLE IF EXISTS rollup_ledger_1h",
]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
