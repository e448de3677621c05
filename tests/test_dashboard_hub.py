"""The dashboard's alarm hub against a broker of its own that goes away and comes back:
watchers are told the feed is offline, then live again, and alarms flow after the restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiomqtt
import orjson

from services.api.dashboard.hub import AlarmHub, Watcher
from services.devstack.servers import Mosquitto
from tests.conftest import make_settings


async def next_event(w: Watcher, kind: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            event, data = await w.queue.get()
            if event == kind:
                return data


async def publish_alarm(port: int, project: str, device: str) -> None:
    body = orjson.dumps({"alarm_id": 7, "state": "open", "device": device})
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.publish(f"f5g/v1/{project}/alarms/agv/{device}/safety_stop", body, qos=1)


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
