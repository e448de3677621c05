"""Simulated devices that speak the industry protocols instead of the native contract.

`publish_vda5050_fleet` drives AGVs over VDA 5050 v2 (retained `connection` plus
`state`); `publish_sparkplug_line` drives a production line as one Sparkplug B edge node
with one device per machine (NBIRTH/DBIRTH, aliased DDATA, answers rebirth requests).
Both take an open `aiomqtt.Client`, publish until `stop` is set or `duration` has passed,
and return how many messages they sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from datetime import UTC, datetime
from typing import Any

import aiomqtt

from services.core.contracts import ContractError
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
    """AGVs driving circles in one hall, now and then charging or hitting a field stop.

    They obey the platform's instant actions as VDA 5050 2.0 says: `startPause` stops an
    AGV where it is, `stopPause` lets it drive on, `cancelOrder` drops its order,
    `stateRequest` and `factsheetRequest` are answered; each action is reported in the
    next states' `actionStates` (RUNNING, then FINISHED)."""
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
    paused: set[str] = set()
    cancelled: set[str] = set()
    actions: dict[str, list[dict[str, Any]]] = {s: [] for s in serials}
    angles = dict.fromkeys(serials, 0.0)

    async def obey() -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # the publisher's loop reports it
            await _obey()

    async def _obey() -> None:
        async for msg in client.messages:
            parts = str(msg.topic).split("/")
            if len(parts) != 5 or parts[4] != "instantActions" or parts[3] not in actions:
                continue
            serial = parts[3]
            try:
                body = json.loads(msg.payload)  # type: ignore[arg-type]
                todo = [(a["actionId"], a["actionType"]) for a in body["actions"]]
            except (ValueError, KeyError, TypeError):
                continue
            for action_id, action_type in todo:
                if action_type == "startPause":
                    paused.add(serial)
                elif action_type == "stopPause":
                    paused.discard(serial)
                elif action_type == "cancelOrder":
                    cancelled.add(serial)
                known = {"startPause", "stopPause", "cancelOrder", "stateRequest",
                         "factsheetRequest"}  # fmt: skip
                actions[serial].append(
                    {
                        "actionId": action_id,
                        "actionType": action_type,
                        "actionStatus": "RUNNING" if action_type in known else "FAILED",
                        "resultDescription": None if action_type in known else "unknown action",
                    }
                )
                del actions[serial][:-10]  # the latest actions only

    await client.subscribe(f"{interface}/v2/{manufacturer}/+/instantActions", qos=1)
    listener = asyncio.create_task(obey())
    step = 0
    while not _done(stop, deadline):
        for i, serial in enumerate(serials):
            if serial not in paused:
                angles[serial] += 0.2 / max(rate_hz, 0.01)
            angle = angles[serial] + i
            charging = battery[serial] < 25
            halted = serial in paused
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
                "orderId": "" if serial in cancelled else f"order-{step // 20}",
                "orderUpdateId": 0,
                "lastNodeId": f"n{step % 8}",
                "lastNodeSequenceId": step % 8,
                "nodeStates": [],
                "edgeStates": [],
                "driving": not charging and not halted,
                "paused": halted,
                "operatingMode": "AUTOMATIC",
                "agvPosition": {
                    "x": 20 + 10 * math.cos(angle),
                    "y": 15 + 10 * math.sin(angle),
                    "theta": math.remainder(angle + math.pi / 2, math.tau),
                    "mapId": "hall-1",
                    "positionInitialized": True,
                    "localizationScore": round(rng.uniform(0.85, 1.0), 3),
                },
                "velocity": {
                    "vx": 0.0 if charging or halted else 1.2,
                    "vy": 0.0,
                    "omega": 0.0 if halted else 0.12,
                },
                "actionStates": [
                    {k: v for k, v in a.items() if v is not None} for a in actions[serial]
                ],
                "batteryState": {"batteryCharge": round(battery[serial], 2), "charging": charging},
                "errors": [],
                "safetyState": {"eStop": "NONE", "fieldViolation": field_stop},
            }
            topic = f"{interface}/v2/{manufacturer}/{serial}/state"
            await client.publish(topic, json.dumps(state).encode(), qos=0)
            sent += 1
            for a in actions[serial]:  # reported RUNNING once, FINISHED from then on
                if a["actionStatus"] == "RUNNING":
                    a["actionStatus"] = "FINISHED"
        headers["state"] += 1
        step += 1
        await asyncio.sleep(1.0 / rate_hz)
    listener.cancel()
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
    request it republishes its births, as a real edge node must. Each machine has a
    writable `Setpoint` (Double): a DCMD that writes it (by alias or name) is applied and
    reported in a DDATA at once, and in every DDATA after.

    The client should carry the NDEATH will (see `sparkplug_will`) so that a crash of the
    simulator marks the line offline.
    """
    deadline = time.monotonic() + (duration if duration is not None else math.inf)
    names = [
        f"Spindle {k}/Load" if k % 2 else f"Axis {k}/Temp C" for k in range(metrics_per_machine)
    ]
    seq = 0
    sent = 0
    setpoint_alias = len(names) + 1
    setpoints = [50.0] * machines

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
            db.metrics.add(
                name=b"Setpoint",
                alias=setpoint_alias,
                datatype=spb.DataType.Double,
                double_value=setpoints[m],
            )
            topic = f"spBv1.0/{group}/DBIRTH/{node}/machine{m + 1}"
            await client.publish(topic, db.SerializeToString(), qos=0)
        sent += 1 + machines

    rebirth = asyncio.Event()
    dcmd_prefix = f"spBv1.0/{group}/DCMD/{node}/machine"

    async def write(topic: str, raw: bytes) -> None:
        nonlocal sent
        try:
            m = int(topic[len(dcmd_prefix) :]) - 1
            cmd = spb.parse_payload(raw)
        except (ValueError, ContractError):  # not one of ours, or not a Sparkplug payload
            return
        if not 0 <= m < machines:
            return
        for metric in cmd.metrics:
            if (metric.alias == setpoint_alias or metric.name == b"Setpoint") and metric.HasField(
                "double_value"
            ):
                setpoints[m] = metric.double_value
        p = spb.Payload(timestamp=int(time.time() * 1000), seq=next_seq())
        p.metrics.add(alias=setpoint_alias, double_value=setpoints[m])
        await client.publish(f"spBv1.0/{group}/DDATA/{node}/machine{m + 1}",
                             p.SerializeToString(), qos=0)  # fmt: skip
        sent += 1

    async def listen() -> None:
        async for msg in client.messages:
            topic = str(msg.topic)
            if topic == f"spBv1.0/{group}/NCMD/{node}":
                rebirth.set()
            elif topic.startswith(dcmd_prefix):
                await write(topic, bytes(msg.payload))  # type: ignore[arg-type]

    await client.subscribe(f"spBv1.0/{group}/NCMD/{node}", qos=0)
    await client.subscribe(f"spBv1.0/{group}/DCMD/{node}/+", qos=0)
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
                p.metrics.add(alias=setpoint_alias, double_value=setpoints[m])
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
