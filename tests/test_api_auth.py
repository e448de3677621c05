"""API keys: headers, hashing, scopes, revocation, the management commands, open probes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import sqlalchemy as sa

from services.api.auth.keys import hash_token
from services.core import db
from services.core.settings import ConfigError, load_settings
from tests.test_api_support import Keys, api_settings, auth, client, make_keys, seed_small


@pytest.fixture(scope="module")
def url(new_database: Callable[..., str]) -> str:
    return new_database()


@pytest.fixture(scope="module")
async def env(url: str) -> AsyncIterator[tuple[httpx.AsyncClient, Keys]]:
    await seed_small(url, rollups=False)
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield c, k


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic Zm9vOmJhcg=="},
        {"X-API-Key": "nonsense"},
        {"X-API-Key": "f5g_0123456789_" + "x" * 43},
    ],
)
async def test_missing_or_unknown_key_is_401(
    env: tuple[httpx.AsyncClient, Keys], headers: dict[str, str]
) -> None:
    c, _ = env
    r = await c.get("/api/v1/devices", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


async def test_both_headers_are_accepted(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    assert (await c.get("/api/v1/projects", headers=auth(k.admin))).status_code == 200
    assert (await c.get("/api/v1/projects", headers={"X-API-Key": k.admin})).status_code == 200


async def test_a_key_with_a_wrong_secret_is_rejected(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    forged = k.admin[:-4] + ("AAAA" if not k.admin.endswith("AAAA") else "BBBB")
    assert (await c.get("/api/v1/projects", headers=auth(forged))).status_code == 401


async def test_only_the_hash_is_stored(url: str, env: tuple[httpx.AsyncClient, Keys]) -> None:
    _, k = env
    engine = sa.create_engine(db.sync_url(url))
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT prefix, hash FROM api_keys")).all()
    engine.dispose()
    stored = {r.hash for r in rows}
    assert hash_token(k.admin) in stored
    assert all(k.admin not in (r.prefix + r.hash) for r in rows)
    assert k.admin.split("_")[1] in {r.prefix for r in rows}


@pytest.mark.parametrize(
    ("key_name", "method", "path", "status"),
    [
        ("read_p1", "POST", "/api/v1/alarms/1/acknowledge", 403),
        ("read_p1", "POST", "/api/v1/alarms/1/clear", 403),
        ("read_p1", "POST", "/api/v1/projects", 403),
        ("operate_p1", "POST", "/api/v1/projects", 403),
        ("operate_p1", "PATCH", "/api/v1/projects/p1", 403),
        ("operate_p1", "POST", "/api/v1/alarms/999999/acknowledge", 404),
    ],
)
async def test_scopes_are_enforced(
    env: tuple[httpx.AsyncClient, Keys], key_name: str, method: str, path: str, status: int
) -> None:
    c, k = env
    body = {"id": "p9", "name": "x"} if path == "/api/v1/projects" else {}
    r = await c.request(method, path, headers=auth(getattr(k, key_name)), json=body)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["error"]["code"] == "forbidden"


async def test_revoked_key_stops_working(url: str) -> None:
    from services.api.app import make_engine

    engine = make_engine(api_settings(url))
    from services.api.auth import keys

    async with engine.begin() as conn:
        token, key = await keys.create(conn, "temp", "read", None)
    async with client(api_settings(url, key_cache_s=0)) as (_, c):
        assert (await c.get("/api/v1/projects", headers=auth(token))).status_code == 200
        async with engine.begin() as conn:
            assert await keys.revoke(conn, key.prefix)
            assert not await keys.revoke(conn, key.prefix)  # already revoked
        assert (await c.get("/api/v1/projects", headers=auth(token))).status_code == 401
    await engine.dispose()


async def test_key_cache_trusts_a_key_for_its_ttl_only(url: str) -> None:
    from services.api.app import make_engine
    from services.api.auth import keys

    engine = make_engine(api_settings(url))
    async with engine.begin() as conn:
        token, key = await keys.create(conn, "cached", "read", None)
    async with client(api_settings(url, key_cache_s=300)) as (app, c):
        assert (await c.get("/api/v1/projects", headers=auth(token))).status_code == 200
        async with engine.begin() as conn:
            await keys.revoke(conn, key.prefix)
        # Within the TTL the cached verdict holds; a fresh cache sees the revocation.
        assert (await c.get("/api/v1/projects", headers=auth(token))).status_code == 200
        app.state.key_cache.ttl_s = 0
        app.state.key_cache.put(hash_token(token), None)
        assert (await c.get("/api/v1/projects", headers=auth(token))).status_code == 401
    await engine.dispose()


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/", "/docs", "/openapi.json"])
async def test_probes_and_docs_need_no_key(env: tuple[httpx.AsyncClient, Keys], path: str) -> None:
    c, _ = env
    r = await c.get(path)
    assert r.status_code == 200, r.text


async def test_readyz_reports_missing_migrations(new_database: Callable[..., str]) -> None:
    url = new_database(migrate=False)
    db.migrate(url, "0001")
    async with client(api_settings(url)) as (_, c):
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert "0003_api" in r.json()["migrations"]
        assert (await c.get("/healthz")).status_code == 200


async def test_readyz_reports_an_unreachable_database() -> None:
    from f5gdev.devstack.servers import free_port
    from tests.conftest import make_settings

    settings = make_settings(
        f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        1883,
        api={"rollup_interval_s": 0},
        database={"connect_timeout_s": 2},
    )
    async with client(settings) as (_, c):
        r = await c.get("/readyz")
        assert r.status_code == 503
        assert r.json()["database"].startswith("unreachable")


def test_keys_commands_create_list_and_revoke(url: str) -> None:
    env = {**os.environ, "F5G_DATABASE__URL": url}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", "keys", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    made = cli("create", "--scope", "read", "--project", "p1", "--name", "line-display")
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[0]
    prefix = token.split("_")[1]
    assert token.startswith("f5g_")
    assert "projects p1" in made.stdout
    listed = cli("list")
    assert prefix in listed.stdout
    assert "line-display" in listed.stdout
    assert token not in listed.stdout
    assert cli("revoke", prefix).returncode == 0
    assert "revoked" in cli("list").stdout
    assert cli("revoke", prefix).returncode == 1
    bad = cli("create", "--scope", "superuser")
    assert bad.returncode == 2


async def test_bootstrap_key_is_stored_at_start_and_revocation_sticks(
    new_database: Callable[..., str],
) -> None:
    url = new_database()
    token = "f5g_Boot12345x_" + "s" * 40
    settings = api_settings(url, bootstrap_key=token)
    async with client(settings) as (_, c):
        r = await c.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        revoke = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "services.cli", "keys", "revoke", "Boot12345x"],
            env={**os.environ, "F5G_DATABASE__URL": url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert revoke.returncode == 0, revoke.stderr
    async with client(settings) as (_, c):
        r = await c.get("/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401


def test_bootstrap_key_format_is_checked_at_start() -> None:
    with pytest.raises(ConfigError, match="F5G_API__BOOTSTRAP_KEY"):
        load_settings(api={"bootstrap_key": "too-short"})
