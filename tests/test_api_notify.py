"""Notification API: channels with write-only secrets, routes, policies, scoping, a test
notice delivered by the real notifier to a real receiver, and an alarm's delivery history."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.protocols.notify.channels import CHANNELS
from tests.notify_support import Receiver, connect, notifier, open_alarm
from tests.test_api_support import Keys, api_settings, auth, client, make_keys
from tests.test_ingest_helpers import wait_until
from tests.test_notify import fast_settings

SECRET = "s3cr3t-signing-key-never-shown"
N = "/api/v1/notify"


@pytest.fixture(scope="module")
async def env(
    new_database: Callable[..., str],
) -> AsyncIterator[tuple[httpx.AsyncClient, Keys, str]]:
    url = new_database()
    k = await make_keys(url)
    # The receivers listen on loopback: the opt-out the local stack also sets.
    settings = api_settings(url)
    settings.notify.allow_private_targets = ["127.0.0.0/8"]
    async with client(settings) as (_, c):
        yield c, k, url


async def _channel(c: httpx.AsyncClient, token: str, project: str | None, url: str) -> int:
    r = await c.post(
        f"{N}/channels",
        json={
            "project_id": project,
            "name": f"hook-{uuid.uuid4().hex[:8]}",
            "type": "webhook",
            "config": {"url": url, "secret": SECRET, "allow_insecure_http": True},
        },
        headers=auth(token),
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_channel_secrets_are_write_only(
    env: tuple[httpx.AsyncClient, Keys, str],
) -> None:
    c, k, url = env
    channel = await _channel(c, k.admin, "p1", "http://127.0.0.1:9/hook?token=abc")
    for r in (
        await c.get(f"{N}/channels/{channel}", headers=auth(k.admin)),
        await c.get(f"{N}/channels?project=p1", headers=auth(k.admin)),
    ):
        assert r.status_code == 200
        assert SECRET not in r.text
        assert "abc" not in r.text
    shown = (await c.get(f"{N}/channels/{channel}", headers=auth(k.admin))).json()
    assert shown["config"] == {
        "url": "http://127.0.0.1:9/hook?set",
        "secret": "set",
        "allow_insecure_http": True,
    }
    # A change without the secret keeps it; the stored value is the one written.
    r = await c.patch(
        f"{N}/channels/{channel}",
        json={"config": {"url": "http://127.0.0.1:9/other"}},
        headers=auth(k.admin),
    )
    assert r.status_code == 200, r.text
    conn = await connect(url)
    try:
        stored = await conn.fetchval(
            "SELECT config->>'secret' FROM notify_channels WHERE id=$1", channel
        )
    finally:
        await conn.close()
    assert stored == SECRET
    bad = await c.patch(
        f"{N}/channels/{channel}", json={"config": {"url": "ftp://x"}}, headers=auth(k.admin)
    )
    assert bad.status_code == 422
    assert "http" in bad.json()["error"]["message"]
    assert "config" in bad.json()["error"]["message"]


# Each type with its secret fields set to a marker that must never come back.
MARKER = "never-returned-0123456789"
SECRET_CONFIGS = {
    "webhook": {"url": "https://hooks.example/a?token=" + MARKER, "secret": MARKER},
    "wecom": {"key": MARKER},
    "dingtalk": {"access_token": MARKER, "secret": "SEC" + MARKER, "at_mobiles": ["13800000000"]},
    "feishu": {"hook_id": MARKER, "secret": MARKER, "keyword": "factory5g"},
    "email": {
        "host": "smtp.example",
        "sender": "f5g@example.com",
        "recipients": ["ops@example.com"],
        "username": "f5g",
        "password": MARKER,
    },
}


async def test_every_channel_types_secrets_are_never_returned(
    env: tuple[httpx.AsyncClient, Keys, str],
) -> None:
    """The fields each channel module declares secret (and URL queries) show as "set" in
    every answer: create, read, list and update."""
    c, k, _ = env
    for channel_type, config in SECRET_CONFIGS.items():
        r = await c.post(
            f"{N}/channels",
            json={"project_id": "p1", "name": f"s-{channel_type}", "type": channel_type,
                  "config": config},
            headers=auth(k.admin),
        )  # fmt: skip
        assert r.status_code == 201, (channel_type, r.text)
        answers = [
            r,
            await c.get(f"{N}/channels/{r.json()['id']}", headers=auth(k.admin)),
            await c.get(f"{N}/channels?project=p1", headers=auth(k.admin)),
            await c.patch(
                f"{N}/channels/{r.json()['id']}", json={"enabled": False}, headers=auth(k.admin)
            ),
        ]
        for answer in answers:
            assert answer.status_code == 200 or answer.status_code == 201
            assert MARKER not in answer.text, (channel_type, answer.text)
        secrets = CHANNELS[channel_type].secrets
        shown = r.json()["config"]
        assert all(shown[name] == "set" for name in secrets if name in config)
        # Settings that are not secret are shown as written.
        plain = {n: v for n, v in config.items() if n not in secrets and MARKER not in str(v)}
        assert {n: shown[n] for n in plain} == plain


@pytest.mark.parametrize(
    ("channel_type", "config", "key"),
    [
        ("webhook", {"url": "https://h.example/x", "secret": "short"}, "config.secret"),
        ("webhook", {"url": "https://h.example/x", "secret": SECRET, "colour": 1}, "config.colour"),
        ("webhook", {"secret": SECRET}, "config.url"),
        ("webhook", {"url": "http://h.example/x", "secret": SECRET}, "allow_insecure_http"),
        ("email", {"host": "smtp.example", "sender": "a@b.example"}, "config.recipients"),
        ("dingtalk", {"access_token": "t", "at_mobiles": ["call me"]}, "config.at_mobiles"),
        ("feishu", {"hook_id": "h", "msg_type": "card"}, "config.msg_type"),
        ("wecom", {"key": "k", "timeout_s": 0}, "config.timeout_s"),
    ],
)
async def test_a_bad_channel_config_is_a_422_naming_the_key(
    env: tuple[httpx.AsyncClient, Keys, str], channel_type: str, config: dict[str, object], key: str
) -> None:
    """Validated with the channel's own model at create and at update: nothing is stored."""
    c, k, _ = env
    name = f"bad-{uuid.uuid4().hex[:8]}"
    r = await c.post(
        f"{N}/channels",
        json={"project_id": "p1", "name": name, "type": channel_type, "config": config},
        headers=auth(k.admin),
    )
    assert r.status_code == 422, r.text
    assert key in r.json()["error"]["message"]
    assert SECRET not in r.text
    listed = await c.get(f"{N}/channels?project=p1", headers=auth(k.admin))
    assert name not in listed.text
    # The same config reached by an update of a good channel is refused the same way.
    good = await c.post(
        f"{N}/channels",
        json={"project_id": "p1", "name": name, "type": channel_type,
              "config": SECRET_CONFIGS[channel_type]},
        headers=auth(k.admin),
    )  # fmt: skip
    assert good.status_code == 201, good.text
    changes = {n: None for n in SECRET_CONFIGS[channel_type] if n not in config} | config
    r = await c.patch(
        f"{N}/channels/{good.json()['id']}", json={"config": changes}, headers=auth(k.admin)
    )
    assert r.status_code == 422, r.text
    assert key in r.json()["error"]["message"]


