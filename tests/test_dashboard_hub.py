"""The dashboard's alarm hub against a broker of its own that goes away and comes back:
watchers are told the feed is offline, then live again, and alarms flow after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from pydantic import TypeAdapter

from f5gdev.devstack.servers import Mosquitto, free_port
from services.api.dashboard.hub import AlarmHub, Watcher
from services.security.broker_auth import BrokerAuth, Credentials
from tests.conftest import make_settings


async def next_event(w: Watcher, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            event, data = await w.queue.get()
            if event == kind:
                return data


async def publish_alarm(
    port: int, project: str, device: str, creds: Credentials | None = None
) -> None:
    body = orjson.dumps({"alarm_id": 7, "state": "open", "device": device})
    user = {"username": creds.username, "password": creds.password} if creds else {}
    v5 = aiomqtt.ProtocolVersion.V5
    async with aiomqtt.Client("127.0.0.1", port, protocol=v5, **user) as c:
        await c.publish(f"f5g/v1/{project}/alarms/agv/{device}/safety_stop", body, qos=1)


async def alarm_gets_through(
    w: Watcher, port: int, device: str, creds: Credentials | None = None
) -> None:
    """Publish an alarm for p1 until the watcher receives it (the feed may be reconnecting)."""
    async with asyncio.timeout(45):
        while True:
            await publish_alarm(port, "p1", device, creds)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    while (await next_event(w, "alarm"))["device"] != device:
                        pass
                    return


async def test_broker_restart_is_reported_and_recovered(
    new_broker: Callable[[], Mosquitto], database_url: str
) -> None:
    broker = new_broker()
    hub = AlarmHub(make_settings(database_url, broker.port))
    watcher = hub.watch(frozenset({"p1"}))
    try:
        assert await next_event(watcher, "status") == {"live": True}
        await publish_alarm(broker.port, "p1", "before")
        assert (await next_event(watcher, "alarm"))["device"] == "before"

        broker.stop()
        assert await next_event(watcher, "status") == {"live": False}
        assert not hub.connected.is_set()
        broker.start()
        assert await next_event(watcher, "status") == {"live": True}
        await publish_alarm(broker.port, "p2", "hidden")
        await publish_alarm(broker.port, "p1", "after")
        assert (await next_event(watcher, "alarm"))["device"] == "after"
    finally:
        hub.leave(watcher)
        await hub.close()


async def test_a_slow_watcher_loses_its_oldest_events_only() -> None:
    fast, slow = Watcher(None), Watcher(None)
    for i in range(1500):
        slow.offer("alarm", {"n": i})
        if i < 10:
            fast.offer("alarm", {"n": i})
    assert slow.queue.qsize() == 1000
    assert slow.queue.get_nowait() == ("alarm", {"n": 500})
    assert fast.queue.qsize() == 10


async def test_a_refused_announcement_does_not_leave_the_feed_dead(
    stack_tmp: Path, database_url: str
) -> None:
    """A publish outside the api account's grant (a device's tree): Mosquitto refuses it and
    closes the connection; the feed recovers."""
    base = stack_tmp / f"mosquitto-acl-{uuid.uuid4().hex[:8]}"
    auth = BrokerAuth(base / "auth")
    api, rules = auth.service_credentials("api"), auth.service_credentials("rules")
    broker = Mosquitto(base, port=free_port(), auth_dir=auth.directory)
    broker.start()
    mqtt = {"username": api.username, "password": api.password}
    hub = AlarmHub(make_settings(database_url, broker.port, mqtt=mqtt))
    hub.reconnect_max_s = 2.0
    watcher = hub.watch(frozenset({"p1"}))
    try:
        assert await next_event(watcher, "status") == {"live": True}
        for i in range(3):
            hub.announce(f"f5g/v1/p1/agv/a-{i}/status", b'{"state": "acked"}')
        await asyncio.sleep(0.5)  # let the refusals land (no correctness depends on it)
        await alarm_gets_through(watcher, broker.port, "after", rules)
        assert hub.connected.is_set()
    finally:
        hub.leave(watcher)
        await hub.close()
        broker.stop()


async def test_a_device_filter_the_client_refuses_breaks_nothing(
    new_broker: Callable[[], Mosquitto], database_url: str
) -> None:
    """Watchers of devices named like topic wildcards (the API refuses them anyway) cannot
    stop the hub: other feeds keep receiving, also across a reconnect."""
    broker = new_broker()
    hub = AlarmHub(make_settings(database_url, broker.port))
    hub.reconnect_max_s = 2.0
    watcher = hub.watch(frozenset({"p1"}))
    try:
        assert await next_event(watcher, "status") == {"live": True}
        bad = [hub.watch(frozenset({"p9"}), ("p9", name)) for name in ("#", "+", "a/#/b")]
        for b in bad:
            hub.leave(b)
        held = hub.watch(frozenset({"p9"}), ("p9", "#"))  # kept across the restart below
        await alarm_gets_through(watcher, broker.port, "first")
        broker.stop()
        assert await next_event(watcher, "status") == {"live": False}
        broker.start()
        assert await next_event(watcher, "status") == {"live": True}
        await alarm_gets_through(watcher, broker.port, "second")
        hub.leave(held)
        await alarm_gets_through(watcher, broker.port, "third")
    finally:
        hub.leave(watcher)
        await hub.close()


def test_only_what_ingest_stores_is_forwarded_shaped_like_last_values(database_url: str) -> None:
    hub = AlarmHub(make_settings(database_url, 1))
    ms = int(time.time() * 1000)
    ts = TypeAdapter(datetime).dump_python(datetime.fromtimestamp(ms / 1000, UTC), mode="json")
    root = "f5g/v1/p1/vision/cam-1"
    good = {"ts": ms, "seq": 1, "station": "s", "part_id": "P", "result": "pass",
            "defects": [], "confidence": 0.9, "inference_ms": 12}  # fmt: skip
    assert hub.accepted(f"{root}/inspection", orjson.dumps(good)) == [
        {"ts": ts, "seq": 1, "station": "s", "part_id": "P", "passed": True, "defect_count": 0,
         "defects": None, "confidence": 0.9, "inference_ms": 12.0, "model": None}
    ]  # fmt: skip
    telemetry = {"ts": ms, "seq": 2, "metrics": {"temp": 21, "rpm": 1500.5}}
    assert hub.accepted(f"{root}/telemetry", orjson.dumps(telemetry)) == [
        {"temp": {"value": 21.0, "ts": ts}},
        {"rpm": {"value": 1500.5, "ts": ts}},
    ]
    refused = [
        ("inspection", orjson.dumps(good | {"confidence": 1.7})),  # schema
        ("inspection", orjson.dumps(good | {"ts": ms + 86_400_000})),  # ts_future
        ("inspection", orjson.dumps(good | {"ts": 0})),  # ts_past
        ("inspection", orjson.dumps(good | {"part_id": "P\u0000"})),  # NUL
        ("inspection", orjson.dumps([good, good | {"seq": -1}])),  # one bad record: all out
        ("inspection", b"{broken"),
        ("status", b'{"online": true}'),  # no records
    ]
    assert [hub.accepted(f"{root}/{stream}", p) for stream, p in refused] == [None] * 7
