"""The audit trail and API keys through the API, on the real database under the API's role.

The API runs as a LOGIN user of the `factory5g_api` group (as deployed), so key creation
and revocation go through the owner's functions and the audit rows through the role's
append-only grant; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from f5gdev.devstack.servers import Postgres
from services.api.auth.keys import hash_token
from services.core import db
from services.security import db_roles
from tests.test_api_support import api_settings, auth, client, insert_alarms

BOOT = "f5g_Boot" + uuid.uuid4().hex[:6] + "_" + "b" * 40


@dataclass
class Env:
    c: httpx.AsyncClient
    owner: str
    api: str
    app: FastAPI


@pytest.fixture(scope="module")
def urls(pg: Postgres, new_database: Callable[..., str]) -> tuple[str, str]:
    """(owner URL, API role URL) of a fresh migrated database."""
    owner = new_database()
    user = f"t_api_{uuid.uuid4().hex[:6]}"
    pg.psql(db_roles.login_user_sql(user, db_roles.API, "pw-" + user))
    dbname = owner.rsplit("/", 1)[1]
    return owner, f"postgresql://{user}:pw-{user}@127.0.0.1:{pg.port}/{dbname}"


@pytest.fixture(scope="module")
async def env(urls: tuple[str, str]) -> AsyncIterator[Env]:
    owner, api = urls
    # A long key cache: revocation must still take effect at once in the revoking process.
    async with client(api_settings(api, bootstrap_key=BOOT, key_cache_s=60)) as (app, c):
        yield Env(c, owner, api, app)


async def _owner_fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db.asyncpg_dsn(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _create(c: httpx.AsyncClient, by: str, **body: Any) -> dict[str, Any]:
    r = await c.post("/api/v1/keys", json=body, headers=auth(by))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


async def test_keys_are_created_listed_and_revoked_through_the_api(env: Env) -> None:
    c = env.c
    rid = "req-" + uuid.uuid4().hex[:8]
    r = await c.post(
        "/api/v1/keys",
        json={"name": "andon-reader", "scope": "read", "projects": ["p1"]},
        headers={**auth(BOOT), "X-Request-ID": rid},
    )
    assert r.status_code == 201, r.text
    assert r.headers["x-request-id"] == rid
    made = r.json()
    token, prefix = made["token"], made["key"]["prefix"]
    assert made["key"] == {
        "prefix": prefix,
        "name": "andon-reader",
        "scope": "read",
        "projects": ["p1"],
        "created_at": made["key"]["created_at"],
        "revoked_at": None,
    }
    # The new token works, with exactly its scope.
    assert (await c.get("/api/v1/projects", headers=auth(token))).status_code == 200
    assert (await c.get("/api/v1/keys", headers=auth(token))).status_code == 403

    # The list never carries a secret: neither a token nor a stored hash.
    listed = await c.get("/api/v1/keys", headers=auth(BOOT))
    assert listed.status_code == 200
    assert prefix in {k["prefix"] for k in listed.json()["items"]}
    for secret in (token, hash_token(token), BOOT, hash_token(BOOT)):
        assert secret not in listed.text
    assert all("hash" not in k and "token" not in k for k in listed.json()["items"])

    r = await c.post(f"/api/v1/keys/{prefix}/revoke", headers=auth(BOOT))
    assert r.status_code == 200, r.text
    assert r.json()["revoked_at"] is not None
    # Refused at once in this process although the key cache keeps keys for 60 s.
    assert (await c.get("/api/v1/projects", headers=auth(token))).status_code == 401
    again = await c.post(f"/api/v1/keys/{prefix}/revoke", headers=auth(BOOT))
    assert again.status_code == 409
    missing = await c.post("/api/v1/keys/nosuchkey0/revoke", headers=auth(BOOT))
    assert missing.status_code == 404

    # Both acts are in the trail, with the actor, the request id and no secret; the
    # database's own record of key changes has them too.
    rows = await _owner_fetch(
        env.owner,
        "SELECT actor, actor_key, action, target_type, before, after, request_id "
        "FROM audit_events WHERE target_id = $1 ORDER BY id",
        prefix,
    )
    boot_prefix = BOOT.split("_")[1]
    assert [(r["actor"], r["actor_key"], r["action"], r["target_type"]) for r in rows] == [
        ("bootstrap", boot_prefix, "key.create", "api_key"),
        ("bootstrap", boot_prefix, "key.revoke", "api_key"),
    ]
    assert rows[0]["request_id"] == rid
    assert '"scope": "read"' in rows[0]["after"]
    assert '"p1"' in rows[0]["after"]
    assert '"revoked_at": null' in rows[1]["before"]
    assert '"revoked_at": null' not in rows[1]["after"]
    for r in rows:
        assert token not in str(dict(r))
        assert hash_token(token) not in str(dict(r))
    events = await _owner_fetch(
        env.owner,
        "SELECT action, actor FROM api_key_events WHERE prefix = $1 ORDER BY id",
        prefix,
    )
    assert [tuple(e) for e in events] == [("created", boot_prefix), ("revoked", boot_prefix)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "scope": "read"}, "name"),
        ({"name": "x", "scope": "root"}, "scope"),
        ({"name": "x", "scope": "read", "projects": ["a/b"]}, "projects"),
        ({"name": "x", "scope": "read", "hash": "0" * 64}, "hash"),
    ],
)
async def test_bad_key_requests_are_refused_naming_the_field(
    env: Env, body: dict[str, Any], field: str
) -> None:
    before = await _owner_fetch(env.owner, "SELECT count(*) AS n FROM api_keys")
    r = await env.c.post("/api/v1/keys", json=body, headers=auth(BOOT))
    assert r.status_code == 422, r.text
    assert field in r.text
    after = await _owner_fetch(env.owner, "SELECT count(*) AS n FROM api_keys")
    assert after[0]["n"] == before[0]["n"]


async def test_only_an_admin_for_every_project_manages_keys(env: Env) -> None:
    c = env.c
    scoped_admin = (await _create(c, BOOT, name="admin-p2", scope="admin", projects=["p2"]))[
        "token"
    ]
    operator = (await _create(c, BOOT, name="op", scope="operate"))["token"]
    attempts = 0
    refused = 0
    for token in (scoped_admin, operator):
        for method, path, body in (
            ("GET", "/api/v1/keys", None),
            ("POST", "/api/v1/keys", {"name": "mine", "scope": "admin"}),
            ("POST", f"/api/v1/keys/{BOOT.split('_')[1]}/revoke", None),
        ):
            r = await c.request(method, path, json=body, headers=auth(token))
            attempts += 1
            refused += r.status_code == 403
    assert (attempts, refused) == (6, 6)
    live_admins = await _owner_fetch(
        env.owner,
        "SELECT prefix FROM api_keys WHERE scope = 'admin' AND projects IS NULL "
        "AND revoked_at IS NULL",
    )
    assert [r["prefix"] for r in live_admins] == [BOOT.split("_")[1]]


async def test_the_last_admin_key_for_every_project_cannot_be_revoked(env: Env) -> None:
    c = env.c
    boot_prefix = BOOT.split("_")[1]
    r = await c.post(f"/api/v1/keys/{boot_prefix}/revoke", headers=auth(BOOT))
    assert r.status_code == 409
    assert "last live admin key" in r.json()["error"]["message"]
    # With a second one either can go; then the other is the last again.
    second = await _create(c, BOOT, name="second-admin", scope="admin")
    r = await c.post(f"/api/v1/keys/{second['key']['prefix']}/revoke", headers=auth(BOOT))
    assert r.status_code == 200, r.text
    assert (await c.get("/api/v1/keys", headers=auth(second["token"]))).status_code == 401
    r = await c.post(f"/api/v1/keys/{boot_prefix}/revoke", headers=auth(BOOT))
    assert r.status_code == 409
    assert (await c.get("/api/v1/keys", headers=auth(BOOT))).status_code == 200


async def test_project_and_alarm_acts_are_audited_with_before_and_after(env: Env) -> None:
    c = env.c
    pid = "aud-" + uuid.uuid4().hex[:6]
    r = await c.post("/api/v1/projects", json={"id": pid, "name": "Audit"}, headers=auth(BOOT))
    assert r.status_code == 201, r.text
    r = await c.patch(f"/api/v1/projects/{pid}", json={"status": "archived"}, headers=auth(BOOT))
    assert r.status_code == 200, r.text
    now = datetime.now(UTC)
    (alarm,) = await insert_alarms(
        env.owner, [{"project_id": pid, "device_id": "m1", "rule": "r", "opened_at": now}]
    )
    op = (await _create(c, BOOT, name="shift-lead", scope="operate", projects=[pid]))["token"]
    ack = await c.post(
        f"/api/v1/alarms/{alarm}/acknowledge", json={"note": "seen"}, headers=auth(op)
    )
    assert ack.status_code == 200, ack.text
    assert (await c.post(f"/api/v1/alarms/{alarm}/clear", headers=auth(op))).status_code == 200

    r = await c.get("/api/v1/audit", params={"project": pid}, headers=auth(BOOT))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    got = [(i["action"], i["actor"], i["target_id"], i["before"], i["after"]) for i in items]
    assert got[0] == (
        "alarm.clear",
        "shift-lead",
        str(alarm),
        {"state": "acknowledged"},
        {"state": "cleared", "note": None},
    )
    assert got[1] == (
        "alarm.acknowledge",
        "shift-lead",
        str(alarm),
        {"state": "open"},
        {"state": "acknowledged", "note": "seen"},
    )
    assert got[2] == (
        "project.update",
        "bootstrap",
        pid,
        {"status": "active"},
        {"status": "archived"},
    )
    assert got[3][:3] == ("project.create", "bootstrap", pid)
    assert got[3][4]["name"] == "Audit"
    assert len(got) == 4
    assert all(i["request_id"] for i in items)


async def test_the_trail_is_filtered_and_paginated(env: Env) -> None:
    c = env.c
    pid = "pag-" + uuid.uuid4().hex[:6]
    assert (
        await c.post("/api/v1/projects", json={"id": pid, "name": "n0"}, headers=auth(BOOT))
    ).status_code == 201
    for i in range(1, 8):
        r = await c.patch(f"/api/v1/projects/{pid}", json={"name": f"n{i}"}, headers=auth(BOOT))
        assert r.status_code == 200
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"project": pid, "limit": 3, "action": "project.update"}
        if cursor:
            params["cursor"] = cursor
        r = await c.get("/api/v1/audit", params=params, headers=auth(BOOT))
        assert r.status_code == 200, r.text
        seen += [i["id"] for i in r.json()["items"]]
        pages += 1
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    assert (len(seen), len(set(seen)), pages) == (7, 7, 3)
    assert seen == sorted(seen, reverse=True)
    hour = timedelta(hours=1)
    for params, count in (
        ({"target_type": "project", "target_id": pid}, 8),
        ({"target_id": pid, "actor": "bootstrap"}, 8),
        ({"target_id": pid, "actor": "nobody"}, 0),
        ({"target_id": pid, "since": (datetime.now(UTC) - hour).isoformat()}, 8),
        ({"target_id": pid, "until": (datetime.now(UTC) - hour).isoformat()}, 0),
    ):
        r = await c.get("/api/v1/audit", params={**params, "limit": 100}, headers=auth(BOOT))
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == count, params
    r = await c.get("/api/v1/audit", params={"cursor": "garbage"}, headers=auth(BOOT))
    assert r.status_code == 422


async def test_a_key_for_some_projects_sees_only_their_acts(env: Env) -> None:
    c = env.c
    mine, other = "own-" + uuid.uuid4().hex[:6], "oth-" + uuid.uuid4().hex[:6]
    for pid in (mine, other):
        assert (
            await c.post("/api/v1/projects", json={"id": pid, "name": pid}, headers=auth(BOOT))
        ).status_code == 201
    scoped = (await _create(c, BOOT, name="plant-admin", scope="admin", projects=[mine]))["token"]
    r = await c.get("/api/v1/audit", params={"limit": 500}, headers=auth(scoped))
    assert r.status_code == 200
    projects = {i["project_id"] for i in r.json()["items"]}
    assert projects == {mine}
    assert (
        await c.get("/api/v1/audit", params={"project": other}, headers=auth(scoped))
    ).status_code == 404
    reader = (await _create(c, BOOT, name="viewer", scope="read"))["token"]
    assert (await c.get("/api/v1/audit", headers=auth(reader))).status_code == 403


async def test_a_client_request_id_is_kept_only_when_plain(env: Env) -> None:
    c = env.c
    for given, kept in (("abc-123.x", True), ("x" * 65, False), ("a b", False)):
        r = await c.get("/api/v1/projects", headers={**auth(BOOT), "X-Request-ID": given})
        assert r.status_code == 200
        assert (r.headers["x-request-id"] == given) is kept
        assert len(r.headers["x-request-id"]) <= 64


async def test_the_api_role_only_appends_and_cannot_backdate(env: Env) -> None:
    conn = await asyncpg.connect(db.asyncpg_dsn(env.api))
    try:
        await conn.execute(
            "INSERT INTO audit_events (ts, actor, action, target_type, target_id, db_user) "
            "VALUES ('2000-01-01T00:00:00Z', 'forger', 'x', 'x', 'forged', 'postgres')"
        )
        row = await conn.fetchrow("SELECT ts, db_user FROM audit_events WHERE target_id = 'forged'")
        assert row is not None
        assert abs((row["ts"] - datetime.now(UTC)).total_seconds()) < 600
        assert row["db_user"] != "postgres"
        refused = 0
        for sql in (
            "UPDATE audit_events SET actor = 'someone else'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "ALTER TABLE audit_events DISABLE TRIGGER audit_events_stamp",
        ):
            try:
                await conn.execute(sql)
            except asyncpg.InsufficientPrivilegeError:
                refused += 1
        assert refused == 4
    finally:
        await conn.close()


async def test_an_act_whose_audit_row_fails_is_not_committed(env: Env) -> None:
    """The act and its row commit together: with the role's INSERT on the trail taken
    away, creating a project or a key fails and leaves nothing behind."""
    pid = "noaudit-" + uuid.uuid4().hex[:6]
    keys_before = await _owner_fetch(env.owner, "SELECT count(*) AS n FROM api_keys")
    # An unexpected failure is a 500 (the test client must not re-raise it).
    transport = httpx.ASGITransport(app=env.app, raise_app_exceptions=False)
    await _owner_fetch(env.owner, "REVOKE INSERT ON audit_events FROM factory5g_api")
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            r = await c.post("/api/v1/projects", json={"id": pid, "name": "x"}, headers=auth(BOOT))
            assert r.status_code == 500
            r = await c.post("/api/v1/keys", json={"name": "x"}, headers=auth(BOOT))
            assert r.status_code == 500
    finally:
        await _owner_fetch(env.owner, "GRANT INSERT ON audit_events TO factory5g_api")
    assert await _owner_fetch(env.owner, "SELECT id FROM projects WHERE id = $1", pid) == []
    keys_after = await _owner_fetch(env.owner, "SELECT count(*) AS n FROM api_keys")
    assert keys_after[0]["n"] == keys_before[0]["n"]


async def test_the_keys_commands_are_audited_as_the_local_user(env: Env) -> None:
    """`factory5g keys` runs the same functions as the API, as the schema owner: its acts
    are in the trail as `cli:<login>`."""
    run = functools.partial(
        subprocess.run,
        capture_output=True,
        text=True,
        env={**os.environ, "F5G_DATABASE__URL": env.owner},
        timeout=120,
    )
    made = await asyncio.to_thread(
        run, [sys.executable, "-m", "services.cli", "keys", "create", "--name", "from-shell"]
    )
    assert made.returncode == 0, made.stderr
    prefix = made.stdout.splitlines()[0].split("_")[1]
    gone = await asyncio.to_thread(
        run, [sys.executable, "-m", "services.cli", "keys", "revoke", prefix]
    )
    assert gone.returncode == 0, gone.stderr
    r = await env.c.get("/api/v1/audit", params={"target_id": prefix}, headers=auth(BOOT))
    got = [(i["action"], i["actor"], i["actor_key"]) for i in r.json()["items"]]
    login = "cli:" + getpass.getuser()
    assert got == [("key.revoke", login, None), ("key.create", login, None)]


def test_the_admin_migration_downgrades_and_upgrades_again(
    new_database: Callable[..., str],
) -> None:
    import sqlalchemy as sa
    from alembic import command

    url = new_database()
    engine = sa.create_engine(db.sync_url(url))
    tables = (
        "SELECT count(*) FROM pg_tables WHERE tablename IN "
        "('audit_events', 'broker_credentials', 'retention_policies')"
    )
    try:
        with engine.begin() as conn:
            cfg = db.alembic_config()
            cfg.attributes["connection"] = conn
            assert conn.execute(sa.text(tables)).scalar() == 3
            command.downgrade(cfg, "0008_notifications")
            assert conn.execute(sa.text(tables)).scalar() == 0
            cols = conn.execute(
                sa.text(
                    "SELECT count(*) FROM information_schema.columns "
                    "WHERE table_name = 'devices' AND column_name = 'status'"
                )
            ).scalar()
            assert cols == 0
    finally:
        engine.dispose()
    db.migrate(url)
    assert db.current_revisions(url) == db.head_revisions()
