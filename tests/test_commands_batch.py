"""The commander records native replies in bulk (one statement per round of a batch): a
burst of replies from many devices, each command's accepted, completed and a late
duplicate in one go, plus a reply naming another device's command, must end exactly as
one-by-one handling ends: every command completed once with its events in order, the
duplicate ignored, the stranger dead-lettered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from f5gdev.devstack.servers import Mosquitto
from tests.test_commands import (
    Device,
    add_devices,
    command_settings,
    commander,
    fetch,
    fetch_dead,
    platform,
    wait_for,
)

N = 30


async def test_a_burst_of_replies_is_recorded_in_order_and_once(
    new_database: Callable[..., str], broker: Mosquitto
) -> None:
    url = new_database()
    names = [f"burst-{i:02d}" for i in range(N)]
    await add_devices(url, [("p1", "press", n, True) for n in names])
    settings = command_settings(url, broker.port, client_id="cmd-batch")
    devices = [Device(broker.port, "p1", "press", n, answer=None) for n in names]
    try:
        await wait_for(lambda: all(d.subscribed.is_set() for d in devices))
        async with platform(settings) as pf, commander(settings):
            await pf.allow("p1", "press", "ping")
            ids = []
            for n in names:
                r = await pf.send("p1", n, name="ping")
                assert r.status_code == 202, r.text
                ids.append(r.json()["id"])
            await wait_for(lambda: all(len(d.ids()) == 1 for d in devices), what="all sent")
            for d, cid in zip(devices, ids, strict=True):
                topic = f"f5g/v1/p1/press/{d.device}/reply"
                d.reply(topic, cid.encode(), {"status": "accepted"})
                d.reply(topic, cid.encode(), {"status": "completed", "message": "done"})
                d.reply(topic, cid.encode(), {"status": "accepted"})  # late: ignored
            # The first device claims the second one's command: not its own.
            devices[0].reply("f5g/v1/p1/press/burst-00/reply", ids[1].encode(),
                             {"status": "failed"})  # fmt: skip

            async def all_completed() -> bool:
                states = [await pf.state_is("p1", cid, "completed") for cid in ids]
                return all(states)

            await wait_for(all_completed, what="every command completed")
            dead = await wait_for(lambda: fetch_dead(url, "burst-00", 1))
            assert [r["reason"] for r in dead] == ["unknown_command"]
            await asyncio.sleep(0.5)  # a wrong transition would show by now; not a figure
            for cid in ids:
                detail = await pf.get("p1", cid)
                assert detail["state"] == "completed", detail
                assert detail["message"] == "done", detail
                states = [e["state"] for e in detail["history"]]
                assert states == ["queued", "sent", "accepted", "completed"], (cid, states)
                assert [e["actor"] for e in detail["history"][2:]] == [
                    f"device:{detail['device_id']}"
                ] * 2
            events = await fetch(url, "SELECT count(*) AS n FROM command_events")
            assert events[0]["n"] == 4 * N
    finally:
        for d in devices:
            d.close()
