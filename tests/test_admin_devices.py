"""Device and project administration through the API, under the API's own role, with a
real broker (credentials revoked on retire/delete) and real ingest (auto-registration)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from f5gdev.devstack.servers import Mosquitto
from services.security.broker_auth import BrokerAuth
from tests.conftest import make_settings
from tests.test_admin_credentials import BOOT, Env, Probe, _connected, _issue
from tests.test_admin_credentials import api_url as api_url
from tests.test_admin_credentials import secured as secured
from tests.test_api_support import auth, client
from tests.test_ingest_helpers import inspection, running, scalar, wait_until


@pytest.fixture(scope="module")
async def env(
    secured: tuple[Mosquitto, BrokerAuth],
    api_url: tuple[str, str],
) -> AsyncIterator[Env]:
    broker, broker_auth = secured
    owner, api = api_url
    project = f"line-{uuid.uuid4().hex[:6]}"
    ingest_creds = broker_auth.service_credentials("ingest")
    ingest_settings = make_settings(
        owner,
        broker.port,
        mqtt={"username": ingest_creds.username, "password": ingest_creds.password},
        ingest={"client_id": f"ingest-{uuid.uuid4().hex[:8]}", "metrics_port": 0},
    )
    api_settings = make_settings(
        api,
        broker.port,
        api={
            "rollup_interval_s": 0,
            "key_cache_s": 0,
            "bootstrap_key": BOOT,
            "broker_auth_dir": str(broker_auth.directory),
        },
    )
    async with running(ingest_settings), client(api_settings) as (_, c):
        yield Env(c, owner, broker, project, broker_auth)


async def _publish_as(env: Env, project: str, device: str, n: int) -> None:
    """n inspections of a device through a native credential issued by the API."""
    issued = await _issue(env, type="native", project=project, kind="camera", device=device)
    dev = await _connected(env, issued)
    try:
        topic = f"f5g/v1/{project}/camera/{device}/inspection"
        rcs = [await asyncio.to_thread(dev.publish, topic, inspection(i)) for i in range(n)]
        assert rcs == [0] * n
    finally:
        await asyncio.to_thread(dev.close)

    async def stored() -> bool:
        count = await scalar(
            env.url,
            "SELECT count(*) FROM inspections WHERE project_id = $1 AND device_id = $2",
            project,
            device,
        )
        return int(count) == n

    await wait_until(stored, 20)


async def _device(c: httpx.AsyncClient, project: str, device: str) -> dict[str, object]:
    r = await c.get(f"/api/v1/projects/{project}/devices/{device}", headers=auth(BOOT))
    assert r.status_code == 200, r.text
    out: dict[str, object] = r.json()
    return out


async def test_an_auto_registered_device_is_unregistered_until_an_admin_registers_it(
    env: Env,
) -> None:
    c, p = env.c, env.project
    await _publish_as(env, p, "stray-1", 3)
    r = await c.get(
        "/api/v1/devices", params={"project": p, "status": "unregistered"}, headers=auth(BOOT)
    )
    assert [d["device_id"] for d in r.json()["items"]] == ["stray-1"]
    body = {
        "device_id": "stray-1",
        "kind": "camera",
        "profiles": ["vision", "link"],
        "metadata": {
            "line": "L2",
            "location": "hall 3",
            "model": "VX-9",
            "firmware": "4.2.1",
            "tags": ["qa"],
        },
    }
    r = await c.post(f"/api/v1/projects/{p}/devices", json=body, headers=auth(BOOT))
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["status"], got["profiles"], got["metadata"]["line"]) == (
        "registered",
        ["vision", "link"],
        "L2",
    )
    # Ingest's columns are untouched by the registration.
    assert got["online"] is True
    again = await c.post(f"/api/v1/projects/{p}/devices", json=body, headers=auth(BOOT))
    assert again.status_code == 409
    r = await c.get(
        "/api/v1/devices", params={"project": p, "status": "unregistered"}, headers=auth(BOOT)
    )
    assert r.json()["items"] == []
    # A device registered before it ever publishes.
    r = await c.post(
        f"/api/v1/projects/{p}/devices",
        json={"device_id": "agv-new", "kind": "agv", "profiles": ["agv", "link"]},
        headers=auth(BOOT),
    )
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["online"]) == ("registered", False)
    r = await c.patch(
        f"/api/v1/projects/{p}/devices/agv-new",
        json={"metadata": {"firmware": "1.1"}},
        headers=auth(BOOT),
    )
    assert r.status_code == 200, r.text
    assert r.json()["metadata"] == {"firmware": "1.1", "tags": []}
    assert r.json()["profiles"] == ["agv", "link"]
    r = await c.get(
        "/api/v1/audit",
        params={"target_type": "device", "target_id": f"{p}/agv-new"},
        headers=auth(BOOT),
    )
    assert [i["action"] for i in r.json()["items"]] == ["device.update", "device.register"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device_id": "a/b", "kind": "camera"}, "device_id"),
        ({"device_id": "d", "kind": "camera", "metadata": {"colour": "red"}}, "colour"),
        ({"device_id": "d", "kind": "camera", "profiles": ["x"] * 17}, "profiles"),
        ({"device_id": "d"}, "kind"),
    ],
)
async def test_bad_registrations_name_the_field_and_change_nothing(
    env: Env, body: dict[str, object], field: str
) -> None:
    r = await env.c.post(f"/api/v1/projects/{env.project}/devices", json=body, headers=auth(BOOT))
    assert r.status_code == 422
    assert field in r.text
    n = await scalar(env.url, "SELECT count(*) FROM devices WHERE device_id = 'd'")
    assert int(n) == 0


async def test_retire_keeps_history_and_refuses_the_devices_credential_live(env: Env) -> None:
    c, p = env.c, env.project
    await _publish_as(env, p, "cam-r", 4)
    (cred,) = [
        i
        for i in (
            await c.get("/api/v1/credentials", params={"project": p}, headers=auth(BOOT))
        ).json()["items"]
        if i["username"] == f"dev/{p}/camera/cam-r"
    ]
    rotated = (await c.post(f"/api/v1/credentials/{cred['id']}/rotate", headers=auth(BOOT))).json()
    live = await _connected(env, rotated)
    try:
        r = await c.post(f"/api/v1/projects/{p}/devices/cam-r/retire", headers=auth(BOOT))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "retired"
        assert await asyncio.to_thread(live.dropped.wait, 2.0)
    finally:
        await asyncio.to_thread(live.close)
    again = Probe(env.broker.port, rotated["username"], rotated["password"], rotated["client_id"])
    assert await asyncio.to_thread(again.connect) != 0
    await asyncio.to_thread(again.close)
    kept = await scalar(
        env.url, "SELECT count(*) FROM inspections WHERE project_id = $1 AND device_id = 'cam-r'", p
    )
    assert int(kept) == 4
    r = await c.get(f"/api/v1/credentials/{cred['id']}", headers=auth(BOOT))
    assert r.json()["revoked_at"] is not None


async def test_delete_needs_confirmation_and_removes_only_that_devices_data(env: Env) -> None:
    c, p = env.c, env.project
    await _publish_as(env, p, "cam-x", 5)
    await _publish_as(env, p, "cam-y", 2)
    for params in ({}, {"confirm": "cam-y"}, {"confirm": "CAM-X"}):
        r = await c.delete(f"/api/v1/projects/{p}/devices/cam-x", params=params, headers=auth(BOOT))
        assert r.status_code == 422, r.text
        assert "confirm" in r.json()["error"]["message"]
    count = "SELECT count(*) FROM inspections WHERE project_id = $1 AND device_id = $2"
    assert int(await scalar(env.url, count, p, "cam-x")) == 5
    r = await c.delete(
        f"/api/v1/projects/{p}/devices/cam-x", params={"confirm": "cam-x"}, headers=auth(BOOT)
    )
    assert r.status_code == 200, r.text
    assert r.json()["rows_deleted"] == 5 + 1  # its inspections and its registry row
    assert len(r.json()["credentials_revoked"]) == 1
    assert int(await scalar(env.url, count, p, "cam-x")) == 0
    assert int(await scalar(env.url, count, p, "cam-y")) == 2
    gone = await c.get(f"/api/v1/projects/{p}/devices/cam-x", headers=auth(BOOT))
    assert gone.status_code == 404


async def test_an_archived_project_is_deleted_with_its_data_and_credentials(env: Env) -> None:
    c = env.c
    doomed, kept = f"old-{uuid.uuid4().hex[:6]}", f"new-{uuid.uuid4().hex[:6]}"
    for pid in (doomed, kept):
        r = await c.post("/api/v1/projects", json={"id": pid, "name": pid}, headers=auth(BOOT))
        assert r.status_code == 201
        await _publish_as(env, pid, "cam-1", 3)
    board = await _connected(env, await _issue(env, type="alarms", project=doomed, name="andon"))
    try:
        url = f"/api/v1/projects/{doomed}"
        r = await c.delete(url, params={"confirm": doomed}, headers=auth(BOOT))
        assert r.status_code == 409
        assert "archive it first" in r.json()["error"]["message"]
        r = await c.patch(url, json={"status": "archived"}, headers=auth(BOOT))
        assert r.status_code == 200
        listed = await c.get("/api/v1/projects", params={"status": "archived"}, headers=auth(BOOT))
        assert doomed in {i["id"] for i in listed.json()["items"]}
        assert (await c.delete(url, headers=auth(BOOT))).status_code == 422
        r = await c.delete(url, params={"confirm": doomed}, headers=auth(BOOT))
        assert r.status_code == 200, r.text
        assert len(r.json()["credentials_revoked"]) == 2  # the camera and the board
        assert await asyncio.to_thread(board.dropped.wait, 2.0)
    finally:
        await asyncio.to_thread(board.close)
    for table in ("inspections", "devices"):
        n = await scalar(env.url, f"SELECT count(*) FROM {table} WHERE project_id = $1", doomed)
        assert int(n) == 0, table
        n = await scalar(env.url, f"SELECT count(*) FROM {table} WHERE project_id = $1", kept)
        assert int(n) > 0, table
    assert (await c.get(f"/api/v1/projects/{doomed}", headers=auth(BOOT))).status_code == 404
    trail = await c.get(
        "/api/v1/audit", params={"project": doomed, "action": "project.delete"}, headers=auth(BOOT)
    )
    assert len(trail.json()["items"]) == 1
