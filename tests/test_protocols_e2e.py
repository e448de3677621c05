"""Sparkplug B and VDA 5050 end to end: device -> real broker -> ingest -> database.

The adapter tests check what each message means; these check that the meaning survives
the real pipeline: rows in the stream tables, online state in `devices`, the rebirth
command published back through the ingest connection, the loss counters. Each test has
a private broker (retained VDA 5050 connection messages and Sparkplug wills must not
reach other tests' ingest processes) and a fresh database.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import pysparkplug as psp
import pytest
from prometheus_client import CollectorRegistry

from f5gdev.devstack.servers import Mosquitto
from services.core.settings import Settings, load_settings
from services.protocols import sparkplug as spb
from services.protocols.adapters.sparkplug import DEVICE_KIND, NODE_KIND
from services.simulator.factory import LINE_MACHINES, LINE_METRICS, publish_fleet
from tests.test_ingest_helpers import query, running, scalar, wait_until

DT = psp.DataType


@pytest.fixture(autouse=True)
def _pysparkplug_on_paho2(monkeypatch: pytest.MonkeyPatch) -> None:
    """pysparkplug 0.6.1 calls `message_retry_set`, which paho-mqtt 2 removed (a no-op
    since paho 1.5); restoring the no-op lets the third-party edge node run unchanged."""
    import paho.mqtt.client as paho

    monkeypatch.setattr(paho.Client, "message_retry_set", lambda self, retry: None, raising=False)


def _settings(db_url: str, port: int, **sections: dict[str, Any]) -> Settings:
    tag = uuid.uuid4().hex[:8]
    ingest = {"client_id": f"ingest-{tag}", "share_group": f"g-{tag}", "metrics_port": 0}
    ingest.update(sections.pop("ingest", {}))
    return load_settings(
        database={"url": db_url},
        mqtt={"host": "127.0.0.1", "port": port},
        ingest=ingest,
        **sections,
    )


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    """A counter of the ingest service, read from the registry its /metrics serves."""
    return registry.get_sample_value(name, labels) or 0.0


async def _online(url: str, project: str) -> dict[str, tuple[str, bool]]:
    rows = await query(
        url, "SELECT device_id, kind, online FROM devices WHERE project_id = $1", project
    )
    return {r["device_id"]: (r["kind"], r["online"]) for r in rows}


# ------------------------------------------------------------------ Sparkplug B


def _metric(name: str | None, dtype: psp.DataType, value: object, alias: int) -> psp.Metric:
    return psp.Metric(timestamp=None, name=name, datatype=dtype, value=value, alias=alias)  # type: ignore[arg-type]


def _send(
    edge: psp.Client,
    mtype: psp.MessageType,
    group: str,
    node: str,
    payload: object,
    device: str | None = None,
) -> None:
    topic = psp.Topic(message_type=mtype, group_id=group, edge_node_id=node, device_id=device)
    edge.publish(
        psp.Message(topic=topic, payload=payload, qos=psp.QoS.AT_LEAST_ONCE, retain=False),  # type: ignore[arg-type]
        include_dtypes=mtype in (psp.MessageType.NBIRTH, psp.MessageType.DBIRTH),
    )


async def test_sparkplug_edge_node_end_to_end(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    group, node = f"plant-{uuid.uuid4().hex[:6]}", "cell7"
    settings = _settings(url, broker.port, ingest={"sparkplug_rebirth_min_interval_s": 60.0})

    async def telemetry(device: str) -> dict[str, list[float]]:
        rows = await query(
            url,
            "SELECT metric, value FROM telemetry WHERE project_id = $1 AND device_id = $2"
            " ORDER BY ts, metric",
            group,
            device,
        )
        out: dict[str, list[float]] = {}
        for r in rows:
            out.setdefault(r["metric"], []).append(r["value"])
        return out

    async with (
        running(settings) as ingest,
        aiomqtt.Client("127.0.0.1", broker.port, identifier="ncmd-watcher") as watcher,
    ):
        await watcher.subscribe(f"spBv1.0/{group}/NCMD/{node}", qos=1)
        ncmds: list[bytes] = []

        async def watch() -> None:
            async for msg in watcher.messages:
                ncmds.append(bytes(msg.payload))  # type: ignore[arg-type]

        watching = asyncio.create_task(watch())
        edge = psp.Client(client_id=f"edge-{uuid.uuid4().hex[:8]}")
        edge.connect("127.0.0.1", port=broker.port, blocking=False)
        try:
            t = psp.get_current_timestamp()
            births = (
                _metric("Motor 1/Speed RPM", DT.DOUBLE, 1500.0, 1),
                _metric("Temperature", DT.INT16, -12, 2),
                _metric("Mode", DT.STRING, "auto", 3),
            )
            bd_seq = psp.Metric(timestamp=None, name="bdSeq", datatype=DT.INT64, value=0)
            nbirth = psp.NBirth(timestamp=t, seq=0, metrics=(bd_seq, *births))
            _send(edge, psp.MessageType.NBIRTH, group, node, nbirth)
            force = (
                _metric("Force/kN", DT.FLOAT, 400.0, 10),
                _metric("Clamp", DT.BOOLEAN, True, 11),
            )
            _send(
                edge,
                psp.MessageType.DBIRTH,
                group,
                node,
                psp.DBirth(timestamp=t, seq=1, metrics=force),
                "press",
            )
            # Aliased data: names come from the births, never from the message.
            ddata = (_metric(None, DT.FLOAT, 421.5, 10), _metric(None, DT.BOOLEAN, False, 11))
            _send(
                edge,
                psp.MessageType.DDATA,
                group,
                node,
                psp.DData(timestamp=t + 1, seq=2, metrics=ddata),
                "press",
            )
            ndata = (
                _metric(None, DT.DOUBLE, 1510.25, 1),
                _metric(None, DT.INT16, -3, 2),
                _metric(None, DT.STRING, "manual", 3),
            )
            _send(
                edge,
                psp.MessageType.NDATA,
                group,
                node,
                psp.NData(timestamp=t + 2, seq=3, metrics=ndata),
            )
            # seq 4 and 5 never arrive: one gap, then the node carries on in order.
            for seq in (6, 7, 8):
                value = (_metric(None, DT.FLOAT, 430.0 + seq, 10),)
                _send(
                    edge,
                    psp.MessageType.DDATA,
                    group,
                    node,
                    psp.DData(timestamp=t + seq, seq=seq, metrics=value),
                    "press",
                )

            async def landed() -> bool:
                return (await telemetry(f"{node}.press")).get("Force/kN", [])[-1:] == [438.0]

            await wait_until(landed, 15)
            assert await _online(url, group) == {
                node: (NODE_KIND, True),
                f"{node}.press": (DEVICE_KIND, True),
            }

            async def asked() -> bool:
                return len(ncmds) >= 1

            await wait_until(asked, 10)
            await asyncio.sleep(0.5)  # room for a wrong second request to show up
            assert len(ncmds) == 1
            rebirth = spb.parse_payload(ncmds[0])
            assert rebirth.metrics[0].name == spb.REBIRTH.encode()
            assert rebirth.metrics[0].boolean_value is True

            death = psp.NDeath(timestamp=None, bd_seq_metric=bd_seq)
            _send(edge, psp.MessageType.NDEATH, group, node, death)

            async def dead() -> bool:
                return await _online(url, group) == {
                    node: (NODE_KIND, False),
                    f"{node}.press": (DEVICE_KIND, False),
                }

            await wait_until(dead, 15)
        finally:
            edge.disconnect()
            watching.cancel()

    press = await telemetry(f"{node}.press")
    assert press == {"Force/kN": [400.0, 421.5, 436.0, 437.0, 438.0], "Clamp": [1.0, 0.0]}
    line = await telemetry(node)
    assert line["Motor_1/Speed_RPM"] == [1500.0, 1510.25]
    assert line["Temperature"] == [-12.0, -3.0]
    modes = await query(
        url,
        "SELECT value FROM telemetry_text WHERE device_id = $1 AND metric = 'Mode' ORDER BY ts",
        node,
    )
    assert [r["value"] for r in modes] == ["auto", "manual"]
    registry = ingest.metrics.registry
    rebirths = _sample(
        registry, "factory5g_ingest_sparkplug_rebirth_requests_total", reason="seq_gap"
    )
    assert rebirths == 1
    assert await scalar(url, "SELECT count(*) FROM dead_letters") == 0


# ------------------------------------------------------------------ VDA 5050


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _state(header: int, **over: Any) -> bytes:
    doc: dict[str, Any] = {
        "headerId": header,
        "timestamp": _iso(datetime.now(UTC)),
        "version": "2.0.0",
        "manufacturer": "Acme",
        "serialNumber": "AGV 7",
        "orderId": "order-42",
        "orderUpdateId": 0,
        "lastNodeId": "n1",
        "lastNodeSequenceId": 1,
        "nodeStates": [],
        "edgeStates": [],
        "driving": True,
        "operatingMode": "AUTOMATIC",
        "agvPosition": {
            "x": 12.5,
            "y": -3.25,
            "theta": math.pi / 2,
            "mapId": "hall-2",
            "positionInitialized": True,
            "localizationScore": 0.93,
        },
        "velocity": {"vx": 0.6, "vy": 0.8, "omega": 0.0},
        "actionStates": [],
        "batteryState": {"batteryCharge": 76.5, "charging": False},
        "errors": [],
        "safetyState": {"eStop": "NONE", "fieldViolation": False},
    }
    doc.update(over)
    return json.dumps(doc).encode()


def _connection(header: int, state: str) -> bytes:
    return json.dumps(
        {
            "headerId": header,
            "timestamp": _iso(datetime.now(UTC)),
            "version": "2.0.0",
            "manufacturer": "Acme",
            "serialNumber": "AGV 7",
            "connectionState": state,
        }
    ).encode()


async def test_vda5050_agv_end_to_end(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    project = f"hall-{uuid.uuid4().hex[:6]}"
    settings = _settings(url, broker.port, ingest={"vda5050_projects": {"Acme": project}})
    gaps = "factory5g_ingest_vda5050_header_gaps_total"
    lost = "factory5g_ingest_vda5050_lost_messages_total"
    base = "uagv/v2/Acme/AGV 7"
    # The AGV's client is plain paho (own thread) so that its socket can be dropped like a
    # crash; the broker then publishes the CONNECTIONBROKEN will, as the spec intends.
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    agv = paho.Client(CallbackAPIVersion.VERSION2, client_id="agv-7")
    agv.will_set(f"{base}/connection", _connection(1, "CONNECTIONBROKEN"), qos=1, retain=True)

    def send(sub: str, payload: bytes, retain: bool = False) -> None:
        agv.publish(f"{base}/{sub}", payload, qos=1, retain=retain).wait_for_publish(5)

    async with running(settings) as ingest:
        agv.connect("127.0.0.1", broker.port)
        agv.loop_start()
        try:
            send("connection", _connection(0, "ONLINE"), retain=True)
            send("state", _state(0))
            charging = {"batteryCharge": 18.0, "charging": True}
            send("state", _state(1, driving=False, batteryState=charging))
            # 2 and 3 lost; then no position (optional in VDA 5050): stored as absent
            send("state", _state(4, agvPosition=None))

            async def three_rows() -> bool:
                return int(await scalar(url, "SELECT count(*) FROM agv_status")) >= 3

            await wait_until(three_rows, 15)
            assert await _online(url, project) == {"Acme.AGV_7": ("agv", True)}
        finally:
            agv.loop_stop()
            agv.socket().close()  # type: ignore[union-attr]

        async def broken() -> bool:
            return await _online(url, project) == {"Acme.AGV_7": ("agv", False)}

        await wait_until(broken, 15)

    rows = await query(
        url,
        "SELECT project_id, device_id, seq, x, y, heading, speed, battery, state,"
        " localization, task_id, map_id FROM agv_status ORDER BY seq",
    )
    # The position's mapId is kept (the floor map needs it); no position, no map.
    m = "hall-2"
    assert [tuple(r) for r in rows] == [
        (project, "Acme.AGV_7", 0, 12.5, -3.25, 90.0, 1.0, 76.5, "moving", 0.93, "order-42", m),
        (project, "Acme.AGV_7", 1, 12.5, -3.25, 90.0, 1.0, 18.0, "charging", 0.93, "order-42", m),
        (project, "Acme.AGV_7", 4, None, None, None, 1.0, 76.5, "moving", None, "order-42", None),
    ]
    assert _sample(ingest.metrics.registry, gaps, topic="state") == 1
    assert _sample(ingest.metrics.registry, lost, topic="state") == 2
    assert await scalar(url, "SELECT count(*) FROM dead_letters") == 0


# ------------------------------------------------------------------ simulator


async def test_simulated_protocol_devices_land_through_ingest(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    project = "qd-weld-vision"  # the first simulated project: group of Sparkplug line1
    none = {"stations": 0, "agvs": 0, "modules": 0, "machines": 0}
    settings = _settings(
        url,
        broker.port,
        ingest={"vda5050_projects": {"SimRobotics": project}},
        simulator={"projects": 1, **none, "vda5050_agvs": 2, "sparkplug_lines": 1, "rate_hz": 10.0},
    )
    async with running(settings):
        sent = await publish_fleet(settings, duration=1.0)
        machines = [f"line1.machine{m + 1}" for m in range(LINE_MACHINES)]
        agvs = ["SimRobotics.AGV-001", "SimRobotics.AGV-002"]

        async def all_devices_landed() -> bool:
            tel = await query(
                url,
                "SELECT DISTINCT device_id FROM telemetry WHERE project_id = $1",
                project,
            )
            agv = await query(
                url,
                "SELECT DISTINCT device_id FROM agv_status WHERE project_id = $1",
                project,
            )
            return {r[0] for r in tel} == set(machines) and {r[0] for r in agv} == set(agvs)

        await wait_until(all_devices_landed, 15)
    # Two AGVs with a connection each, births of the line, then ~10 rounds of data.
    assert sent >= 2 + 1 + LINE_MACHINES + 5 * (2 + LINE_MACHINES)
    metrics = await query(
        url,
        "SELECT device_id, count(DISTINCT metric) FROM telemetry GROUP BY device_id",
    )
    # Each machine's metrics, its `Running` flag and its writable `Setpoint`.
    assert {r[0]: r[1] for r in metrics} == dict.fromkeys(machines, LINE_METRICS + 2)
    devices = await _online(url, project)
    assert devices["line1"] == (NODE_KIND, True)
    assert {d: devices[d] for d in agvs} == dict.fromkeys(agvs, ("agv", True))
    assert await scalar(url, "SELECT count(*) FROM dead_letters") == 0
