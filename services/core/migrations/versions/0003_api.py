"""API: keys, and per-minute / per-hour rollups of the stream tables.

Revision ID: 0003_api
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from services.api.rollups.specs import ROLLUP_TABLES
from services.core import tables as t

revision = "0003_api"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    t.api_keys.create(bind, checkfirst=True)
    t.rollup_watermarks.create(bind, checkfirst=True)
    # Plain tables, not hypertables: a month of per-minute summaries is a few million
    # rows, well served by their btree indexes.
    for table in ROLLUP_TABLES.values():
        table.create(bind, checkfirst=True)


def downgrade() -> None:
    bind = op.get_bind()
    for table in ROLLUP_TABLES.values():
        table.drop(bind, checkfirst=True)
    t.rollup_watermarks.drop(bind, checkfirst=True)
    t.api_keys.drop(bind, checkfirst=True)
