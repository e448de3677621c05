"""Retention on the real TimescaleDB (Apache edition): chunks past the policy are dropped
with `drop_chunks`, the rollups keep every bucket they had, and nothing is dropped that a
rollup has not aggregated yet. The API runs under its own database role."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from f5gdev.devstack.servers import Postgres
from services.api.app import make_engine
from services.api.rollups import maintain
from services.core import db
from services.security import db_roles
from tests.conftest import make_settings
from tests.test_api_support import auth, client

BOOT = "f5g_Rete" + uuid.uuid4().hex[:6] + "_" + "r" * 40
DAYS = 10
STEP_MIN = 10


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db.asyncpg_dsn(url))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _val(url: str, sql: str, *args: Any) -> Any:
    return (await _fetch(url, sql, *args))[0][0]


@pytest.fixture(scope="module")
def urls(pg: Postgres, new_database: Callable[..., str]) -> tuple[str, str]:
    owner = new_database()
    user = f"t_api_{uuid.uuid4().hex[:6]}"
    pg.psql(db_roles.login_user_sql(user, db_roles.API, "pw-" + user))
    return owner, f"postgresql://{user}:pw-{user}@127.0.0.1:{pg.port}/{owner.rsplit('/', 1)[1]}"


@pytest.fixture(scope="module")
async def api(urls: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    owner, api_url = urls
    # Ten days of telemetry, two devices, one row per 10 minutes, then the rollups.
    await _fetch(
        owner,
        "INSERT INTO telemetry (ts, project_id, device_id, seq, metric, value, received_at) "
        "SELECT t, 'p1', d, (extract(epoch FROM t) / 600)::bigint, 'spindle_temp', "
        "  50 + 10 * sin(extract(epoch FROM t) / 3600), t "
        "FROM generate_series(now() - make_interval(days => $1), now() - interval '5 minutes', "
        "  make_interval(mins => $2)) AS t, unnest(ARRAY['m1', 'm2']) AS d",
        DAYS,
        STEP_MIN,
    )
    engine = make_engine(make_settings(owner, 1883))
    try:
        await maintain.catch_up(engine)
    finally:
        await engine.dispose()
    settings = make_settings(
        api_url,
        1883,
        api={
            "rollup_interval_s": 0,
            "retention_interval_s": 0,
            "key_cache_s": 0,
            "bootstrap_key": BOOT,
        },
    )
    async with client(settings) as (_, c):
        yield c


# Sums rounded: a later pass re-aggregates the newest buckets, in another order.
HOURLY = (
    "SELECT bucket, device_id, metric, n, value_n, round(value_sum::numeric, 6), value_min, "
    "value_max FROM rollup_telemetry_1h ORDER BY bucket, device_id, metric"
)
CHUNKS = (
    "SELECT count(*) FROM timescaledb_information.chunks "
    "WHERE hypertable_name = 'telemetry' AND range_end < now() - make_interval(days => $1)"
)


async def test_chunks_past_the_policy_are_dropped_and_rollups_stay_correct(
    api: httpx.AsyncClient, urls: tuple[str, str]
) -> None:
    owner = urls[0]
    hourly = [tuple(r) for r in await _fetch(owner, HOURLY)]
    assert len(hourly) >= 2 * 24 * (DAYS - 1)
    rows_before = await _val(owner, "SELECT count(*) FROM telemetry")
    # No policy yet: nothing is dropped, storage only grows.
    r = await api.post("/api/v1/retention/run", headers=auth(BOOT))
    assert r.status_code == 200, r.text
    assert r.json()["outcomes"] == []
    past = int(await _val(owner, CHUNKS, 3))
    assert past >= DAYS - 4  # before: chunks entirely older than 3 days, all still there

    r = await api.put(
        "/api/v1/retention/policies/telemetry", json={"keep_days": 3}, headers=auth(BOOT)
    )
    assert r.status_code == 200, r.text
    r = await api.post("/api/v1/retention/run", headers=auth(BOOT))
    assert r.status_code == 200, r.text
    (outcome,) = r.json()["outcomes"]
    assert (outcome["target"], outcome["dropped"], outcome["held_back_by"]) == (
        "telemetry",
        past,
        None,
    )
    assert int(await _val(owner, CHUNKS, 3)) == 0
    oldest = await _val(owner, "SELECT min(ts) FROM telemetry")
    assert oldest >= datetime.now(UTC) - timedelta(days=4)
    assert await _val(owner, "SELECT count(*) FROM telemetry") < rows_before
    # The hourly rollups hold exactly what they held, also after the next rollup pass.
    assert [tuple(r) for r in await _fetch(owner, HOURLY)] == hourly
    engine = make_engine(make_settings(owner, 1883))
    try:
        await maintain.catch_up(engine)
    finally:
        await engine.dispose()
    assert [tuple(r) for r in await _fetch(owner, HOURLY)][: len(hourly)] == hourly

    # Health: disk used, the policy and the next drop.
    health = await api.get("/api/v1/ingest/health", headers=auth(BOOT))
    tel = health.json()["retention"]["telemetry"]
    assert tel["bytes"] > 0
    assert tel["keep_s"] == 3 * 86400
    next_drop = datetime.fromisoformat(tel["next_drop_at"])
    assert datetime.now(UTC) < next_drop <= datetime.now(UTC) + timedelta(days=1, minutes=5)
    r = await api.get("/api/v1/audit", params={"target_type": "retention"}, headers=auth(BOOT))
    assert [i["action"] for i in r.json()["items"]] == [
        "retention.run",
        "retention.set",
        "retention.run",
    ]


async def test_raw_data_no_rollup_has_yet_is_held_back(
    api: httpx.AsyncClient, urls: tuple[str, str]
) -> None:
    owner = urls[0]
    saved = await _fetch(owner, "SELECT * FROM rollup_watermarks WHERE spec = 'telemetry'")
    await _fetch(owner, "DELETE FROM rollup_watermarks WHERE spec = 'telemetry'")
    try:
        chunks = await _val(
            owner,
            "SELECT count(*) FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'telemetry'",
        )
        r = await api.put(
            "/api/v1/retention/policies/telemetry", json={"keep_days": 1}, headers=auth(BOOT)
        )
        assert r.status_code == 200
        r = await api.post("/api/v1/retention/run", headers=auth(BOOT))
        (outcome,) = [o for o in r.json()["outcomes"] if o["target"] == "telemetry"]
        assert (outcome["dropped"], outcome["held_back_by"]) == (0, "1m rollups have not run")
        after = await _val(
            owner,
            "SELECT count(*) FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'telemetry'",
        )
        assert after == chunks
    finally:
        for row in saved:
            await _fetch(
                owner,
                "INSERT INTO rollup_watermarks (spec, resolution, watermark, updated_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                *tuple(row),
            )


async def test_minute_rollups_go_only_after_the_hourly_ones_have_them(
    api: httpx.AsyncClient, urls: tuple[str, str]
) -> None:
    owner = urls[0]
    hourly = [tuple(r) for r in await _fetch(owner, HOURLY)]
    r = await api.put(
        "/api/v1/retention/policies/rollup_1m", json={"keep_days": 2}, headers=auth(BOOT)
    )
    assert r.status_code == 200
    r = await api.post("/api/v1/retention/run", headers=auth(BOOT))
    (outcome,) = [o for o in r.json()["outcomes"] if o["target"] == "rollup_1m"]
    assert outcome["dropped"] > 0
    first = await _val(owner, "SELECT min(bucket) FROM rollup_telemetry_1m")
    assert first >= datetime.now(UTC) - timedelta(days=2, minutes=5)
    assert [tuple(r) for r in await _fetch(owner, HOURLY)] == hourly


async def test_the_api_role_cannot_drop_what_a_policy_keeps(urls: tuple[str, str]) -> None:
    api_url = urls[1]
    conn = await asyncpg.connect(db.asyncpg_dsn(api_url))
    try:
        with pytest.raises(asyncpg.InvalidParameterValueError, match="keeps"):
            await conn.fetchval("SELECT retention_drop('telemetry', now())")
        with pytest.raises(asyncpg.InvalidParameterValueError, match="no retention policy"):
            await conn.fetchval("SELECT retention_drop('link_kpis', now() - interval '1 day')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetchval("SELECT count(*) FROM drop_chunks('telemetry', now())")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO retention_policies (target, keep, updated_by) "
                "VALUES ('link_kpis', interval '1 minute', 'x')"
            )
    finally:
        await conn.close()


async def test_retention_needs_an_admin_for_every_project(
    api: httpx.AsyncClient,
) -> None:
    r = await api.post(
        "/api/v1/keys",
        json={"name": "plant-admin", "scope": "admin", "projects": ["p1"]},
        headers=auth(BOOT),
    )
    scoped = r.json()["token"]
    for method, path, body in (
        ("PUT", "/api/v1/retention/policies/telemetry", {"keep_days": 1}),
        ("DELETE", "/api/v1/retention/policies/telemetry", None),
        ("POST", "/api/v1/retention/run", None),
    ):
        r = await api.request(method, path, json=body, headers=auth(scoped))
        assert r.status_code == 403, (path, r.text)
    r = await api.put(
        "/api/v1/retention/policies/nonsense", json={"keep_days": 1}, headers=auth(BOOT)
    )
    assert r.status_code == 422
    r = await api.put(
        "/api/v1/retention/policies/telemetry", json={"keep_days": 0.01}, headers=auth(BOOT)
    )
    assert r.status_code == 422
