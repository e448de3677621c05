"""Each service's database role can do its job and nothing more, on the real database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from f5gdev.devstack.servers import Mosquitto, Postgres, StackError
from services.api.auth.keys import hash_token as keys_hash
from services.core import db
from services.security import db_roles
from tests.conftest import make_settings
from tests.test_api_support import api_settings, client
from tests.test_ingest_helpers import inspection, publish, running, topic, wait_count

ROW = "'2026-11-24T08:00:00Z'"
TELEMETRY_INSERT = f"INSERT INTO telemetry VALUES ({ROW}, 'p1', 'm1', 1, 'temp', 20.5, {ROW})"
ALARM_INSERT = (
    "INSERT INTO alarms (project_id, device_id, rule, severity, state, opened_at, updated_at) "
    f"VALUES ('p1', 'm1', 'r', 'major', 'open', {ROW}, {ROW}) RETURNING id"
)
ALARM_EVENT_INSERT = (
    "INSERT INTO alarm_events (ts, alarm_id, project_id, transition, severity, actor) "
    "VALUES (now(), 1, 'p1', 'acknowledged', 'major', 'op')"
)
DEAD_LETTER_INSERT = (
    "INSERT INTO dead_letters (received_at, topic, reason, detail, payload_size) "
    "VALUES (now(), 't', 'schema', 'd', 0)"
)
DEVICE_INSERT = "INSERT INTO devices (project_id, device_id, kind) VALUES ('p1', 'm1', 'machine')"
PROJECT_INSERT = "INSERT INTO projects (id, name) VALUES ('p1', 'p1')"
PROJECT_UPSERT = (  # the simulator's registration of its project names
    "INSERT INTO projects (id, name, city) VALUES ('p1', 'Plant 1', 'Suzhou') "
    "ON CONFLICT (id) DO UPDATE SET name = excluded.name, city = excluded.city"
)
OUTBOX_INSERT = (
    "INSERT INTO notify_outbox (kind, alarm_id, project_id, event_ts, seq, route_id) "
    "VALUES ('escalation', 1, 'p1', now(), 1, 1)"
)
CHANNEL_INSERT = "INSERT INTO notify_channels (name, type) VALUES ('x', 'webhook')"
# An admin key of the attacker's choosing, and the ways back from a revocation.
KEY_MINT = (
    "INSERT INTO api_keys (prefix, hash, name, scope) "
    "VALUES ('evil000000', repeat('0', 64), 'evil', 'admin')"
)
# The API's one-round-trip command queue (0016_commands_fast): the API role only.
QUEUE_NATIVE = (
    "SELECT * FROM command_queue_native(gen_random_uuid(), 'p1', 'm1', 'stop', '{}', 'op', "
    "60, 60, 5, false, true, ARRAY['spb-node'])"
)
KEY_UNREVOKE = "UPDATE api_keys SET revoked_at = NULL"
KEY_ESCALATE = "UPDATE api_keys SET scope = 'admin', projects = NULL"
# Ways out of the database onto the server, and to other roles' secrets.
COPY_TO_PROGRAM = "COPY (SELECT 1) TO PROGRAM 'true'"
COPY_TO_FILE = "COPY (SELECT 1) TO '/tmp/f5g-db-roles-test.out'"
SERVER_FILES = (
    COPY_TO_PROGRAM,
    COPY_TO_FILE,
    "SELECT pg_read_file('/etc/hostname')",
    "SELECT lo_import('/etc/hostname')",
    "SELECT rolpassword FROM pg_authid",
    "CREATE EXTENSION file_fdw",
    "CREATE ROLE f5g_evil LOGIN PASSWORD 'evil'",
)
# Objects in the schema: only the owner creates them, through migrations.
SCHEMA_CHANGES = (
    "CREATE TABLE evil (x int)",
    "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE VIEW evil AS SELECT 1",
    "DROP TABLE telemetry",
    "ALTER TABLE devices ADD COLUMN evil int",
)

# Per role: what its job needs (must work, so the table cannot pass by refusing everything)
# and what lies outside it (must be refused by PostgreSQL itself).
ALLOWED: dict[str, tuple[str, ...]] = {
    "owner": (
        "CREATE TABLE owner_scratch (x int)",
        TELEMETRY_INSERT,
        "SELECT count(*) FROM api_keys",
        "DELETE FROM dead_letters",
    ),
    "ingest": (
        TELEMETRY_INSERT,
        PROJECT_INSERT + " ON CONFLICT (id) DO NOTHING",
        DEVICE_INSERT,
        "UPDATE devices SET online = false WHERE device_id = 'm1'",
        DEAD_LETTER_INSERT,
        "CREATE TEMP TABLE stage_telemetry (LIKE telemetry INCLUDING DEFAULTS)",
    ),
    "rules": (
        "SELECT count(*) FROM telemetry",
        "SELECT count(*) FROM devices",
        ALARM_INSERT,
        "UPDATE alarms SET count = count + 1",
        "INSERT INTO alarm_events (ts, alarm_id, project_id, transition, severity) "
        "VALUES (now(), 1, 'p1', 'opened', 'major')",
    ),
    "api": (
        QUEUE_NATIVE,
        *(
            f"SELECT count(*) FROM {table}"
            for table in ("telemetry", "inspections", "devices", "alarms", "api_keys")
        ),
        "SELECT count(*) FROM dead_letters",
        "UPDATE alarms SET state = 'acknowledged'",
        ALARM_EVENT_INSERT,
        PROJECT_INSERT,
        "UPDATE projects SET name = name",
        "DELETE FROM rollup_watermarks",
        # the loss ledger the API's rollup loop keeps (0015_report)
        "INSERT INTO rollup_ledger_1m VALUES (now(), 'p1', 'm1', 'seq', 1, 0, 1, 0, 1, 1, "
        "now(), now()) ON CONFLICT (project_id, device_id, counter, bucket) "
        "DO UPDATE SET received = 2",
        "DELETE FROM rollup_ledger_1h",
        CHANNEL_INSERT,
        "UPDATE notify_routes SET enabled = false",
        "DELETE FROM notify_policies",
        OUTBOX_INSERT,
        "SELECT count(*) FROM notify_deliveries",
        "INSERT INTO command_allow (project_id, kind, name) VALUES ('p1', 'agv', 'stop')",
        "DELETE FROM command_allow",
        "SELECT count(*) FROM commands, command_events, command_targets",
    ),
    "simulator": (PROJECT_UPSERT,),
    "notify": (
        "SELECT count(*) FROM alarms",
        "SELECT count(*) FROM devices",
        "SELECT count(*) FROM notify_channels",
        "SELECT count(*) FROM notify_routes",
        "SELECT count(*) FROM notify_policies",
        OUTBOX_INSERT,
        "UPDATE notify_outbox SET routed_at = now()",
        "UPDATE notify_deliveries SET state = 'sent'",
        "SELECT count(*) FROM notify_attempts",
    ),
    "commands": (
        "SELECT count(*) FROM devices, command_allow",
        "SELECT id FROM commands WHERE state = 'queued' FOR UPDATE SKIP LOCKED",
        "UPDATE commands SET state = 'sent', sends = sends + 1 WHERE state = 'queued'",
        "INSERT INTO command_events (command_id, project_id, device_id, state) "
        "SELECT id, project_id, device_id, 'sent' FROM commands",
        "INSERT INTO command_headers VALUES ('uagv/v2/m/s/instantActions', 0) "
        "ON CONFLICT (topic) DO UPDATE SET header_id = command_headers.header_id + 1",
        "INSERT INTO command_targets (project_id, device_id, protocol) VALUES ('p', 'd', 'x')",
        "INSERT INTO dead_letters (received_at, topic, reason, detail, payload_size) "
        "VALUES (now(), 't', 'unknown_command', 'd', 1)",
    ),
}

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "owner": SERVER_FILES,
    "ingest": (
        QUEUE_NATIVE,
        "UPDATE telemetry SET value = 0",
        "DELETE FROM telemetry",
        "TRUNCATE telemetry",
        ALARM_INSERT,
        "SELECT * FROM api_keys",
        KEY_MINT,
        "DELETE FROM devices",
        "UPDATE projects SET name = 'renamed'",
        PROJECT_UPSERT,
        *SERVER_FILES,
        *SCHEMA_CHANGES,
    ),
    "rules": (
        TELEMETRY_INSERT,
        "UPDATE devices SET online = true",
        "DELETE FROM alarms",
        "SELECT * FROM api_keys",
        KEY_MINT,
        "INSERT INTO projects (id, name) VALUES ('x', 'x')",
        "UPDATE projects SET name = 'renamed'",
        "SELECT * FROM notify_channels",  # channel secrets
        OUTBOX_INSERT,
        *SERVER_FILES,
        *SCHEMA_CHANGES,
    ),
    "api": (
        TELEMETRY_INSERT,
        "INSERT INTO inspections SELECT * FROM inspections",
        "DELETE FROM alarms",
        "INSERT INTO devices (project_id, device_id, kind) VALUES ('p9', 'd', 'k')",
        "UPDATE devices SET online = false",
        "DELETE FROM telemetry",
        KEY_MINT,
        KEY_UNREVOKE,
        KEY_ESCALATE,
        "DELETE FROM api_keys",
        "DELETE FROM api_key_events",
        "UPDATE api_key_events SET actor = 'someone else'",
        "UPDATE notify_deliveries SET state = 'sent'",
        "DELETE FROM notify_outbox",
        "UPDATE commands SET state = 'completed'",
        "DELETE FROM commands",
        "UPDATE command_events SET actor = 'someone else'",
        "INSERT INTO command_targets (project_id, device_id, protocol) VALUES ('p', 'd', 'x')",
        *SERVER_FILES,
        *SCHEMA_CHANGES,
    ),
    "simulator": (
        TELEMETRY_INSERT,
        "SELECT count(*) FROM telemetry",
        "SELECT * FROM api_keys",
        KEY_MINT,
        DEVICE_INSERT,
        ALARM_INSERT,
        "DELETE FROM projects",
        "SELECT * FROM notify_channels",
        "SELECT count(*) FROM commands",
        *SERVER_FILES,
        *SCHEMA_CHANGES,
    ),
    "notify": (
        TELEMETRY_INSERT,
        "SELECT count(*) FROM telemetry",
        "SELECT * FROM api_keys",
        KEY_MINT,
        ALARM_INSERT,
        "UPDATE alarms SET state = 'cleared'",
        ALARM_EVENT_INSERT,
        CHANNEL_INSERT,
        "UPDATE notify_channels SET config = '{}'",
        "UPDATE notify_routes SET enabled = false",
        "DELETE FROM notify_deliveries",
        "DELETE FROM notify_outbox",
        *SERVER_FILES,
        *SCHEMA_CHANGES,
    ),
    "commands": (
        QUEUE_NATIVE,
        "INSERT INTO commands (id, project_id, device_id, kind, name, actor, deadline) "
        "VALUES (gen_random_uuid(), 'p', 'd', 'k', 'n', 'a', now())",
        "DELETE FROM commands",
        "DELETE FROM command_events",
        "UPDATE command_events SET actor = 'someone else'",
        "INSERT INTO command_allow (project_id, kind, name) VALUES ('p1', 'agv', 'stop')",
        "DELETE FROM command_allow",
        "SELECT count(*) FROM telemetry",
        "SELECT * FROM api_keys",
        KEY_MINT,
        DEVICE_INSERT,
        ALARM_INSERT,
        "UPDATE devices SET online = true",
        *SERVER_FILES,
        *SCHEMA_CHANGES,
    ),
}

ROLES = tuple(ALLOWED)


def _cases(table: dict[str, tuple[str, ...]]) -> list[Any]:
    return [
        pytest.param(role, sql, id=f"{role}-{i}")
        for role in ROLES
        for i, sql in enumerate(table[role])
    ]


@pytest.fixture(scope="module")
def role_urls(pg: Postgres, database_url: str) -> dict[str, str]:
    """The schema owner, and a LOGIN user per service group, in this run's private cluster."""
    dbname = database_url.rsplit("/", 1)[1]
    urls = {"owner": database_url}
    for service, group in db_roles.SERVICE_GROUP.items():
        user = f"t_{service}_{uuid.uuid4().hex[:6]}"
        pg.psql(db_roles.login_user_sql(user, group, "pw-" + user))
        urls[ROLE_OF_SERVICE.get(service, service)] = (
            f"postgresql://{user}:pw-{user}@127.0.0.1:{pg.port}/{dbname}"
        )
    return urls


