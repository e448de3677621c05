"""Devices: filtered, cursor-paged listing and one device with its latest values."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

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
