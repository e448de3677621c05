"""Database roles of the services (ingest, rules, api) with least-privilege grants.

The role SQL is written out literally, as it was when this revision was made: a migration
must do the same thing whenever it runs, whatever services/security/db_roles.py says later
(0006_least_privilege narrows these grants).

Revision ID: 0004_roles
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from services.api.rollups.specs import ROLLUP_TABLES
from services.core import tables as t

revision = "0004_roles"
down_revision = "0001"
branch_labels = None
depends_on = None

_INGEST = "factory5g_ingest"
_RULES = "factory5g_rules"
_API = "factory5g_api"
_GROUPS = (_INGEST, _RULES, _API)
_STREAMS = "inspections, agv_status, link_kpis, telemetry"


def _create_group_sql(role: str) -> str:
    # A concurrent migration of another database may create the role between the check and
    # the CREATE: both duplicate_object and unique_violation mean "it exists now".
    return (
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} NOLOGIN; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )


def upgrade() -> None:
    # The API's grants name its tables (keys, rollups), and branches off 0001 run in no
    # fixed order: create them here if 0003_api has not yet (it creates with checkfirst too).
    bind = op.get_bind()
    for table in (t.api_keys, t.rollup_watermarks, *ROLLUP_TABLES.values()):
        table.create(bind, checkfirst=True)
    for role in _GROUPS:
        op.execute(_create_group_sql(role))
    rollups = ", ".join([*(table.name for table in ROLLUP_TABLES.values()), "rollup_watermarks"])
    everyone = ", ".join(_GROUPS)
    for statement in (
        f"GRANT USAGE ON SCHEMA public TO {everyone}",
        f"GRANT SELECT, INSERT ON {_STREAMS}, dead_letters TO {_INGEST}",
        f"GRANT SELECT, INSERT, UPDATE ON projects, devices TO {_INGEST}",
        f"GRANT SELECT ON {_STREAMS}, projects, devices TO {_RULES}",
        f"GRANT SELECT, INSERT, UPDATE ON alarms, alarm_events TO {_RULES}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {_API}",
        f"GRANT UPDATE ON alarms TO {_API}",
        f"GRANT INSERT ON alarm_events TO {_API}",
        f"GRANT INSERT, UPDATE ON projects, api_keys TO {_API}",
        f"GRANT INSERT, UPDATE, DELETE ON {rollups} TO {_API}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {everyone}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {_API}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    ):
        op.execute(statement)


def downgrade() -> None:
    # The roles are cluster-wide and other databases may use them: only this database's
    # grants are withdrawn.
    everyone = ", ".join(_GROUPS)
    for statement in (
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {everyone}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {everyone}",
        f"REVOKE USAGE ON SCHEMA public FROM {everyone}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {_API}",
    ):
        op.execute(statement)
