"""Protocol adapters feed the rules service, which only listens.

A VDA 5050 AGV reporting an e-stop must open the same `safety_stop` alarm as a native AGV,
stored and published. Sparkplug data from a node the rules have never seen born makes the
adapter want a rebirth; only ingest (the primary host) may ask for one, so nothing may be
published on Sparkplug command or STATE topics by the rules service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions
from prometheus_client import generate_latest

from f5gdev.devstack.servers import Mosquitto
from services.protocols import sparkplug_b_pb2 as pb
from services.protocols.adapters.sparkplug import SparkplugAdapter
from tests.test_rules_service import events_of, keys, publish, start_service, wait_for


def vda_state(header: int, estop: str) -> bytes:
    return orjson.dumps(
        {
            "headerId": header,
            "timestamp": "2025-03-11T11:40:05.00Z",
            "version": "2.0.0",
            "manufacturer": "ACME Robotics",
            "serialNumber": "AGV-7",
            "orderId": "",
            "orderUpdateId": 0,
            "lastNodeId": "",
            "lastNodeSequenceId": 0,
            "nodeStates": [],
            "edgeStates": [],
            "driving": False,
            "operatingMode": "AUTOMATIC",
            "agvPosition": {
                "x": 1.0,
                "y": 2.0,
                "theta": 0.0,
                "mapId": "hall-1",
                "positionInitialized": True,
                "localizationScore": 0.9,
            },
            "velocity": {"vx": 0.0, "vy": 0.0, "omega": 0.0},
            "actionStates": [],
            "batteryState": {"batteryCharge": 80.0, "charging": False},
            "errors": [],
            "safetyState": {"eStop": estop, "fieldViolation": False},
        }
    )


def sparkplug_ndata() -> bytes:
    payload = pb.Payload()
    payload.timestamp = int(time.time() * 1000)
    payload.seq = 3
    metric = payload.metrics.add()
    metric.name = b"temperature"
    metric.datatype = 10  # Double
    metric.double_value = 21.5
    return payload.SerializeToString()


def rebirth_requests(adapters: list[Any]) -> float:
    """Rebirths the rules service's passive Sparkplug adapter wanted (never sent)."""
    (adapter,) = [a for a in adapters if isinstance(a, SparkplugAdapter)]
    (family,) = adapter.metrics.rebirths.collect()
    return sum(
        s.value
        for s in family.samples
        if s.name.endswith("_total") and s.labels == {"reason": "no_birth"}
    )


class Everything:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []


@pytest.fixture
async def everything(broker: Mosquitto) -> AsyncIterator[Everything]:
    seen = Everything()
    client = aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier="t-rules-adapters-all",
        protocol=aiomqtt.ProtocolVersion.V5,
    )
    async with client:
        # Only what is published from now on: retained messages left on the shared broker by
        # other tests (e.g. a Sparkplug host STATE) are not this test's traffic.
        await client.subscribe("#", options=SubscribeOptions(qos=1, retainHandling=2))

        async def pump() -> None:
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                seen.messages.append((msg.topic.value, msg.payload))

        task = asyncio.create_task(pump())
        yield seen
        task.cancel()


async def test_vda5050_estop_raises_the_agv_safety_stop_alarm(
    database_url: str, broker: Mosquitto, everything: Everything, tmp_path: Path
) -> None:
    svc = await start_service(database_url, broker.port, tmp_path, "t-rules-vda")
    try:
        topic = "uagv/v2/ACME Robotics/AGV-7/state"
        await publish(broker.port, [(topic, vda_state(1, "AUTOACK"))])

        async def opened() -> list[dict[str, Any]]:
            rows = await events_of(database_url, "vda5050", "ACME_Robotics.AGV-7")
            return [r for r in rows if r["rule"] == "safety_stop"]

        rows = await wait_for(opened)
        assert keys(rows) == ["opened:critical"]

        async def alarm_published() -> list[dict[str, Any]]:
            return [
                orjson.loads(p)
                for t, p in everything.messages
                if t.startswith("f5g/v1/vda5050/alarms/agv/ACME_Robotics.AGV-7/safety_stop")
            ]

        published = await wait_for(alarm_published)
        assert [m["transition"] for m in published] == ["opened"]

        await publish(broker.port, [(topic, vda_state(2, "NONE"))])

        async def cleared() -> bool:
            return "cleared" in keys(await opened())

        assert await wait_for(cleared)
    finally:
        await svc.close()


async def test_sparkplug_input_sends_no_commands(
    database_url: str, broker: Mosquitto, everything: Everything, tmp_path: Path
) -> None:
    svc = await start_service(database_url, broker.port, tmp_path, "t-rules-spb")
    try:
        assert any(f.startswith("spBv1.0/") for f in svc.service.ingress.topic_filters())
        topic = "spBv1.0/plant/NDATA/edge-1"
        adapters = svc.service.ingress.adapters
        before = rebirth_requests(adapters)
        await publish(broker.port, [(topic, sparkplug_ndata())])

        async def received() -> bool:
            return any(t == topic for t, _ in everything.messages)

        assert await wait_for(received)
        await asyncio.sleep(1.0)  # a rebirth request or STATE would be out by now
        assert rebirth_requests(adapters) > before  # the adapter did want one
        # ... and the rules job does not export it: ingest counts the rebirths it sends.
        exported = generate_latest(svc.service.metrics.registry).decode()
        assert "sparkplug" not in exported
        assert "vda5050" not in exported
        sent = [
            t
            for t, _ in everything.messages
            if t.startswith("spBv1.0/") and ("/NCMD/" in t or "/STATE/" in t)
        ]
        assert sent == []
    finally:
        await svc.close()
