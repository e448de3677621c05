"""Database roles: what each service may do, as SQL the migration and the tools share.

Group roles are NOLOGIN and cluster-wide; the migration creates them if missing (many
databases of one cluster run it, possibly at the same time) and grants privileges in the
current database. Login users for a deployment join a group (`factory5g db roles`), so a
password rotation never touches a GRANT. Migrations run as the schema owner, never as these.
"""

from __future__ import annotations

from typing import Final

INGEST: Final = "factory5g_ingest"
RULES: Final = "factory5g_rules"
API: Final = "factory5g_api"
GROUPS: Final = (INGEST, RULES, API)
SERVICE_GROUP: Final = {"ingest": INGEST, "rules": RULES, "api": API}

STREAMS: Final = ("inspections", "agv_status", "link_kpis", "telemetry")


def create_group_sql(role: str) -> str:
    # A concurrent migration of another database may create the role between the check and
    # the CREATE: both duplicate_object and unique_violation mean "it exists now".
    return (
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} NOLOGIN; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )


def grant_sql(rollup_tables: list[str]) -> list[str]:
    streams = ", ".join(STREAMS)
    rollups = ", ".join([*rollup_tables, "rollup_watermarks"])
    everyone = ", ".join(GROUPS)
    return [
        f"GRANT USAGE ON SCHEMA public TO {everyone}",
        # ingest: append to the stores and dead letters, keep the device registry current.
        f"GRANT SELECT, INSERT ON {streams}, dead_letters TO {INGEST}",
        f"GRANT SELECT, INSERT, UPDATE ON projects, devices TO {INGEST}",
        # rules: read the stores and the registry, own the alarm tables.
        f"GRANT SELECT ON {streams}, projects, devices TO {RULES}",
        f"GRANT SELECT, INSERT, UPDATE ON alarms, alarm_events TO {RULES}",
        # api: read everything; change alarm state; manage projects, keys and rollups.
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {API}",
        f"GRANT UPDATE ON alarms TO {API}",
        f"GRANT INSERT ON alarm_events TO {API}",
        f"GRANT INSERT, UPDATE ON projects, api_keys TO {API}",
        f"GRANT INSERT, UPDATE, DELETE ON {rollups} TO {API}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {everyone}",
        # Tables later migrations add stay readable by the API without a new grant.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {API}",
        # Nobody but the owner may create objects, whatever PUBLIC was given before PG 15.
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    ]


def revoke_sql() -> list[str]:
    everyone = ", ".join(GROUPS)
    return [
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {everyone}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {everyone}",
        f"REVOKE USAGE ON SCHEMA public FROM {everyone}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {API}",
    ]


def login_user_sql(user: str, group: str, password: str) -> str:
    """Create or update a LOGIN user in `group`; quoting is by format() inside the server."""
    if group not in GROUPS:
        raise ValueError(f"unknown group role {group!r}")
    pw = password.replace("'", "''")
    return (
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{user}') THEN "
        f"EXECUTE format('CREATE ROLE %I LOGIN', '{user}'); END IF; "
        f"EXECUTE format('ALTER ROLE %I LOGIN PASSWORD %L', '{user}', '{pw}'); "
        f"EXECUTE format('GRANT {group} TO %I', '{user}'); "
        "END $$"
    )
