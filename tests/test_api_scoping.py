"""A key never reads or changes another project's data, on any route.

Every project-bearing route is called by a key scoped to p1 for p2's resources, and must
answer exactly like an unknown id (404), while the same call for p1 succeeds; listings
without a project filter contain p1 only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.test_api_support import (
    Keys,
    api_settings,
    auth,
    client,
    insert_alarms,
    insert_dead_letters,
    make_keys,
    seed_small,
)


class Env:
    def __init__(self, c: httpx.AsyncClient, k: Keys, alarms: dict[str, int], devs: dict[str, str]):
        self.c, self.k, self.alarms, self.devs = c, k, alarms, devs


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[Env]:
    url = new_database()
    plan = await seed_small(url)
    devs: dict[str, str] = {}
    for d in plan.device_list():
        devs.setdefault(d.project, d.device)
    now = datetime.now(UTC) - timedelta(hours=1)
    ids = await insert_alarms(
        url,
        [
            {"project_id": p, "device_id": devs[p], "rule": "r", "opened_at": now}
            for p in ("p1", "p2")
        ],
    )
    await insert_dead_letters(url, [("p1", "schema"), ("p2", "bad_topic"), (None, "bad_topic")])
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield Env(c, k, {"p1": ids[0], "p2": ids[1]}, devs)


def _routes(e: Env, p: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    q = {"stream": "agv", "field": "battery"}
    return [
        ("GET", f"/api/v1/projects/{p}", None),
        ("GET", f"/api/v1/projects/{p}/devices/{e.devs[p]}", None),
        ("GET", f"/api/v1/projects/{p}/series?stream={q['stream']}&field={q['field']}", None),
        (
            "GET",
            f"/api/v1/projects/{p}/series?stream=agv&field=battery&device={e.devs[p]}",
            None,
        ),
        ("GET", f"/api/v1/projects/{p}/kpis", None),
        ("GET", f"/api/v1/devices?project={p}", None),
        ("GET", f"/api/v1/alarms?project={p}", None),
        ("GET", f"/api/v1/alarms/{e.alarms[p]}", None),
        ("GET", f"/api/v1/ingest/health?project={p}", None),
    ]


ROUTE_COUNT = 9


@pytest.mark.parametrize("i", range(ROUTE_COUNT))
async def test_read_routes_hide_other_projects(env: Env, i: int) -> None:
    method, own, _ = _routes(env, "p1")[i]
    _, other, _ = _routes(env, "p2")[i]
    ok = await env.c.request(method, own, headers=auth(env.k.read_p1))
    assert ok.status_code == 200, ok.text
    hidden = await env.c.request(method, other, headers=auth(env.k.read_p1))
    assert hidden.status_code == 404, (other, hidden.text)
    assert hidden.json()["error"]["code"] == "not_found"
    # The admin of all projects sees p2; p2's own reader too.
    assert (await env.c.request(method, other, headers=auth(env.k.admin))).status_code == 200
    assert (await env.c.request(method, other, headers=auth(env.k.read_p2))).status_code == 200


@pytest.mark.parametrize("action", ["acknowledge", "clear"])
async def test_operators_cannot_touch_other_projects_alarms(env: Env, action: str) -> None:
    r = await env.c.post(
        f"/api/v1/alarms/{env.alarms['p2']}/{action}", headers=auth(env.k.operate_p1)
    )
    assert r.status_code == 404
    detail = await env.c.get(f"/api/v1/alarms/{env.alarms['p2']}", headers=auth(env.k.admin))
    assert detail.json()["state"] == "open"
    assert [h["transition"] for h in detail.json()["history"]] == ["opened"]


async def test_admins_of_one_project_manage_only_it(env: Env) -> None:
    r = await env.c.patch("/api/v1/projects/p1", json={"city": "X"}, headers=auth(env.k.admin_p2))
    assert r.status_code == 404
    r = await env.c.post(
        "/api/v1/projects", json={"id": "p7", "name": "x"}, headers=auth(env.k.admin_p2)
    )
    assert r.status_code == 403
    r = await env.c.patch("/api/v1/projects/p2", json={"city": "Y"}, headers=auth(env.k.admin_p2))
    assert r.status_code == 200
    assert r.json()["city"] == "Y"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/v1/projects", "id"),
        ("/api/v1/devices?limit=500", "project_id"),
        ("/api/v1/alarms", "project_id"),
    ],
)
async def test_unfiltered_lists_contain_only_visible_projects(
    env: Env, path: str, field: str
) -> None:
    mine = (await env.c.get(path, headers=auth(env.k.read_p1))).json()["items"]
    everything = (await env.c.get(path, headers=auth(env.k.admin))).json()["items"]
    assert mine
    assert {x[field] for x in mine} == {"p1"}
    assert {x[field] for x in everything} == {"p1", "p2"}


async def test_ingest_health_counts_only_visible_projects(env: Env) -> None:
    mine = (await env.c.get("/api/v1/ingest/health", headers=auth(env.k.read_p1))).json()
    everything = (await env.c.get("/api/v1/ingest/health", headers=auth(env.k.admin))).json()
    assert mine["projects"] == ["p1"]
    assert mine["dead_letters"]["by_reason"] == {"schema": 1}
    assert everything["dead_letters"]["by_reason"] == {"bad_topic": 2, "schema": 1}