ROLE_OF_SERVICE = {"simulate": "simulator"}


async def attempt(url: str, sql: str) -> str:
    """'ok', or 'denied' when the server refuses for lack of privilege (other errors raise).

    Always rolled back: a statement that wrongly succeeds changes nothing for the others.
    """
    conn = await asyncpg.connect(db.asyncpg_dsn(url))
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(sql)
        return "ok"
    except asyncpg.InsufficientPrivilegeError:
        return "denied"
    finally:
        await tx.rollback()
        await conn.close()


@pytest.mark.parametrize(("role", "sql"), _cases(ALLOWED))
async def test_role_can_do_its_job(role_urls: dict[str, str], role: str, sql: str) -> None:
    assert await attempt(role_urls[role], sql) == "ok", sql


@pytest.mark.parametrize(("role", "sql"), _cases(FORBIDDEN))
async def test_role_is_refused_outside_its_job(
    role_urls: dict[str, str], role: str, sql: str
) -> None:
    assert await attempt(role_urls[role], sql) == "denied", sql


def _in_database(url: str, dbname: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + dbname


async def test_api_role_changes_keys_only_through_the_audited_functions(
    new_database: Callable[..., str], role_urls: dict[str, str]
) -> None:
    """The API role: the first admin key once; then keys only for a live admin token; a
    revocation is final; every change is in api_key_events with who acted."""
    owner = new_database()
    api_url = _in_database(role_urls["api"], owner.rsplit("/", 1)[1])
    boot = "f5g_Boot000000_" + "b" * 40
    other = "f5g_Othr000000_" + "o" * 40
    conn = await asyncpg.connect(db.asyncpg_dsn(api_url))
    try:
        assert await conn.fetchval("SELECT api_key_bootstrap($1, 'bootstrap')", boot) is True
        assert await conn.fetchval("SELECT api_key_bootstrap($1, 'bootstrap')", boot) is False
        # A second admin key by the same door: refused, now that an admin key exists.
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="admin key exists"):
            await conn.fetchval("SELECT api_key_bootstrap($1, 'again')", other)
        create = "SELECT prefix FROM api_key_create($1, $2, $3, 'ops', $4, NULL)"
        new_hash = keys_hash(other)
        # Knowing the table's hash is not enough: the caller must hold an admin token.
        stored_hash = await conn.fetchval("SELECT hash FROM api_keys")
        for actor in (stored_hash, "f5g_Boot000000_" + "x" * 40, other):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetchval(create, actor, "Othr000000", new_hash, "admin")
        with pytest.raises(asyncpg.InvalidParameterValueError):
            await conn.fetchval(create, boot, "Othr000000", new_hash, "root")
        assert await conn.fetchval(create, boot, "Othr000000", new_hash, "read") == "Othr000000"
        # Revoke: only with an admin token, and there is no way back.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT api_key_revoke($1, 'Boot000000')", other)
        assert await conn.fetchval("SELECT api_key_revoke($1, 'Othr000000')", boot) is True
        assert await conn.fetchval("SELECT api_key_revoke($1, 'Othr000000')", boot) is False
        for sql in (KEY_UNREVOKE, KEY_ESCALATE, KEY_MINT):
            assert await attempt(api_url, sql) == "denied", sql
        # The revoked key cannot be re-created under its prefix either.
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.fetchval(create, boot, "Othr000000", new_hash, "read")
        events = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT prefix, action, scope, actor, db_user FROM api_key_events ORDER BY id"
            )
        ]
    finally:
        await conn.close()
    user = urlsplit(api_url).username
    assert events == [
        ("Boot000000", "created", "admin", "bootstrap", user),
        ("Othr000000", "created", "read", "Boot000000", user),
        ("Othr000000", "revoked", "read", "Boot000000", user),
    ]
    assert await attempt(owner, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL") == "ok"


async def test_api_under_its_role_stores_only_the_first_bootstrap_key(
    new_database: Callable[..., str], role_urls: dict[str, str]
) -> None:
    """The API's start-up path, as the API role: the first bootstrap key is stored and
    works; a different one later is refused (the API still starts) and never works."""
    owner = new_database()
    api_url = _in_database(role_urls["api"], owner.rsplit("/", 1)[1])
    first = "f5g_First00000_" + "f" * 40
    second = "f5g_Second0000_" + "s" * 40
    for token, status in ((first, 200), (second, 401)):
        async with client(api_settings(api_url, bootstrap_key=token)) as (_, c):
            assert (await c.get("/readyz")).status_code == 200
            r = await c.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == status, (token, r.text)
    conn = await asyncpg.connect(db.asyncpg_dsn(owner))
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 1
    finally:
        await conn.close()


async def test_wrong_password_is_refused_for_every_role(
    pg: Postgres, role_urls: dict[str, str]
) -> None:
    """scram-sha-256 really checks: a wrong or missing password gets no session, for every
    service role, the schema owner and the bootstrap superuser."""
    urls = {**role_urls, "superuser": pg.url_as_superuser(pg.database)}
    accepted = []
    for role, url in urls.items():
        parts = urlsplit(url)
        user, host = parts.username or "", f"{parts.hostname}:{parts.port}"
        for password in ("wrong", ""):
            netloc = f"{user}:{password}@{host}" if password else f"{user}@{host}"
            try:
                conn = await asyncpg.connect(
                    db.asyncpg_dsn(urlunsplit(parts._replace(netloc=netloc)))
                )
            except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
                continue
            await conn.close()
            accepted.append(f"{role} with {password or 'no'} password")
        conn = await asyncpg.connect(db.asyncpg_dsn(url))  # and the right one works
        await conn.close()
    assert accepted == [], f"accepted {len(accepted)} of {2 * len(urls)}: {accepted}"


def test_cluster_keeps_its_passwords_private_and_trusts_nothing(
    pg: Postgres, tmp_path: Path
) -> None:
    assert pg.passfile.stat().st_mode & 0o077 == 0
    hba = [
        line.split()
        for line in (pg.data_dir / "pg_hba.conf").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert hba, "no pg_hba rules"
    assert {rule[0] for rule in hba} >= {"local", "host"}
    assert all(rule[-1] == "scram-sha-256" for rule in hba), hba
    assert pg.psql(f"SELECT rolsuper FROM pg_roles WHERE rolname = '{pg.user}'") == "f"
    # A cluster made before passwords (trusting every local connection) is refused by name.
    old = Postgres(tmp_path / "old")
    old.data_dir.mkdir(parents=True)
    (old.data_dir / "PG_VERSION").write_text("15\n")
    with pytest.raises(StackError, match="without passwords"):
        old.start()


def test_roles_migration_is_idempotent_across_databases(
    new_database: Callable[..., str], pg: Postgres
) -> None:
    """Roles are cluster-wide: a second database, and a re-run, must not trip over them."""
    url = new_database()
    db.migrate(url)
    for role in db_roles.GROUPS:
        pg.psql(db_roles.create_group_sql(role))
    assert pg.psql(
        "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'factory5g\\_%' AND NOT rolcanlogin"
    ) == str(len(db_roles.GROUPS))
    # 0006_least_privilege narrows the grants of 0004_roles: both applied.
    assert {"0004_roles", "0006_least_privilege"} <= db.applied_revisions(url)


async def test_ingest_service_runs_as_its_role(
    role_urls: dict[str, str], database_url: str, new_broker: Callable[[], Mosquitto]
) -> None:
    """The real pipeline (staging tables, upserts, hypertable chunks) under the ingest role."""
    broker = new_broker()  # its own: ingest's retained Sparkplug STATE stays out of others
    # Its own share group: earlier tests' ingest sessions on this broker would take a share.
    tag = uuid.uuid4().hex[:6]
    settings = make_settings(
        role_urls["ingest"],
        broker.port,
        ingest={"client_id": f"roles-{tag}", "share_group": f"roles-{tag}"},
    )
    project = f"roles{uuid.uuid4().hex[:6]}"
    base = int(time.time() * 1000)
    msgs = [(topic(project, "inspection", "cam-1"), inspection(i, base + i)) for i in range(50)]
    async with running(settings):
        await publish(broker.port, msgs)
        await wait_count(
            database_url, f"SELECT count(*) FROM inspections WHERE project_id = '{project}'", 50
        )
