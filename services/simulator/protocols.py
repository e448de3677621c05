"""Simulated devices that speak the industry protocols instead of the native contract.

`publish_vda5050_fleet` drives AGVs over VDA 5050 v2 (retained `connection` plus
`state`); `publish_sparkplug_line` drives a production line as one Sparkplug B edge node
with one device per machine (NBIRTH/DBIRTH, aliased DDATA, answers rebirth requests).
Both take an open `aiomqtt.Client`, publish until `stop` is set or `duration` has passed,
and return how many messages they sent.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from datetime import UTC, datetime

import aiomqtt

from services.protocols import sparkplug as spb


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _done(stop: asyncio.Event | None, deadline: float) -> bool:
    return (stop is not None and stop.is_set()) or time.monotonic() >= deadline


async def publish_vda5050_fleet(
    client: aiomqtt.Client,
    agvs: int = 4,
    rate_hz: float = 1.0,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
    interface: str = "uagv",
    manufacturer: str = "SimRobotics",
    seed: int | None = None,
) -> int:
    """AGVs driving circles in one hall, now and then charging or hitting a field stop."""
    rng = random.Random(seed)
    deadline = time.monotonic() + (duration if duration is not None else math.inf)
    headers = {"state": 0, "connection": 0}
    sent = 0
    serials = [f"AGV-{i + 1:03d}" for i in range(agvs)]
    for serial in serials:
        body = {
            "headerId": headers["connection"],
            "timestamp": _iso_now(),
            "version": "2.0.0",
            "manufacturer": manufacturer,
            "serialNumber": serial,
            "connectionState": "ONLINE",
        }
        topic = f"{interface}/v2/{manufacturer}/{serial}/connection"
        await client.publish(topic, json.dumps(body).encode(), qos=1, retain=True)
        sent += 1
    headers["connection"] += 1
    battery = {s: rng.uniform(40, 100) for s in serials}
    step = 0
    while not _done(stop, deadline):
        for i, serial in enumerate(serials):
            angle = (step / max(rate_hz, 0.01)) * 0.2 + i
            charging = battery[serial] < 25
            battery[serial] = (
                min(100.0, battery[serial] + 2) if charging else battery[serial] - 0.05
            )
            field_stop = rng.random() < 0.01
            state = {
                "headerId": headers["state"],
                "timestamp": _iso_now(),
                "version": "2.0.0",
                "manufacturer": manufacturer,
                "serialNumber": serial,
                "orderId": f"order-{step // 20}",
                "orderUpdateId": 0,
                "lastNodeId": f"n{step % 8}",
                "lastNodeSequenceId": step % 8,
                "nodeStates": [],
                "edgeStates": [],
                "driving": not charging,
                "operatingMode": "AUTOMATIC",
                "agvPosition": {
                    "x": 20 + 10 * math.cos(angle),
                    "y": 15 + 10 * math.sin(angle),
                    "theta": math.remainder(angle + math.pi / 2, math.tau),
                    "mapId": "hall-1",
                    "positionInitialized": True,
                    "localizationScore": round(rng.uniform(0.85, 1.0), 3),
                },
                "velocity": {"vx": 0.0 if charging else 1.2, "vy": 0.0, "omega": 0.12},
                "actionStates": [],
                "batteryState": {"batteryCharge": round(battery[serial], 2), "charging": charging},
                "errors": [],
                "safetyState": {"eStop": "NONE", "fieldViolation": field_stop},
            }
            topic = f"{interface}/v2/{manufacturer}/{serial}/state"
            await client.publish(topic, json.dumps(state).encode(), qos=0)
            sent += 1
        headers["state"] += 1
        step += 1
        await asyncio.sleep(1.0 / rate_hz)
    return sent


async def publish_sparkplug_line(
    client: aiomqtt.Client,
    group: str = "sim-line",
    node: str = "line1",
    machines: int = 3,
    metrics_per_machine: int = 10,
    rate_hz: float = 1.0,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """One edge node with `machines` devices sending aliased DDATA; on an NCMD rebirth
    request it republishes its births, as a real edge node must.

    The client should carry the NDEATH will (see `sparkplug_will`) so that a crash of the
    simulator marks the line offline.
    """
    deadline = time.monotonic() + (duration if duration is not None else math.inf)
    names = [
        f"Spindle {k}/Load" if k % 2 else f"Axis {k}/Temp C" for k in range(metrics_per_machine)
    ]
    seq = 0
    sent = 0

    def next_seq() -> int:
        nonlocal seq
        current = seq
        seq = (seq + 1) % spb.SEQ_MODULO
        return current

    async def births() -> None:
        nonlocal sent, seq
        seq = 0
        now = int(time.time() * 1000)
        nb = spb.Payload(timestamp=now, seq=next_seq())
        nb.metrics.add(name=b"bdSeq", datatype=spb.DataType.Int64, long_value=0)
        nb.metrics.add(
            name=spb.REBIRTH.encode(), datatype=spb.DataType.Boolean, boolean_value=False
        )
        await client.publish(f"spBv1.0/{group}/NBIRTH/{node}", nb.SerializeToString(), qos=0)
        for m in range(machines):
            db = spb.Payload(timestamp=now, seq=next_seq())
            for alias, name in enumerate(names):
                db.metrics.add(
                    name=name.encode(), alias=alias, datatype=spb.DataType.Double, double_value=0.0
                )
            db.metrics.add(
                name=b"Running", alias=len(names), datatype=spb.DataType.Boolean, boolean_value=True
            )
            topic = f"spBv1.0/{group}/DBIRTH/{node}/machine{m + 1}"
            await client.publish(topic, db.SerializeToString(), qos=0)
        sent += 1 + machines

    rebirth = asyncio.Event()

    async def listen() -> None:
        async for msg in client.messages:
            if str(msg.topic) == f"spBv1.0/{group}/NCMD/{node}":
                rebirth.set()

    await client.subscribe(f"spBv1.0/{group}/NCMD/{node}", qos=0)
    listener = asyncio.create_task(listen())
    try:
        await births()
        step = 0
        while not _done(stop, deadline):
            if rebirth.is_set():
                rebirth.clear()
                await births()
            now = int(time.time() * 1000)
            for m in range(machines):
                p = spb.Payload(timestamp=now, seq=next_seq())
                for alias in range(len(names)):
                    p.metrics.add(
                        alias=alias, double_value=50 + 20 * math.sin(step / 10 + alias + m)
                    )
                p.metrics.add(alias=len(names), boolean_value=step % 50 != 49)
                topic = f"spBv1.0/{group}/DDATA/{node}/machine{m + 1}"
                await client.publish(topic, p.SerializeToString(), qos=0)
                sent += 1
            step += 1
            await asyncio.sleep(1.0 / rate_hz)
    finally:
        listener.cancel()
    return sent


def sparkplug_will(group: str = "sim-line", node: str = "line1") -> aiomqtt.Will:
    """NDEATH will for the simulator's edge-node client (bdSeq 0, matching its NBIRTH)."""
    p = spb.Payload(timestamp=int(time.time() * 1000))
    p.metrics.add(name=b"bdSeq", datatype=spb.DataType.Int64, long_value=0)
    return aiomqtt.Will(f"spBv1.0/{group}/NDEATH/{node}", p.SerializeToString(), qos=1)
