"""Devices: filtered, cursor-paged listing and one device with its latest values."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from f5gdev.seed.generate import TELEMETRY_METRICS
from tests.test_api_support import (
    PLAN_DEVICES,
    Keys,
    api_settings,
    auth,
    client,
    make_keys,
    seed_small,
)


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[tuple[httpx.AsyncClient, Keys]]:
    url = new_database()
    await seed_small(url)
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield c, k


async def test_list_pages_through_every_device_once(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    seen: list[tuple[str, str]] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        r = await c.get("/api/v1/devices", params=params, headers=auth(k.admin))
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [(d["project_id"], d["device_id"]) for d in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == PLAN_DEVICES
    assert seen == sorted(set(seen))


async def test_filters_by_project_kind_and_online(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    h = auth(k.admin)
    agvs = (await c.get("/api/v1/devices?project=p2&kind=agv", headers=h)).json()["items"]
    assert agvs
    assert {(d["project_id"], d["kind"]) for d in agvs} == {("p2", "agv")}
    assert (await c.get("/api/v1/devices?online=false", headers=h)).json()["items"] == []
    online = (await c.get("/api/v1/devices?online=true&limit=500", headers=h)).json()["items"]
    assert len(online) == PLAN_DEVICES


async def test_device_detail_has_latest_values(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    h = auth(k.admin)
    items = (await c.get("/api/v1/devices?project=p1&limit=500", headers=h)).json()["items"]
    by_kind = {d["kind"]: d["device_id"] for d in items}
    agv = (await c.get(f"/api/v1/projects/p1/devices/{by_kind['agv']}", headers=h)).json()
    assert set(agv["last"]) == {"agv"}
    assert 0 <= agv["last"]["agv"]["battery"] <= 100
    assert "project_id" not in agv["last"]["agv"]
    machine = (await c.get(f"/api/v1/projects/p1/devices/{by_kind['machine']}", headers=h)).json()
    # The seeded machines report the process metrics and the OEE machine-state convention.
    assert set(machine["last"]["telemetry"]) == set(TELEMETRY_METRICS)
    cpe = (await c.get(f"/api/v1/projects/p1/devices/{by_kind['cpe']}", headers=h)).json()
    assert -156 <= cpe["last"]["link"]["rsrp"] <= -31


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/projects/p1/devices/ghost", 404),
        ("/api/v1/projects/nope/devices/ghost", 404),
        ("/api/v1/devices?project=nope", 200),
        ("/api/v1/devices?online=maybe", 422),
        ("/api/v1/devices?cursor=bm90LWpzb24", 422),
        ("/api/v1/devices?limit=100000", 422),
    ],
)
async def test_device_errors(env: tuple[httpx.AsyncClient, Keys], path: str, status: int) -> None:
    c, k = env
    r = await c.get(path, headers=auth(k.admin))
    assert r.status_code == status, r.text