async def test_an_mqtt_channel_is_refused_with_the_reason(
    env: tuple[httpx.AsyncClient, Keys, str],
) -> None:
    c, k, _ = env
    r = await c.post(
        f"{N}/channels",
        json={"project_id": "p1", "name": "mq", "type": "mqtt", "config": {"topic": "a/b"}},
        headers=auth(k.admin),
    )
    assert r.status_code == 422, r.text
    assert "published on MQTT by the rules service" in r.json()["error"]["message"]


async def test_scopes_and_projects(env: tuple[httpx.AsyncClient, Keys, str]) -> None:
    c, k, _ = env
    config = {"url": "https://h.example/x", "secret": SECRET}
    body = {"project_id": "p1", "name": "x", "type": "webhook", "config": config}
    assert (await c.post(f"{N}/channels", json=body, headers=auth(k.operate_p1))).status_code == 403
    assert (await c.get(f"{N}/channels", headers=auth(k.read_p1))).status_code == 403
    assert (await c.post(f"{N}/channels", json=body, headers=auth(k.admin_p2))).status_code == 403
    shared = {**body, "project_id": None, "name": "shared"}
    assert (await c.post(f"{N}/channels", json=shared, headers=auth(k.admin_p2))).status_code == 403
    p1_channel = await _channel(c, k.admin, "p1", "http://127.0.0.1:9/a")
    assert (await c.get(f"{N}/channels/{p1_channel}", headers=auth(k.admin_p2))).status_code == 404
    # A p2 route cannot use a p1 channel; a policy step cannot name another project's route.
    r = await c.post(
        f"{N}/routes",
        json={"project_id": "p2", "name": "r", "channel_id": p1_channel},
        headers=auth(k.admin_p2),
    )
    assert r.status_code == 422
    route = await c.post(
        f"{N}/routes",
        json={"project_id": "p1", "name": "ops", "channel_id": p1_channel, "language": "zh"},
        headers=auth(k.admin),
    )
    assert route.status_code == 201, route.text
    r = await c.post(
        f"{N}/policies",
        json={
            "project_id": "p2",
            "name": "p",
            "steps": [{"after_s": 60, "route_id": route.json()["id"]}],
        },
        headers=auth(k.admin_p2),
    )
    assert r.status_code == 422
    again = await c.post(
        f"{N}/routes",
        json={"project_id": "p1", "name": "ops", "channel_id": p1_channel},
        headers=auth(k.admin),
    )
    assert again.status_code == 409
    half_quiet = await c.patch(
        f"{N}/routes/{route.json()['id']}", json={"quiet_start": "22:00"}, headers=auth(k.admin)
    )
    assert half_quiet.status_code == 422


