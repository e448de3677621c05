"""Commands to a VDA 5050 2.x AGV: instant actions and orders, outcome from `state`.

The AGV is a paho-mqtt client that behaves like the standard says: it takes
`instantActions` and `order` on its own topics, and every `state` it publishes lists the
actions it knows in `actionStates` (WAITING/RUNNING ... FINISHED or FAILED) and the order
it drives with its remaining `nodeStates` / `edgeStates`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from f5gdev.devstack.servers import Mosquitto
from tests.test_commands import (
    add_devices,
    command_settings,
    commander,
    fetch,
    platform,
    wait_for,
)

MFR, SERIAL = "SimRobotics", "agv-7"
DEVICE = "SimRobotics.agv-7"
PROJECT = "vda5050"  # the adapter's default project


class Agv:
    def __init__(self, port: int, fail: frozenset[str] = frozenset()) -> None:
        self.fail = fail
        self.lock = threading.Lock()
        self.header = 0
        self.actions: dict[str, dict[str, Any]] = {}  # actionId -> actionState
        self.order: dict[str, Any] | None = None
        self.order_nodes: list[Any] = []
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.paused = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"agv-{uuid.uuid4().hex[:6]}"
        )
        self.client.on_connect = lambda c, *_a: c.subscribe(
            [(f"uagv/v2/{MFR}/{SERIAL}/instantActions", 1), (f"uagv/v2/{MFR}/{SERIAL}/order", 1)]
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        body = orjson.loads(msg.payload)
        with self.lock:
            self.received.append((msg.topic.rsplit("/", 1)[1], body))
            if msg.topic.endswith("/order"):
                self.order = body
                self.order_nodes = [{"nodeId": n["nodeId"]} for n in body["nodes"]]
                return
            for a in body["actions"]:
                self.actions[a["actionId"]] = {
                    "actionId": a["actionId"],
                    "actionType": a["actionType"],
                    "actionStatus": "WAITING",
                }

    def _loop(self) -> None:
        while not self.stop.wait(0.1):
            with self.lock:
                for a in self.actions.values():
                    # One step per state message: WAITING -> RUNNING -> FINISHED / FAILED.
                    if a["actionStatus"] == "WAITING":
                        a["actionStatus"] = "RUNNING"
                    elif a["actionStatus"] == "RUNNING":
                        if a["actionType"] in self.fail:
                            a["actionStatus"] = "FAILED"
                            a["resultDescription"] = "no order to cancel"
                        else:
                            a["actionStatus"] = "FINISHED"
                            if a["actionType"] == "startPause":
                                self.paused = True
                            if a["actionType"] == "stopPause":
                                self.paused = False
                if self.order_nodes and not self.paused:
                    self.order_nodes.pop(0)
                state = {
                    "headerId": self.header,
                    "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "version": "2.0.0",
                    "manufacturer": MFR,
                    "serialNumber": SERIAL,
                    "orderId": self.order["orderId"] if self.order else "",
                    "orderUpdateId": 0,
                    "lastNodeId": "",
                    "lastNodeSequenceId": 0,
                    "driving": bool(self.order_nodes),
                    "paused": self.paused,
                    "operatingMode": "AUTOMATIC",
                    "nodeStates": list(self.order_nodes),
                    "edgeStates": [],
                    "actionStates": list(self.actions.values()),
                    "batteryState": {"batteryCharge": 80.0, "charging": False},
                    "errors": [],
                    "safetyState": {"eStop": "NONE", "fieldViolation": False},
                }
                self.header += 1
            self.client.publish(f"uagv/v2/{MFR}/{SERIAL}/state", orjson.dumps(state), qos=0)

    def headers(self, sub: str) -> list[int]:
        with self.lock:
            return [b["headerId"] for t, b in self.received if t == sub]

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.client.loop_stop()
        self.client.disconnect()


async def target_known(url: str) -> bool:
    rows = await fetch(url, "SELECT address FROM command_targets WHERE device_id = $1", DEVICE)
    return bool(rows)


async def test_vda5050_instant_actions_and_order(
    new_database: Callable[..., str], broker: Mosquitto
) -> None:
    url = new_database()
    await add_devices(url, [(PROJECT, "agv", DEVICE, True)])
    settings = command_settings(url, broker.port, client_id="cmd-vda")
    agv = Agv(broker.port, fail=frozenset({"cancelOrder"}))
    try:
        async with platform(settings) as pf:
            for name in ("startPause", "stopPause", "cancelOrder", "order", "jump"):
                await pf.allow(PROJECT, "agv", name)
            pf.operator = pf.admin  # the fixture's operator key sees p1 only

            async with commander(settings):
                await wait_for(lambda: target_known(url), what="AGV address learnt")
                r = await pf.send(PROJECT, DEVICE, name="jump")
                assert r.status_code == 422
                assert "no VDA 5050 command" in r.json()["error"]["message"]

                r = await pf.send(PROJECT, DEVICE, name="startPause")
                assert r.status_code == 202, r.text
                assert r.json()["protocol"] == "vda5050"
                done = await wait_for(lambda: pf.state_is(PROJECT, r.json()["id"], "completed"))
                assert [e["state"] for e in done["history"]] == [
                    "queued",
                    "sent",
                    "accepted",
                    "completed",
                ]
                assert agv.paused
                topic, msg = agv.received[0]
                assert topic == "instantActions"
                assert msg["manufacturer"] == MFR
                assert msg["serialNumber"] == SERIAL
                assert msg["version"].startswith("2.")
                assert msg["actions"] == [
                    {"actionType": "startPause", "actionId": r.json()["id"], "blockingType": "HARD"}
                ]
                r = await pf.send(PROJECT, DEVICE, name="stopPause")
                await wait_for(lambda: pf.state_is(PROJECT, r.json()["id"], "completed"))
                assert not agv.paused

            # A new commander process continues the headerId count from the database.
            async with commander(settings):
                r = await pf.send(PROJECT, DEVICE, name="cancelOrder")
                failed = await wait_for(lambda: pf.state_is(PROJECT, r.json()["id"], "failed"))
                assert failed["message"] == "no order to cancel"
                order = {
                    "orderId": "o-1",
                    "orderUpdateId": 0,
                    "nodes": [
                        {"nodeId": f"n{i}", "sequenceId": 2 * i, "released": True, "actions": []}
                        for i in range(3)
                    ],
                    "edges": [],
                }
                r = await pf.send(PROJECT, DEVICE, name="order", params=order)
                assert r.status_code == 202, r.text
                done = await wait_for(lambda: pf.state_is(PROJECT, r.json()["id"], "completed"))
                assert [e["state"] for e in done["history"]][-1] == "completed"
                assert agv.received[-1][0] == "order"
                assert agv.received[-1][1]["orderId"] == "o-1"
                bad = await pf.send(PROJECT, DEVICE, name="order", params={"orderId": "x"})
                assert bad.status_code == 422
            assert agv.headers("instantActions") == [0, 1, 2]
            assert agv.headers("order") == [0]
    finally:
        agv.close()
