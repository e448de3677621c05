"""Database roles of the services (ingest, rules, api) with least-privilege grants.

The role SQL is written out literally, as it was when this revision was made: a migration
must do the same thing whenever it runs, whatever services/security/db_roles.py says later
(0006_least_privilege narrows these grants).

Revision ID: 0004_roles
Revises: 0003_api
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0004_roles"
# Branched off 0001 until the chain was made linear; a database migrated while it was a
# branch is recognised by services/core/db.py (see `migrate`).
down_revision = "0003_api"
branch_labels = None
depends_on = None

_INGEST = "factory5g_ingest"
_RULES = "factory5g_rules"
_API = "factory5g_api"
_GROUPS = (_INGEST, _RULES, _API)
_STREAMS = "inspections, agv_status, link_kpis, telemetry"
# The rollup tables of 0003_api and their watermarks.
_ROLLUPS = (
    "rollup_inspection_1m, rollup_inspection_1h, rollup_defects_1m, rollup_defects_1h, "
    "rollup_agv_1m, rollup_agv_1h, rollup_link_1m, rollup_link_1h, "
    "rollup_telemetry_1m, rollup_telemetry_1h, rollup_watermarks"
)


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
    for role in _GROUPS:
        op.execute(_create_group_sql(role))
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
        f"GRANT INSERT, UPDATE, DELETE ON {_ROLLUPS} TO {_API}",
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