async def test_send_test_and_alarm_history(env: tuple[httpx.AsyncClient, Keys, str]) -> None:
    """A test notice through a route reaches the receiver via the notifier; an alarm's
    notifications are listed on the alarm, for keys that see its project only."""
    c, k, url = env
    rx = Receiver(secret=SECRET)
    await rx.start()
    try:
        channel = await _channel(c, k.admin, "p1", rx.url)
        route = (
            await c.post(
                f"{N}/routes",
                json={"project_id": "p1", "name": "test-route", "channel_id": channel},
                headers=auth(k.admin),
            )
        ).json()
        policy = await c.post(
            f"{N}/policies",
            json={
                "project_id": "p1",
                "name": "night",
                "steps": [{"after_s": 600, "route_id": route["id"]}],
                "reminder_interval_s": 900,
                "reminder_max": 3,
            },
            headers=auth(k.admin),
        )
        assert policy.status_code == 201, policy.text
        assert policy.json()["steps"] == [{"after_s": 600, "route_id": route["id"]}]
        async with notifier(fast_settings(url)):
            sent = await c.post(f"{N}/routes/{route['id']}/test", headers=auth(k.operate_p1))
            assert sent.status_code == 202, sent.text
            delivery = sent.json()["delivery_id"]

            async def delivered() -> bool:
                r = await c.get(f"{N}/deliveries/{delivery}", headers=auth(k.read_p1))
                return bool(r.json()["items"][0]["state"] == "sent")

            await wait_until(delivered, 30)
            assert rx.bodies[0]["kind"] == "test"
            conn = await connect(url)
            try:
                alarm = await open_alarm(conn, "p1", "agv-9")
            finally:
                await conn.close()

            async def listed() -> bool:
                r = await c.get(f"/api/v1/alarms/{alarm}/deliveries", headers=auth(k.read_p1))
                mine = [d for d in r.json()["items"] if d["route_id"] == route["id"]]
                return bool(mine) and mine[0]["state"] == "sent"

            await wait_until(listed, 30)
        history = (
            await c.get(f"/api/v1/alarms/{alarm}/deliveries", headers=auth(k.read_p1))
        ).json()
        # Both routes of p1: this one answered, the other's receiver (port 9) refuses.
        by_route = {d["route_id"]: d for d in history["items"]}
        assert len(history["items"]) == len(by_route) == 2
        assert {d["kind"] for d in history["items"]} == {"opened"}
        assert by_route[route["id"]]["last_status"] == "200"
        other = next(d for r, d in by_route.items() if r != route["id"])
        assert other["state"] in ("queued", "sending", "failed")
        hidden = await c.get(f"/api/v1/alarms/{alarm}/deliveries", headers=auth(k.read_p2))
        assert hidden.status_code == 404
        assert (
            await c.post(f"{N}/routes/{route['id']}/test", headers=auth(k.read_p1))
        ).status_code == 403
    finally:
        await rx.stop()
