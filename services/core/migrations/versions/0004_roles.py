"""Database roles of the services (ingest, rules, api) with least-privilege grants.

Revision ID: 0004_roles
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from services.api.rollups.specs import ROLLUP_TABLES
from services.core import tables as t
from services.security import db_roles

revision = "0004_roles"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The API's grants name its tables (keys, rollups), and branches off 0001 run in no
    # fixed order: create them here if 0003_api has not yet (it creates with checkfirst too).
    bind = op.get_bind()
    for table in (t.api_keys, t.rollup_watermarks, *ROLLUP_TABLES.values()):
        table.create(bind, checkfirst=True)
    for role in db_roles.GROUPS:
        op.execute(db_roles.create_group_sql(role))
    for statement in db_roles.grant_sql([table.name for table in ROLLUP_TABLES.values()]):
        op.execute(statement)


def downgrade() -> None:
    # The roles are cluster-wide and other databases may use them: only this database's
    # grants are withdrawn.
    for statement in db_roles.revoke_sql():
        op.execute(statement)
