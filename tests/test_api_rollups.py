"""Rollups: exact agreement with raw rows, idempotent bounded maintenance, exact range cover."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.app import make_engine
from services.api.rollups import cover, maintain
from services.api.rollups.specs import SPECS
from tests.test_api_support import Keys, api_settings, auth, client, make_keys, seed_small

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@given(
    start=st.integers(0, 3 * 86400),
    length=st.integers(1, 3 * 86400),
    wm_m=st.integers(0, 4 * 86400) | st.none(),
    wm_h=st.integers(0, 4 * 86400) | st.none(),
    bucket=st.sampled_from([None, 1, 30, 60, 90, 600, 3600, 7200]),
)
@settings(max_examples=300, deadline=None)
def test_plan_covers_the_range_exactly_once(
    start: int, length: int, wm_m: int | None, wm_h: int | None, bucket: int | None
) -> None:
    s, e = T0 + timedelta(seconds=start), T0 + timedelta(seconds=start + length)
    marks = {k: T0 + timedelta(seconds=v) for k, v in (("1m", wm_m), ("1h", wm_h)) if v is not None}
    segs = cover.plan(s, e, marks, bucket_s=bucket)
    assert segs[0].start == s
    assert segs[-1].end == e
    for a, b in itertools.pairwise(segs):
        assert a.end == b.start
    for seg in segs:
        assert seg.start < seg.end
        if seg.source != "raw":
            width = 3600 if seg.source == "1h" else 60
            assert seg.start.timestamp() % width == 0
            assert seg.end.timestamp() % width == 0
            assert seg.end <= marks[seg.source]
            assert bucket is None or bucket % width == 0


@pytest.fixture(scope="module")
async def env(
    new_database: Callable[..., str],
) -> AsyncIterator[tuple[str, AsyncEngine, httpx.AsyncClient, Keys]]:
    url = new_database()
    await seed_small(url, rollups=False)
    engine = make_engine(api_settings(url))
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield url, engine, c, k
    await engine.dispose()


async def _snapshot(engine: AsyncEngine, table: str) -> list[Any]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY 1, 2, 3, 4"))
        return [tuple(r) for r in rows]


async def test_one_pass_is_bounded(env: tuple[str, AsyncEngine, httpx.AsyncClient, Keys]) -> None:
    _, engine, _, _ = env
    async with engine.connect() as conn:
        first = (await conn.execute(sa.text("SELECT min(ts) FROM agv_status"))).scalar_one()
    progress = await maintain.run_once(engine)
    agv = next(p for p in progress if p.spec == "agv" and p.resolution == "1m")
    assert agv.watermark == maintain.floor_to(first, 60) + maintain.MAX_SPAN["1m"]
    assert not agv.caught_up


async def test_catch_up_matches_raw_aggregation_and_is_idempotent(
    env: tuple[str, AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    _, engine, _, _ = env
    await maintain.catch_up(engine)
    async with engine.connect() as conn:
        raw = (
            await conn.execute(
                sa.text(
                    "SELECT count(*), sum(battery), min(battery), max(battery), "
                    "count(*) FILTER (WHERE state = 'moving') FROM agv_status "
                    "WHERE ts < (SELECT watermark FROM rollup_watermarks "
                    "WHERE spec = 'agv' AND resolution = '1h')"
                )
            )
        ).one()
        hourly = (
            await conn.execute(
                sa.text(
                    "SELECT sum(n), sum(battery_sum), min(battery_min), max(battery_max), "
                    "sum(moving_n) FROM rollup_agv_1h"
                )
            )
        ).one()
    assert raw[0] > 0
    assert hourly[0] == raw[0]
    assert math.isclose(hourly[1], raw[1], rel_tol=1e-9)
    assert (hourly[2], hourly[3], hourly[4]) == (raw[2], raw[3], raw[4])
    before = {t: await _snapshot(engine, t) for t in ("rollup_link_1m", "rollup_agv_1h")}
    await maintain.catch_up(engine)
    async with engine.begin() as conn:  # re-running an already covered window changes nothing
        await conn.execute(sa.text("UPDATE rollup_watermarks SET watermark = watermark"))
    await maintain.run_once(engine)
    after = {t: await _snapshot(engine, t) for t in before}
    # Same rows and values; float sums may differ in the last bit with summation order.
    assert _close(
        {t: [list(r) for r in v] for t, v in after.items()},
        {t: [list(r) for r in v] for t, v in before.items()},
    )


async def test_late_rows_within_the_relook_are_picked_up(
    env: tuple[str, AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    _, engine, _, _ = env
    await maintain.catch_up(engine)
    async with engine.begin() as conn:
        wm = (
            await conn.execute(
                sa.text(
                    "SELECT watermark FROM rollup_watermarks WHERE spec='link' AND resolution='1m'"
                )
            )
        ).scalar_one()
        late = wm - timedelta(seconds=90)
        await conn.execute(
            sa.text(
                "INSERT INTO link_kpis (ts, project_id, device_id, seq, rsrp, sinr, latency_ms, "
                "received_at) VALUES (:t, 'p1', 'late-cpe', 1, -70, 25, 4321, now())"
            ),
            {"t": late},
        )
    await maintain.run_once(engine)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT n, latency_ms_max, lat_h29 FROM rollup_link_1m "
                    "WHERE device_id = 'late-cpe'"
                )
            )
        ).one()
    assert row == (1, 4321.0, 1)


async def test_rewind_rebuilds_from_a_time(
    env: tuple[str, AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    _, engine, _, _ = env
    await maintain.catch_up(engine)
    buckets = sa.text("SELECT DISTINCT bucket FROM rollup_inspection_1m ORDER BY 1")
    async with engine.begin() as conn:
        before = list((await conn.execute(buckets)).scalars())
        await conn.execute(sa.text("DELETE FROM rollup_inspection_1m"))
    since = datetime.now(UTC) - timedelta(hours=3)
    await maintain.rewind(engine, since)
    await maintain.catch_up(engine)
    async with engine.connect() as conn:
        rebuilt = list((await conn.execute(buckets)).scalars())
    # Rebuilt from `since`, including the usual re-aggregation reach before it: exactly the
    # minutes from there on that had rows (a minute without inspections has no bucket, so
    # the oldest rebuilt minute is not necessarily the reach's first).
    reach = maintain.floor_to(since, 60) - timedelta(minutes=maintain.RELOOK["1m"])
    assert rebuilt, "nothing rebuilt"
    # (A minute that closed between the two catch-ups may add a bucket after `before`'s last.)
    assert [b for b in rebuilt if b <= before[-1]] == [b for b in before if b >= reach]
    assert before[0] < reach  # the rows before the reach exist and were not rebuilt
    await maintain.rewind(engine, datetime.now(UTC) - timedelta(days=30))  # restore the rest
    await maintain.catch_up(engine)


async def test_concurrent_maintainers_do_not_conflict(
    env: tuple[str, AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    _, engine, _, _ = env
    results = await asyncio.gather(maintain.catch_up(engine), maintain.catch_up(engine))
    assert all(r >= 1 for r in results)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


async def _without_rollups(engine: AsyncEngine, c: httpx.AsyncClient, calls: list[Any]) -> Any:
    async with engine.begin() as conn:
        saved = (await conn.execute(sa.text("SELECT * FROM rollup_watermarks"))).all()
        await conn.execute(sa.text("DELETE FROM rollup_watermarks"))
    try:
        return [await call() for call in calls]
    finally:
        async with engine.begin() as conn:
            for r in saved:
                await conn.execute(
                    sa.text("INSERT INTO rollup_watermarks VALUES (:s, :r, :w, :u)"),
                    {"s": r.spec, "r": r.resolution, "w": r.watermark, "u": r.updated_at},
                )


async def test_queries_answer_the_same_from_rollups_and_raw_rows(
    env: tuple[str, AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    _, engine, c, k = env
    await maintain.catch_up(engine)
    now = datetime.now(UTC)
    start = (now - timedelta(hours=30)).replace(minute=17, second=23).isoformat()
    end = (now - timedelta(minutes=3)).replace(second=41).isoformat()
    h = auth(k.admin)

    def kpis() -> Any:
        return c.get("/api/v1/projects/p1/kpis", params={"start": start, "end": end}, headers=h)

    def series(stream: str, field: str, bucket: int) -> Any:
        params: dict[str, Any] = {
            "start": start,
            "end": end,
            "stream": stream,
            "field": field,
            "bucket": bucket,
        }
        return lambda: c.get("/api/v1/projects/p1/series", params=params, headers=h)

    calls = [
        kpis,
        series("link", "latency_ms", 3600),
        series("agv", "battery", 600),
        series("telemetry", "temperature_c", 7200),
        series("inspection", "inference_ms", 90),
    ]
    fast = [await call() for call in calls]
    slow = await _without_rollups(engine, c, calls)
    for f, s in zip(fast, slow, strict=True):
        assert f.status_code == s.status_code == 200, f.text
        fb, sb = f.json(), s.json()
        if "sources" in fb:
            assert sb["sources"] == ["raw"]
            fb.pop("sources"), sb.pop("sources")
        assert _close(fb, sb), (fb, sb)
    assert fast[1].json()["sources"] == ["1h", "1m", "raw"]
    assert fast[2].json()["sources"] == ["1m", "raw"]
    assert fast[4].json()["sources"] == ["raw"]
    assert fast[0].json()["inspection"]["inspections"] > 0


async def test_spec_tables_exist_for_every_stream(
    env: tuple[str, AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    _, engine, _, _ = env
    async with engine.connect() as conn:
        for spec in SPECS.values():
            for res in ("1m", "1h"):
                await conn.execute(sa.text(f"SELECT 1 FROM {spec.table(res)} LIMIT 1"))


async def test_catching_up_skips_stretches_without_rows(
    env: tuple[str, AsyncEngine, httpx.AsyncClient, Keys],
) -> None:
    _, engine, _, _ = env
    await maintain.catch_up(engine)
    before = await _snapshot(engine, "rollup_agv_1h")
    await maintain.rewind(engine, datetime(2020, 1, 1, tzinfo=UTC))
    # Six years at six hours per pass would take ~9000 passes; the data spans two days.
    assert await maintain.catch_up(engine) < 30
    assert _close([list(r) for r in await _snapshot(engine, "rollup_agv_1h")],
                  [list(r) for r in before])  # fmt: skip


async def test_one_device_s_minutes_share_heap_pages(new_database: Callable[..., str]) -> None:
    # A long series of one device reads its minute rows through the (project, device,
    # bucket) index; when a pass inserts every device's minutes in time order, each row
    # of that device lands on a page of its own and the read touches a page per minute.
    from f5gdev.seed.generate import SeedPlan, default_end, seed

    url = new_database()
    await seed(url, SeedPlan(1, 24, 0.25, 8640, default_end()))
    engine = make_engine(api_settings(url))
    try:
        await maintain.catch_up(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(
                sa.text(
                    "SELECT device_id, count(*) AS n, "
                    "count(DISTINCT (ctid::text::point)[0]) AS pages "
                    "FROM rollup_link_1m GROUP BY 1"
                )
            )
            per_device = [(r.device_id, int(r.n), int(r.pages)) for r in rows]
    finally:
        await engine.dispose()
    assert len(per_device) >= 4
    for device, n, pages in per_device:
        assert n >= 300, device
        # A page holds about a dozen link minutes: whole runs of one device, not one each.
        assert pages * 4 <= n, (device, n, pages)
