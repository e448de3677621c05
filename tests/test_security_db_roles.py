"""Each service's database role can do its job and nothing more, on the real database."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import asyncpg
import pytest

from services.core import db
from services.devstack.servers import Mosquitto, Postgres
from services.security import db_roles
from tests.conftest import make_settings
from tests.test_ingest_helpers import inspection, publish, running, topic, wait_count

ROW = "'2026-11-24T08:00:00Z'"
TELEMETRY_INSERT = f"INSERT INTO telemetry VALUES ({ROW}, 'p1', 'm1', 1, 'temp', 20.5, {ROW})"
ALARM_INSERT = (
    "INSERT INTO alarms (project_id, device_id, rule, severity, state, opened_at, updated_at) "
    f"VALUES ('p1', 'm1', 'r', 'major', 'open', {ROW}, {ROW}) RETURNING id"
)


@pytest.fixture(scope="module")
def role_urls(pg: Postgres, database_url: str) -> dict[str, str]:
    """A LOGIN user per service group, in this test run's private cluster."""
    dbname = database_url.rsplit("/", 1)[1]
    urls = {}
    for service, group in db_roles.SERVICE_GROUP.items():
        user = f"t_{service}_{uuid.uuid4().hex[:6]}"
        pg.psql(db_roles.login_user_sql(user, group, "pw-" + user))
        urls[service] = f"postgresql://{user}:pw-{user}@127.0.0.1:{pg.port}/{dbname}"
    return urls


async def attempt(url: str, sql: str) -> str:
    """'ok', or 'denied' when the server refuses for lack of privilege (other errors raise)."""
    conn = await asyncpg.connect(db.asyncpg_dsn(url))
    try:
        async with conn.transaction():
            await conn.execute(sql)
        return "ok"
    except asyncpg.InsufficientPrivilegeError:
        return "denied"
    finally:
        await conn.close()


async def test_ingest_role_writes_stores_and_devices_only(role_urls: dict[str, str]) -> None:
    url = role_urls["ingest"]
    assert await attempt(url, TELEMETRY_INSERT) == "ok"
    assert await attempt(url, "INSERT INTO projects (id, name) VALUES ('p1', 'p1')") == "ok"
    assert (
        await attempt(
            url, "INSERT INTO devices (project_id, device_id, kind) VALUES ('p1', 'm1', 'machine')"
        )
        == "ok"
    )
    assert await attempt(url, "UPDATE devices SET online = false WHERE device_id = 'm1'") == "ok"
    assert (
        await attempt(
            url,
            "INSERT INTO dead_letters (received_at, topic, reason, detail, payload_size) "
            "VALUES (now(), 't', 'schema', 'd', 0)",
        )
        == "ok"
    )
    for refused in (
        "UPDATE telemetry SET value = 0",
        "DELETE FROM telemetry",
        "TRUNCATE telemetry",
        ALARM_INSERT,
        "SELECT * FROM api_keys",
        "DELETE FROM devices",
        "CREATE TABLE evil (x int)",
        "DROP TABLE telemetry",
    ):
        assert await attempt(url, refused) == "denied", refused


async def test_rules_role_reads_stores_and_writes_alarms_only(role_urls: dict[str, str]) -> None:
    url = role_urls["rules"]
    assert await attempt(url, "SELECT count(*) FROM telemetry") == "ok"
    assert await attempt(url, "SELECT count(*) FROM devices") == "ok"
    assert await attempt(url, ALARM_INSERT) == "ok"
    assert await attempt(url, "UPDATE alarms SET count = count + 1") == "ok"
    assert (
        await attempt(
            url,
            "INSERT INTO alarm_events (ts, alarm_id, project_id, transition, severity) "
            "VALUES (now(), 1, 'p1', 'opened', 'major')",
        )
        == "ok"
    )
    for refused in (
        TELEMETRY_INSERT,
        "UPDATE devices SET online = true",
        "DELETE FROM alarms",
        "SELECT * FROM api_keys",
        "INSERT INTO projects (id, name) VALUES ('x', 'x')",
        "CREATE TABLE evil (x int)",
    ):
        assert await attempt(url, refused) == "denied", refused


async def test_api_role_reads_and_changes_alarm_state_only(role_urls: dict[str, str]) -> None:
    url = role_urls["api"]
    for table in ("telemetry", "inspections", "devices", "alarms", "api_keys", "dead_letters"):
        assert await attempt(url, f"SELECT count(*) FROM {table}") == "ok", table
    assert await attempt(url, "UPDATE alarms SET state = 'acknowledged'") == "ok"
    assert (
        await attempt(
            url,
            "INSERT INTO alarm_events (ts, alarm_id, project_id, transition, severity, actor) "
            "VALUES (now(), 1, 'p1', 'acknowledged', 'major', 'op')",
        )
        == "ok"
    )
    for refused in (
        TELEMETRY_INSERT,
        "INSERT INTO inspections SELECT * FROM inspections",
        "DELETE FROM alarms",
        "INSERT INTO devices (project_id, device_id, kind) VALUES ('p9', 'd', 'k')",
        "UPDATE devices SET online = false",
        "DELETE FROM telemetry",
        "CREATE TABLE evil (x int)",
    ):
        assert await attempt(url, refused) == "denied", refused


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
    assert "0004_roles" in db.current_revisions(url)


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
