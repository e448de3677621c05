"""The simulator obeys commands: a VDA 5050 AGV pauses, a Sparkplug machine takes a
setpoint and reports it, a native device answers; each command ends `completed`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiomqtt

from f5gdev.devstack.servers import Mosquitto
from services.simulator.factory import _answer_native
from services.simulator.protocols import publish_sparkplug_line, publish_vda5050_fleet
from tests.test_commands import add_devices, command_settings, commander, fetch, platform, wait_for


async def known(url: str, device: str) -> bool:
    return bool(await fetch(url, "SELECT 1 FROM command_targets WHERE device_id = $1", device))


async def test_simulated_devices_obey_commands(
    new_database: Callable[..., str], new_broker: Callable[[], Mosquitto]
) -> None:
    # A broker of its own: the simulated fleet's retained VDA 5050 connection messages and
    # the Sparkplug node's will must not reach later tests' ingest subscriptions.
    broker = new_broker()
    url = new_database()
    agv, machine = "SimRobotics.AGV-001", "line1.machine1"
    await add_devices(
        url,
        [
            ("vda5050", "agv", agv, True),
            ("simgrp", "spb-device", machine, True),
            ("p1", "press", "sim-press", True),
        ],
    )
    settings = command_settings(url, broker.port, client_id="cmd-sim")
    stop = asyncio.Event()
    states: list[bytes] = []
    async with (
        aiomqtt.Client("127.0.0.1", broker.port) as vda_client,
        aiomqtt.Client("127.0.0.1", broker.port) as spb_client,
        aiomqtt.Client("127.0.0.1", broker.port) as watch,
    ):
        await watch.subscribe("uagv/v2/SimRobotics/AGV-001/state")

        async def collect() -> None:
            async for msg in watch.messages:
                states.append(bytes(msg.payload))  # type: ignore[arg-type]

        tasks = [
            asyncio.create_task(collect()),
            asyncio.create_task(publish_vda5050_fleet(vda_client, agvs=1, rate_hz=5, stop=stop)),
            asyncio.create_task(_answer_native(settings, 60)),
        ]
        try:
            async with platform(settings) as pf, commander(settings):
                pf.operator = pf.admin
                # Births are sent once, at the node's start: it starts after the commander.
                tasks.append(
                    asyncio.create_task(
                        publish_sparkplug_line(
                            spb_client, "simgrp", "line1", 1, 2, rate_hz=5, stop=stop
                        )
                    )
                )
                await pf.allow("vda5050", "agv", "startPause")
                await pf.allow("simgrp", "spb-device", "write")
                await pf.allow("p1", "press", "stop")
                await wait_for(lambda: known(url, agv), what="AGV address")
                await wait_for(lambda: known(url, machine), what="machine birth")

                r = await pf.send("vda5050", agv, name="startPause")
                assert r.status_code == 202, r.text
                await wait_for(lambda: pf.state_is("vda5050", r.json()["id"], "completed"))
                n = len(states)
                await wait_for(lambda: len(states) > n + 2, what="states after the pause")
                assert b'"paused": true' in states[-1]
                assert b'"driving": false' in states[-1]

                r = await pf.send(
                    "simgrp", machine, name="write", params={"metrics": {"Setpoint": 77.5}}
                )
                assert r.status_code == 202, r.text
                await wait_for(lambda: pf.state_is("simgrp", r.json()["id"], "completed"))

                await asyncio.sleep(0.5)  # the responder's subscription (QoS 1 would queue)
                r = await pf.send("p1", "sim-press", name="stop")
                assert r.status_code == 202, r.text
                await wait_for(lambda: pf.state_is("p1", r.json()["id"], "completed"))
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
