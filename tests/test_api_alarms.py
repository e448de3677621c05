"""Alarms: filters, cursor paging, history, acknowledge and clear with their events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import aiomqtt
import httpx
import orjson
import pytest

from f5gdev.devstack.servers import Mosquitto
from tests.conftest import make_settings
from tests.test_api_support import Keys, api_settings, auth, client, insert_alarms, make_keys


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[tuple[httpx.AsyncClient, Keys]]:
    url = new_database()
    now = datetime.now(UTC)
    await insert_alarms(
        url,
        [
            {
                "project_id": "p1",
                "device_id": f"d{i % 3}",
                "rule": f"rule{i}",
                "severity": ("minor", "major", "critical")[i % 3],
                "opened_at": now - timedelta(minutes=i),
            }
            for i in range(12)
        ]
        + [{"project_id": "p2", "device_id": "x", "rule": "r", "opened_at": now}],
    )
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield c, k


async def test_list_filters_and_pages_newest_first(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    h = auth(k.read_p1)
    got, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": 5, "project": "p1"}
        if cursor:
            params["cursor"] = cursor
        page = (await c.get("/api/v1/alarms", params=params, headers=h)).json()
        got += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [a["rule"] for a in got] == [f"rule{i}" for i in range(12)]
    crit = (await c.get("/api/v1/alarms?severity=critical", headers=h)).json()["items"]
    assert {a["severity"] for a in crit} == {"critical"}
    assert len(crit) == 4
    dev = (await c.get("/api/v1/alarms?device=d1", headers=h)).json()["items"]
    assert {a["device_id"] for a in dev} == {"d1"}
    since = (datetime.now(UTC) - timedelta(minutes=2, seconds=30)).isoformat()
    recent = (await c.get("/api/v1/alarms", params={"since": since}, headers=h)).json()
    assert [a["rule"] for a in recent["items"]] == ["rule0", "rule1", "rule2"]


async def test_acknowledge_then_clear_records_history(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    items = (await c.get("/api/v1/alarms?project=p1", headers=auth(k.read_p1))).json()["items"]
    alarm_id = items[0]["id"]
    op = auth(k.operate_p1)
    r = await c.post(f"/api/v1/alarms/{alarm_id}/acknowledge", json={"note": "on it"}, headers=op)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "acknowledged"
    assert r.json()["acknowledged_by"] == "operator-p1"
    again = await c.post(f"/api/v1/alarms/{alarm_id}/acknowledge", headers=op)
    assert again.status_code == 409
    assert "acknowledged" in again.json()["error"]["message"]
    r = await c.post(f"/api/v1/alarms/{alarm_id}/clear", headers=op)
    assert r.json()["state"] == "cleared"
    assert r.json()["cleared_at"] is not None
    assert (await c.post(f"/api/v1/alarms/{alarm_id}/clear", headers=op)).status_code == 409
    detail = (await c.get(f"/api/v1/alarms/{alarm_id}", headers=op)).json()
    hist = detail["history"]
    assert [e["transition"] for e in hist] == ["opened", "acknowledged", "cleared"]
    assert hist[1]["actor"] == "operator-p1"
    assert hist[1]["evidence"] == {"note": "on it"}
    active = (await c.get("/api/v1/alarms?state=active&project=p1", headers=op)).json()
    assert alarm_id not in [a["id"] for a in active["items"]]
    cleared = (await c.get("/api/v1/alarms?state=cleared", headers=op)).json()["items"]
    assert [a["id"] for a in cleared] == [alarm_id]


async def test_racing_operators_make_one_transition(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    items = (await c.get("/api/v1/alarms?state=open", headers=auth(k.read_p1))).json()["items"]
    alarm_id = items[-1]["id"]
    op = auth(k.operate_p1)
    results = await asyncio.gather(
        *(c.post(f"/api/v1/alarms/{alarm_id}/acknowledge", headers=op) for _ in range(4))
    )
    assert sorted(r.status_code for r in results) == [200, 409, 409, 409]
    hist = (await c.get(f"/api/v1/alarms/{alarm_id}", headers=op)).json()["history"]
    assert [e["transition"] for e in hist] == ["opened", "acknowledged"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/alarms/987654", 404),
        ("GET", "/api/v1/alarms/0", 404),
        ("GET", "/api/v1/alarms/-5", 404),
        ("GET", "/api/v1/alarms/99999999999999999999", 404),
        ("GET", "/api/v1/alarms/abc", 422),
        ("POST", "/api/v1/alarms/987654/clear", 404),
        ("GET", "/api/v1/alarms?state=sleeping", 422),
        ("GET", "/api/v1/alarms?since=noon", 422),
        ("GET", "/api/v1/alarms?cursor=WyJ4IiwgMV0", 422),
    ],
)
async def test_alarm_errors(
    env: tuple[httpx.AsyncClient, Keys], method: str, path: str, status: int
) -> None:
    c, k = env
    r = await c.request(method, path, headers=auth(k.operate_p1))
    assert r.status_code == status, r.text


async def test_action_body_is_validated(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    items = (await c.get("/api/v1/alarms?state=open", headers=auth(k.read_p1))).json()["items"]
    r = await c.post(
        f"/api/v1/alarms/{items[0]['id']}/clear",
        json={"note": "x" * 1001},
        headers=auth(k.operate_p1),
    )
    assert r.status_code == 422
    r = await c.post(
        f"/api/v1/alarms/{items[0]['id']}/clear", json={"reason": "x"}, headers=auth(k.operate_p1)
    )
    assert r.status_code == 422


async def test_operator_transitions_are_announced_on_mqtt(
    new_database: Callable[..., str], broker: Mosquitto
) -> None:
    url = new_database()
    await insert_alarms(
        url,
        [
            {
                "project_id": "p1",
                "device_id": "agv-9",
                "rule": "estop",
                "opened_at": datetime.now(UTC),
            }
        ],
    )
    k = await make_keys(url)
    settings = make_settings(url, broker.port, api={"rollup_interval_s": 0, "key_cache_s": 0})
    seen: list[tuple[str, dict[str, object]]] = []
    async with aiomqtt.Client("127.0.0.1", broker.port) as sub, client(settings) as (_, c):
        await sub.subscribe("f5g/v1/+/alarms/#", qos=1)
        items = (await c.get("/api/v1/alarms", headers=auth(k.read_p1))).json()["items"]
        alarm_id = items[0]["id"]
        op = auth(k.operate_p1)
        assert (await c.post(f"/api/v1/alarms/{alarm_id}/acknowledge", headers=op)).is_success
        assert (await c.post(f"/api/v1/alarms/{alarm_id}/clear", headers=op)).is_success
        async with asyncio.timeout(10):
            async for msg in sub.messages:
                seen.append((str(msg.topic), orjson.loads(msg.payload)))  # type: ignore[arg-type]
                if len(seen) == 2:
                    break
    assert [t for t, _ in seen] == ["f5g/v1/p1/alarms/unknown/agv-9/estop"] * 2
    assert [(m["transition"], m["actor"], m["alarm_id"]) for _, m in seen] == [
        ("acknowledged", "operator-p1", alarm_id),
        ("cleared", "operator-p1", alarm_id),
    ]
