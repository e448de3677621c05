"""The simulated factory publishes what the contract accepts, including its faults."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiomqtt
import orjson

from f5gdev.devstack.servers import Mosquitto
from services.core.contracts import decode, parse_topic
from services.core.settings import Settings
from services.simulator.factory import build_fleet, publish_fleet
from tests.conftest import make_settings


def test_every_simulated_record_honours_the_contract() -> None:
    settings = Settings(simulator={"seed": 7, "fault_probability": 0.05})  # type: ignore[arg-type]
    fleet = build_fleet(settings)
    states: Counter[str] = Counter()
    for _ in range(300):
        for dev in fleet:
            rec = dev.next_record(settings.simulator.fault_probability)
            decoded = decode(dev.stream, orjson.dumps(rec))
            assert parse_topic(dev.topic).device == dev.device_id
            if dev.stream == "agv":
                states[decoded.records[0].state] += 1
    # Faults are injected, so rules have something to catch.
    assert states["moving"] > 0
    assert states["estop"] + states["error"] > 0


def test_simulator_publishes_to_the_broker(broker: Mosquitto, database_url: str) -> None:
    # Native fleet only: the VDA 5050 AGVs would leave retained connection messages on the
    # shared broker (tests/test_protocols_e2e.py covers them on a private one).
    native_only = {"vda5050_agvs": 0, "sparkplug_lines": 0}
    settings = make_settings(
        database_url,
        broker.port,
        simulator={"projects": 1, "rate_hz": 20.0, "seed": 1, **native_only},
    )
    expected = len(build_fleet(settings))

    async def scenario() -> tuple[int, set[str]]:
        seen: set[str] = set()
        async with aiomqtt.Client("127.0.0.1", broker.port) as sub:
            await sub.subscribe("f5g/v1/#", qos=1)
            task = asyncio.create_task(publish_fleet(settings, duration=1.0))
            async with asyncio.timeout(10):
                async for msg in sub.messages:
                    seen.add(str(msg.topic))
                    if len(seen) == expected:
                        break
            return await task, seen

    sent, seen = asyncio.run(scenario())
    assert sent >= expected
    assert len(seen) == expected
