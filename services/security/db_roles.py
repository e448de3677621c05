"""Database roles: who may do what, as SQL the bootstrap step and the tools share.

Three kinds of role, none of them a superuser once the cluster is set up:

- the bootstrap superuser (the DBA's, or `postgres` in the local stack) runs
  `bootstrap_sql` once per database: it creates the schema owner and the group roles
  (creating roles needs CREATEROLE) and the TimescaleDB extension (not a trusted
  extension: it needs a superuser). Nothing else runs as it.
- the schema owner (NOSUPERUSER NOCREATEDB NOCREATEROLE) owns the database and runs the
  migrations, which grant each group exactly its job (0004_roles, 0006_least_privilege).
- group roles are NOLOGIN and cluster-wide; login users of a deployment join one
  (`factory5g db roles`), so a password rotation never touches a GRANT.

What each group may do (the grants live in the migrations; tests/test_security_db_roles.py
proves every line, and that everything else is refused):
- ingest: append to the stream tables and dead letters, insert projects, keep the device
  registry current, temporary staging tables;
- rules: read the streams and the registry, write alarms and their events;
- api: read everything; change alarm state; manage projects and rollups; API keys only
  through the owner's functions `api_key_bootstrap`, `api_key_create` and `api_key_revoke`,
  which cannot un-revoke a key and mint a key only for a live admin key (or the very first
  admin key), each change recorded in `api_key_events`; append to the audit trail (no
  UPDATE or DELETE of it); list broker credentials; the device registry and deletions
  only through the owner's functions `device_set` and `admin_purge` (0009_admin);
- simulator: name its projects (insert and update `projects`), nothing else;
- notify: read alarms, devices, projects and the notification configuration; work the
  notification outbox and deliveries (0008_notifications). The API configures channels,
  routes and policies; the outbox is written by a trigger owned by the schema owner.
- commands (the commander, 0010_commands): read devices and the command allow-list, claim
  and update commands, append command events and dead letters, keep VDA 5050 header ids.
  The API inserts commands and their `queued` event and manages the allow-list.
"""

from __future__ import annotations

from typing import Final

INGEST: Final = "factory5g_ingest"
RULES: Final = "factory5g_rules"
API: Final = "factory5g_api"
SIMULATOR: Final = "factory5g_simulator"
NOTIFY: Final = "factory5g_notify"
COMMANDS: Final = "factory5g_commands"
GROUPS: Final = (INGEST, RULES, API, SIMULATOR, NOTIFY, COMMANDS)
# Service name (as `factory5g up` runs it) -> its group role.
SERVICE_GROUP: Final = {
    "ingest": INGEST,
    "rules": RULES,
    "api": API,
    "simulate": SIMULATOR,
    "notify": NOTIFY,
    "commands": COMMANDS,
}

OWNER_ATTRIBUTES: Final = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def create_group_sql(role: str) -> str:
    # A concurrent migration of another database may create the role between the check and
    # the CREATE: both duplicate_object and unique_violation mean "it exists now".
    return (
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} NOLOGIN; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )


def owner_sql(owner: str, password: str) -> str:
    """Create or refresh the schema owner: a login role without any superpower."""
    pw = password.replace("'", "''")
    return (
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{owner}') THEN "
        f"EXECUTE format('CREATE ROLE %I', '{owner}'); END IF; "
        f"EXECUTE format('ALTER ROLE %I {OWNER_ATTRIBUTES} PASSWORD %L', '{owner}', '{pw}'); "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )


def bootstrap_sql(database: str, owner: str) -> tuple[list[str], list[str]]:
    """(statements in any database, statements in `database`) for the bootstrap superuser,
    after the owner exists and `database` was created with `OWNER <owner>`."""
    cluster = [create_group_sql(role) for role in GROUPS]
    cluster.append(f'ALTER DATABASE "{database}" OWNER TO "{owner}"')
    in_database = [
        "CREATE EXTENSION IF NOT EXISTS timescaledb",
        # PostgreSQL 15 gives the public schema to the database owner already; older
        # clusters (and dumps restored from them) do not.
        f'ALTER SCHEMA public OWNER TO "{owner}"',
    ]
    return cluster, in_database


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
