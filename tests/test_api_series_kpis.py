"""Series and KPIs: values checked against raw SQL, bucket choice, and every 4xx class."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.api.app import make_engine
from services.api.rollups import maintain
from services.api.series.views import bucket_for
from services.core import db
from tests.test_api_support import (
    Keys,
    api_settings,
    auth,
    client,
    insert_alarms,
    make_keys,
    seed_small,
)


@dataclass
class Env:
    url: str
    c: httpx.AsyncClient
    k: Keys
    agv: str
    cpe: str
    machine: str


def _scalar(url: str, sql: str, **params: object) -> object:
    engine = sa.create_engine(db.sync_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql), params).scalar()
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[Env]:
    url = new_database()
    plan = await seed_small(url)
    first = {d.kind: d.device for d in reversed(plan.device_list()) if d.project == "p1"}
    now = datetime.now(UTC)
    await insert_alarms(
        url,
        [
            {
                "project_id": "p1",
                "device_id": first["agv"],
                "rule": f"r{i}",
                "severity": sev,
                "opened_at": now - timedelta(hours=h),
                "state": state,
            }
            for i, (sev, h, state) in enumerate(
                [
                    ("critical", 1, "open"),
                    ("major", 2, "cleared"),
                    ("major", 3, "acknowledged"),
                    ("minor", 50, "open"),
                ]
            )
        ],
    )
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield Env(url, c, k, first["agv"], first["cpe"], first["machine"])


def test_bucket_choice_is_readable_and_bounded() -> None:
    assert bucket_for(86400, 500) == 300
    assert bucket_for(30 * 86400, 500) == 7200
    assert bucket_for(60, 500) == 1
    assert bucket_for(400 * 86400, 100) == 4 * 86400
    for seconds in (59, 3601, 86400 * 7 + 5, 86400 * 399):
        for points in (1, 7, 500, 5000):
            assert seconds / bucket_for(seconds, points) <= points


async def test_device_series_matches_raw_rows(env: Env) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(hours=20)
    r = await env.c.get(
        "/api/v1/projects/p1/series",
        params={
            "stream": "agv",
            "field": "battery",
            "device": env.agv,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "points": 50,
        },
        headers=auth(env.k.read_p1),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["bucket_s"] == 1800
    assert len(body["points"]) <= 50
    count = _scalar(
        env.url,
        "SELECT count(*) FROM agv_status WHERE device_id = :d AND ts >= :s AND ts < :e",
        d=env.agv, s=start, e=end,
    )  # fmt: skip
    assert sum(p["count"] for p in body["points"]) == count
    top = _scalar(
        env.url,
        "SELECT max(battery) FROM agv_status WHERE device_id = :d AND ts >= :s AND ts < :e",
        d=env.agv, s=start, e=end,
    )  # fmt: skip
    assert max(p["max"] for p in body["points"]) == top
    for p in body["points"]:
        assert p["min"] <= p["avg"] <= p["max"]
        assert p["p95"] is None


async def test_latency_series_has_percentiles(env: Env) -> None:
    r = await env.c.get(
        "/api/v1/projects/p1/series",
        params={"stream": "link", "field": "latency_ms", "bucket": 3600},
        headers=auth(env.k.read_p1),
    )
    points = r.json()["points"]
    assert len(points) >= 24
    for p in points:
        assert p["p50"] <= p["p95"] <= p["p99"]
        assert 5 < p["p50"] < 20  # lognormal around 10 ms


async def test_telemetry_series_by_metric(env: Env) -> None:
    h = auth(env.k.read_p1)
    params = {"stream": "telemetry", "field": "temperature_c", "device": env.machine}
    r = await env.c.get("/api/v1/projects/p1/series", params=params, headers=h)
    assert r.status_code == 200, r.text
    assert all(30 < p["avg"] < 60 for p in r.json()["points"])
    params["field"] = "no_such_metric"
    r = await env.c.get("/api/v1/projects/p1/series", params=params, headers=h)
    assert r.json()["points"] == []


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"stream": "agv", "field": "colour"}, 422, "battery"),
        ({"stream": "radio", "field": "x"}, 422, "stream"),
        ({"stream": "agv"}, 422, "field"),
        ({"stream": "agv", "field": "battery", "bucket": 60, "points": 10}, 422, "not both"),
        ({"stream": "agv", "field": "battery", "bucket": 1}, 422, "at most 5000"),
        ({"stream": "agv", "field": "battery", "points": 5001}, 422, "at most 5000"),
        ({"stream": "agv", "field": "battery", "points": 0}, 422, "points"),
        (
            {
                "stream": "agv",
                "field": "battery",
                "start": "2026-01-02T00:00:00Z",
                "end": "2026-01-01T00:00:00Z",
            },
            422,
            "after start",
        ),
        (
            {
                "stream": "agv",
                "field": "battery",
                "start": "2020-01-01T00:00:00Z",
                "end": "2026-01-01T00:00:00Z",
            },
            422,
            "400 days",
        ),
        ({"stream": "agv", "field": "battery", "start": "1900-01-01T00:00:00Z"}, 422, "1970"),
        ({"stream": "agv", "field": "battery", "end": "yesterday"}, 422, "end"),
        ({"stream": "telemetry", "field": "bad metric!"}, 422, "metric name"),
        ({"stream": "agv", "field": "battery", "device": "ghost"}, 404, "ghost"),
    ],
)
async def test_series_errors(env: Env, params: dict[str, Any], status: int, needle: str) -> None:
    r = await env.c.get("/api/v1/projects/p1/series", params=params, headers=auth(env.k.read_p1))
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


async def test_naive_times_are_utc(env: Env) -> None:
    base: dict[str, Any] = {"stream": "agv", "field": "battery", "bucket": 3600}
    h = auth(env.k.read_p1)
    naive = await env.c.get(
        "/api/v1/projects/p1/series",
        params={**base, "start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00"},
        headers=h,
    )
    aware = await env.c.get(
        "/api/v1/projects/p1/series",
        params={**base, "start": "2026-01-01T01:00:00+01:00", "end": "2026-01-02T00:00:00Z"},
        headers=h,
    )
    assert naive.status_code == aware.status_code == 200
    assert naive.json()["start"] == aware.json()["start"]


async def test_kpis_agree_with_raw_sql(env: Env) -> None:
    r = await env.c.get("/api/v1/projects/p1/kpis", headers=auth(env.k.read_p1))
    assert r.status_code == 200, r.text
    body = r.json()
    s, e = body["start"], body["end"]
    q = "SELECT count(*) FROM {t} WHERE project_id = 'p1' AND ts >= :s AND ts < :e"
    insp = body["inspection"]
    assert insp["inspections"] == _scalar(env.url, q.format(t="inspections"), s=s, e=e)
    failed = _scalar(env.url, q.format(t="inspections") + " AND NOT passed", s=s, e=e)
    assert insp["failed"] == failed
    assert math.isclose(insp["defect_rate"] + insp["first_pass_yield"], 1.0)
    assert sum(d["count"] for d in insp["top_defects"]) == failed
    agv = body["agv"]
    moving = _scalar(env.url, q.format(t="agv_status") + " AND state = 'moving'", s=s, e=e)
    available = _scalar(
        env.url,
        q.format(t="agv_status") + " AND state NOT IN ('charging', 'error', 'estop')",
        s=s, e=e,
    )  # fmt: skip
    assert math.isclose(agv["utilisation"], moving / available)  # type: ignore[operator]
    assert agv["agvs"] == 2
    assert 0 < agv["low_battery_share"] < 1
    link = body["link"]
    assert link["latency_ms"]["p50"] < link["latency_ms"]["p95"] < link["latency_ms"]["p99"]
    assert math.isclose(sum(link["rsrp_bands"].values()), 1.0)
    assert math.isclose(sum(link["sinr_bands"].values()), 1.0)
    assert body["alarms"]["opened_by_severity"] == {"critical": 1, "major": 2}
    assert body["alarms"]["active_by_severity"] == {"critical": 1, "major": 1, "minor": 1}


async def test_e_stops_count_entries_into_estop(env: Env) -> None:
    h = auth(env.k.read_p1)
    before = (await env.c.get("/api/v1/projects/p1/kpis", headers=h)).json()["agv"]
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    states = ["moving", "estop", "estop", "moving", "estop", "moving"]
    engine = sa.create_engine(db.sync_url(env.url))
    with engine.begin() as conn:
        for i, state in enumerate(states):
            conn.execute(
                sa.text(
                    "INSERT INTO agv_status (ts, project_id, device_id, seq, x, y, heading, "
                    "speed, battery, state, localization, received_at) VALUES "
                    "(:t, 'p1', 'agv-extra', :i, 0, 0, 0, 0, 80, :s, 1, now())"
                ),
                {"t": t0 + timedelta(minutes=i), "i": i, "s": state},
            )
    engine.dispose()
    rollup_engine = make_engine(api_settings(env.url))
    await maintain.rewind(rollup_engine, t0 - timedelta(hours=1))
    await maintain.catch_up(rollup_engine)
    await rollup_engine.dispose()
    after = (await env.c.get("/api/v1/projects/p1/kpis", headers=h)).json()["agv"]
    assert after["e_stops"] - before["e_stops"] == 2
    assert after["agvs"] == before["agvs"] + 1


async def test_kpis_of_an_empty_range_are_null_not_errors(env: Env) -> None:
    r = await env.c.get(
        "/api/v1/projects/p1/kpis",
        params={"start": "2025-01-01T00:00:00Z", "end": "2025-01-02T00:00:00Z"},
        headers=auth(env.k.read_p1),
    )
    assert r.status_code == 200
    body = r.json()
    assert body["inspection"]["inspections"] == 0
    assert body["inspection"]["defect_rate"] is None
    assert body["link"]["latency_ms"]["p95"] is None


async def test_unknown_project_is_404(env: Env) -> None:
    for path in ("/api/v1/projects/zz/kpis", "/api/v1/projects/zz/series?stream=agv&field=x"):
        r = await env.c.get(path, headers=auth(env.k.admin))
        assert r.status_code == 404


async def test_concurrent_kpis_cannot_starve_a_small_pool(env: Env) -> None:
    # Each summary runs four queries at once; with two pooled connections (plus two of
    # overflow) and uncached keys, many at once must queue, not deadlock.
    settings = api_settings(env.url, key_cache_s=0)
    settings.database.pool_max = 2
    async with client(settings) as (_, c):
        h = auth(env.k.read_p1)
        calls = [c.get("/api/v1/projects/p1/kpis", headers=h) for _ in range(12)]
        calls += [c.get("/api/v1/devices", headers=h) for _ in range(12)]
        results = await asyncio.wait_for(asyncio.gather(*calls), timeout=60)
    assert {r.status_code for r in results} == {200}
