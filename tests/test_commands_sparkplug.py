"""Sparkplug B metric writes: DCMD type-checked against the birth certificate, completed when
the next DATA reports the written value.

The receiving edge node is paho-mqtt with the project's Sparkplug B protobuf bindings. The
Sparkplug edge node libraries on the package index (pysparkplug 0.6.1, mqtt-spb-wrapper
2.1.2) require paho-mqtt 1.x, which conflicts with the paho-mqtt 2.2.0 the project pins;
so the node here is written to the specification instead: NBIRTH/DBIRTH with aliases, DCMD
by alias, DDATA with aliases only and a seq per message.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from f5gdev.devstack.servers import Mosquitto
from services.protocols import sparkplug_b_pb2 as pb
from tests.test_commands import add_devices, command_settings, commander, fetch, platform, wait_for

GROUP, NODE, DEVICE = "plant9", "line1", "m1"
DT = pb.DataType
# name -> (alias, datatype, value field, initial value)
METRICS: dict[str, tuple[int, int, str, Any]] = {
    "Setpoint": (5, DT.Double, "double_value", 20.0),
    "Speed": (6, DT.Int32, "int_value", 100),
    "Enabled": (7, DT.Boolean, "boolean_value", True),
}


class EdgeNode:
    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.seq = 0
        self.values = {n: v[3] for n, v in METRICS.items()}
        self.commands: list[pb.Payload] = []
        self.rebirths = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"node-{uuid.uuid4().hex[:6]}"
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(
            [(f"spBv1.0/{GROUP}/NCMD/{NODE}", 1), (f"spBv1.0/{GROUP}/DCMD/{NODE}/{DEVICE}", 1)]
        )
        self.client.loop_start()

    def _next_seq(self) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) % 256
        return seq

    def birth(self) -> None:
        with self.lock:
            self.seq = 0
            nb = pb.Payload(timestamp=1, seq=self._next_seq())
            nb.metrics.add(name=b"bdSeq", datatype=DT.Int64, long_value=0)
            nb.metrics.add(name=b"Node Control/Rebirth", datatype=DT.Boolean, boolean_value=False)
            db = pb.Payload(timestamp=1, seq=self._next_seq())
            for name, (alias, dtype, field, _v) in METRICS.items():
                m = db.metrics.add(name=name.encode(), alias=alias, datatype=dtype)
                setattr(m, field, self._wire(dtype, self.values[name]))
        self.client.publish(f"spBv1.0/{GROUP}/NBIRTH/{NODE}", nb.SerializeToString(), qos=0)
        self.client.publish(
            f"spBv1.0/{GROUP}/DBIRTH/{NODE}/{DEVICE}", db.SerializeToString(), qos=0
        )

    @staticmethod
    def _wire(dtype: int, value: Any) -> Any:
        return value & 0xFFFFFFFF if dtype == DT.Int32 else value

    def data_without_birth(self) -> None:
        """What a node that was up before the host sends: DATA with aliases only."""
        d = pb.Payload(timestamp=2, seq=self._next_seq())
        d.metrics.add(alias=5, datatype=DT.Double, double_value=self.values["Setpoint"])
        self.client.publish(f"spBv1.0/{GROUP}/DDATA/{NODE}/{DEVICE}", d.SerializeToString(), qos=0)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        cmd = pb.Payload.FromString(msg.payload)
        if msg.topic.endswith(f"/NCMD/{NODE}"):
            if any(m.name == b"Node Control/Rebirth" and m.boolean_value for m in cmd.metrics):
                self.rebirths += 1
                threading.Thread(target=self.birth, daemon=True).start()
            return
        by_alias = {v[0]: (n, v) for n, v in METRICS.items()}
        data = pb.Payload(timestamp=2)
        with self.lock:
            self.commands.append(cmd)
            for m in cmd.metrics:
                name, (alias, dtype, field, _v) = by_alias[m.alias]
                raw = getattr(m, field)
                self.values[name] = raw - (1 << 32) if dtype == DT.Int32 and raw >= 2**31 else raw
                d = data.metrics.add(alias=alias, datatype=dtype)
                setattr(d, field, raw)
            data.seq = self._next_seq()
        self.client.publish(
            f"spBv1.0/{GROUP}/DDATA/{NODE}/{DEVICE}", data.SerializeToString(), qos=0
        )

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def birth_known(url: str) -> bool:
    rows = await fetch(
        url, "SELECT 1 FROM command_targets WHERE device_id = $1", f"{NODE}.{DEVICE}"
    )
    return bool(rows)


async def test_sparkplug_write_checked_sent_by_alias_and_confirmed_by_data(
    new_database: Callable[..., str], broker: Mosquitto
) -> None:
    url = new_database()
    device = f"{NODE}.{DEVICE}"
    await add_devices(url, [(GROUP, "spb-device", device, True)])
    settings = command_settings(url, broker.port, client_id="cmd-spb")
    node = EdgeNode(broker.port)
    try:
        async with platform(settings) as pf, commander(settings):
            pf.operator = pf.admin
            await pf.allow(GROUP, "spb-device", "write")
            await pf.allow(GROUP, "spb-device", "reboot")
            # The node was up before the commander: no birth known, writes cannot be
            # checked yet (409), and the node's data makes the commander ask for a rebirth.
            r = await pf.send(GROUP, device, name="write", params={"metrics": {"Speed": 1}})
            assert r.status_code == 409, r.text
            assert "birth certificate is not known" in r.json()["error"]["message"]
            node.data_without_birth()
            await wait_for(lambda: birth_known(url), what="birth certificate learnt")
            assert node.rebirths == 1

            for params, why in (
                ({"metrics": {"Setpoint": "hot"}}, "Double needs a number"),
                ({"metrics": {"Speed": 2**31}}, "outside Int32"),
                ({"metrics": {"Speed": 1.5}}, "Int32 needs an integer"),
                ({"metrics": {"Enabled": 1}}, "Boolean needs true or false"),
                ({"metrics": {"Pressure": 1}}, "not in the birth certificate"),
                ({"metrics": {}}, "a write needs params"),
            ):
                r = await pf.send(GROUP, device, name="write", params=params)
                assert r.status_code == 422, (params, r.text)
                assert why in r.json()["error"]["message"], r.json()
            r = await pf.send(GROUP, device, name="reboot")
            assert r.status_code == 422
            assert node.commands == []  # nothing refused was sent

            r = await pf.send(
                GROUP, device, name="write", params={"metrics": {"Setpoint": 42.5, "Speed": -3}}
            )
            assert r.status_code == 202, r.text
            assert r.json()["protocol"] == "sparkplug"
            done = await wait_for(lambda: pf.state_is(GROUP, r.json()["id"], "completed"))
            assert [e["state"] for e in done["history"]] == ["queued", "sent", "completed"]
            assert len(node.commands) == 1
            sent = node.commands[0]
            assert sorted((m.alias, m.datatype, m.name) for m in sent.metrics) == [
                (5, DT.Double, b""),
                (6, DT.Int32, b""),
            ]
            assert node.values["Setpoint"] == 42.5
            assert node.values["Speed"] == -3
    finally:
        node.close()
