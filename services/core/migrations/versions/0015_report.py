"""The loss ledger: per device and hour, records received and expected from their counters.

Devices number their records (`seq` of native streams, VDA 5050 `headerId`, Sparkplug
`seq` 0-255 of an edge node). How many records a device sent over 30 days follows from
those numbers, but reading them means reading every raw row; this table keeps, per
(project, device, counter, hour), the records received, the records expected from the
counter's steps (the step into the hour's first record included), repeats, resets, and the
hour's first and last counter values, so a report sums a few hundred rows per device. The
API's rollup loop fills it (services/api/report/ledger.py); its watermark lives in
`rollup_watermarks` (spec `ledger`), so a rewind and the retention of `rollup_1h` cover it.

Revision ID: 0015_report
Revises: 0011_effective_rules
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0015_report"
down_revision = "0011_effective_rules"
branch_labels = None
depends_on = None

_UPGRADE = [
    """
    CREATE TABLE rollup_ledger_1h (
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
    "CREATE UNIQUE INDEX uq_rollup_ledger_1h ON rollup_ledger_1h "
    "(project_id, device_id, counter, bucket)",
    "CREATE INDEX ix_rollup_ledger_1h_project_bucket ON rollup_ledger_1h (project_id, bucket)",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON rollup_ledger_1h TO factory5g_api",
]

_DOWNGRADE = ["DROP TABLE IF EXISTS rollup_ledger_1h"]


def upgrade() -> None:
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    for statement in _DOWNGRADE:
        op.execute(statement)
