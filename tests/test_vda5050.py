"""VDA 5050 v2 adapter: messages shaped like the official state and connection schemas."""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from f5gdev.devstack.servers import Mosquitto
from services.core.contracts import AgvRecord, ContractError, Reason
from services.protocols.adapters.vda5050 import Vda5050Adapter


def state_msg(header: int, serial: str = "AGV-001", **changes: Any) -> dict[str, Any]:
    """A complete `state` message with every field the official schema requires."""
    msg: dict[str, Any] = {
        "headerId": header,
        "timestamp": "2025-03-11T11:40:03.12Z",
        "version": "2.0.0",
        "manufacturer": "ACME Robotics",
        "serialNumber": serial,
        "orderId": "order-42",
        "orderUpdateId": 3,
        "lastNodeId": "n7",
        "lastNodeSequenceId": 14,
        "nodeStates": [{"nodeId": "n8", "sequenceId": 16, "released": True}],
        "edgeStates": [{"edgeId": "e7", "sequenceId": 15, "released": True}],
        "driving": True,
        "paused": False,
        "newBaseRequest": False,
        "operatingMode": "AUTOMATIC",
        "agvPosition": {
            "x": 12.5,
            "y": -3.25,
            "theta": math.pi / 2,
            "mapId": "hall-1",
            "positionInitialized": True,
            "localizationScore": 0.93,
        },
        "velocity": {"vx": 0.6, "vy": 0.8, "omega": 0.0},
        "loads": [],
        "actionStates": [
            {"actionId": "a1", "actionType": "pick", "actionStatus": "FINISHED"},
        ],
        "batteryState": {"batteryCharge": 76.5, "batteryVoltage": 48.1, "charging": False},
        "errors": [],
        "information": [],
        "safetyState": {"eStop": "NONE", "fieldViolation": False},
    }
    msg.update(changes)
    return msg


def connection_msg(header: int, state: str, serial: str = "AGV-001") -> dict[str, Any]:
    return {
        "headerId": header,
        "timestamp": "2025-03-11T11:40:05.00Z",
        "version": "2.0.0",
        "manufacturer": "ACME Robotics",
        "serialNumber": serial,
        "connectionState": state,
    }


STATE_TOPIC = "uagv/v2/ACME Robotics/AGV-001/state"
CONNECTION_TOPIC = "uagv/v2/ACME Robotics/AGV-001/connection"
NOW = datetime.now(UTC)


def _decode_state(adapter: Vda5050Adapter, msg: dict[str, Any]) -> AgvRecord:
    result = adapter.decode(STATE_TOPIC, json.dumps(msg).encode(), NOW)
    ((topic, decoded),) = result.items
    assert topic.stream == "agv"
    record = decoded.records[0]
    assert isinstance(record, AgvRecord)
    return record


def _gaps(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(
        "factory5g_ingest_vda5050_header_gaps_total", {"topic": "state"}
    )
    return value or 0.0


def test_state_lands_with_the_right_fields() -> None:
    adapter = Vda5050Adapter(projects={"ACME Robotics": "logistics"})
    result = adapter.decode(STATE_TOPIC, json.dumps(state_msg(1)).encode(), NOW)
    ((topic, decoded),) = result.items
    assert (topic.project, topic.kind, topic.device) == (
        "logistics",
        "agv",
        "ACME_Robotics.AGV-001",
    )
    rec = decoded.records[0]
    assert rec.x == 12.5
    assert rec.y == -3.25
    assert rec.heading == pytest.approx(90.0)
    assert rec.speed == pytest.approx(1.0)
    assert rec.battery == 76.5
    assert rec.localization == 0.93
    assert rec.state == "moving"
    assert rec.task_id == "order-42"
    assert rec.error_code is None
    assert rec.seq == 1
    assert decoded.times == [datetime(2025, 3, 11, 11, 40, 3, 120000, tzinfo=UTC)]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"safetyState": {"eStop": "AUTOACK", "fieldViolation": False}}, "estop"),
        ({"safetyState": {"eStop": "NONE", "fieldViolation": True}}, "estop"),
        ({"errors": [{"errorType": "motorFault", "errorLevel": "FATAL"}]}, "error"),
        ({"errors": [{"errorType": "lowLight", "errorLevel": "WARNING"}]}, "moving"),
        (
            {
                "driving": False,
                "batteryState": {"batteryCharge": 20.0, "charging": True},
            },
            "charging",
        ),
        (
            {
                "driving": False,
                "actionStates": [
                    {"actionId": "a", "actionType": "pick", "actionStatus": "RUNNING"}
                ],
            },
            "loading",
        ),
        ({"driving": False}, "idle"),
    ],
)
def test_state_mapping(changes: dict[str, Any], expected: str) -> None:
    assert _decode_state(Vda5050Adapter(), state_msg(1, **changes)).state == expected


def test_fatal_error_type_becomes_the_error_code() -> None:
    errors = [
        {"errorType": "lowLight", "errorLevel": "WARNING"},
        {"errorType": "motorFault", "errorLevel": "FATAL", "errorDescription": "left drive"},
    ]
    assert _decode_state(Vda5050Adapter(), state_msg(1, errors=errors)).error_code == "motorFault"


def test_unmapped_agvs_land_in_the_default_project_and_serial_mapping_wins() -> None:
    adapter = Vda5050Adapter(
        projects={"ACME Robotics": "a", "ACME Robotics/AGV-002": "b"}, default_project="rest"
    )
    assert adapter.device_for("ACME Robotics", "AGV-001")[0] == "a"
    assert adapter.device_for("ACME Robotics", "AGV-002")[0] == "b"
    assert adapter.device_for("Other", "X")[0] == "rest"


def test_missing_position_and_velocity_are_stored_as_absent_never_guessed() -> None:
    # Both are optional in VDA 5050 2.0.0 and 2.1.0 (a line-guided AGV has no position).
    adapter = Vda5050Adapter()
    msg = state_msg(1)
    del msg["agvPosition"]
    del msg["velocity"]
    first = _decode_state(adapter, msg)  # a new AGV: no earlier position either
    assert (first.x, first.y, first.heading, first.speed, first.localization) == (None,) * 5
    assert (first.battery, first.state) == (76.5, "moving")
    _decode_state(adapter, state_msg(2))
    rec = _decode_state(adapter, {**msg, "headerId": 3})
    assert (rec.x, rec.y, rec.heading, rec.speed, rec.localization) == (None,) * 5


def test_the_position_map_id_is_kept_for_the_floor_map() -> None:
    adapter = Vda5050Adapter()
    assert _decode_state(adapter, state_msg(1)).map_id == "hall-1"
    msg = state_msg(2)
    msg["agvPosition"] = {**msg["agvPosition"], "mapId": ""}
    assert _decode_state(adapter, msg).map_id is None  # an empty mapId names no map
    msg["agvPosition"] = {**msg["agvPosition"], "mapId": "m" * 100}
    assert _decode_state(adapter, msg).map_id == "m" * 64  # cut like the other texts
    del msg["agvPosition"]
    assert _decode_state(adapter, msg).map_id is None


def test_header_id_gap_is_counted_but_redelivery_and_restart_are_not() -> None:
    registry = CollectorRegistry()
    adapter = Vda5050Adapter(registry=registry)
    for header in (10, 11, 11, 12):
        _decode_state(adapter, state_msg(header))
    assert _gaps(registry) == 0
    _decode_state(adapter, state_msg(15))
    assert _gaps(registry) == 1
    _decode_state(adapter, state_msg(0))  # AGV restarted its counter
    _decode_state(adapter, state_msg(1))
    assert _gaps(registry) == 1


@pytest.mark.parametrize(
    ("state", "online"), [("ONLINE", True), ("OFFLINE", False), ("CONNECTIONBROKEN", False)]
)
def test_connection_sets_online_state(state: str, online: bool) -> None:
    adapter = Vda5050Adapter()
    result = adapter.decode(CONNECTION_TOPIC, json.dumps(connection_msg(1, state)).encode(), NOW)
    assert result.items == []
    ((event,),) = [result.events]
    assert (event.device, event.kind, event.online) == ("ACME_Robotics.AGV-001", "agv", online)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (STATE_TOPIC, b"{not json", Reason.INVALID_JSON),
        (STATE_TOPIC, json.dumps(state_msg(1, operatingMode="DANCING")).encode(), Reason.SCHEMA),
        (
            STATE_TOPIC,
            json.dumps(
                state_msg(1, batteryState={"batteryCharge": 130, "charging": False})
            ).encode(),
            Reason.SCHEMA,
        ),
        (STATE_TOPIC, json.dumps(state_msg(1, timestamp="yesterday")).encode(), Reason.SCHEMA),
        (STATE_TOPIC, json.dumps(state_msg(1, serial="AGV-999")).encode(), Reason.PROTOCOL),
        ("uagv/v2/ACME/AGV-001/order", b"{}", Reason.UNKNOWN_STREAM),
        ("uagv/v2/ACME/" + "s" * 80 + "/state", b"{}", Reason.BAD_TOPIC),
        ("uagv/v2/ACME/state", b"{}", Reason.BAD_TOPIC),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(
    topic: str, payload: bytes, reason: Reason
) -> None:
    with pytest.raises(ContractError) as err:
        Vda5050Adapter().decode(topic, payload, NOW)
    assert err.value.reason is reason


def test_interface_name_is_configurable() -> None:
    adapter = Vda5050Adapter(interface="plantagv")
    assert adapter.topic_filters() == ["plantagv/v2/+/+/state", "plantagv/v2/+/+/connection"]
    assert adapter.matches("plantagv/v2/ACME/1/state")
    assert not adapter.matches(STATE_TOPIC)


async def test_messages_through_a_real_broker(broker: Mosquitto) -> None:
    """Filters subscribe what an AGV publishes, with the spec's QoS and retained connection."""
    iface = f"i{uuid.uuid4().hex[:6]}"
    adapter = Vda5050Adapter(interface=iface)
    topic = f"{iface}/v2/ACME Robotics/AGV-001"
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"h{iface}") as host:
        for f in adapter.topic_filters():
            await host.subscribe(f, qos=1)
        async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"a{iface}") as agv:
            await agv.publish(f"{topic}/state", json.dumps(state_msg(1)).encode(), qos=0)
            broken = json.dumps(connection_msg(2, "CONNECTIONBROKEN")).encode()
            await agv.publish(f"{topic}/connection", broken, qos=1, retain=True)
        seen = []
        messages = aiter(host.messages)
        for _ in range(2):
            msg = await anext(messages)
            seen.append(adapter.decode(str(msg.topic), bytes(msg.payload), NOW))  # type: ignore[arg-type]
    assert seen[0].items[0][1].records[0].state == "moving"
    assert [e.online for e in seen[1].events] == [False]


_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=10),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_contract_errors(raw: bytes) -> None:
    adapter = Vda5050Adapter()
    for topic in (STATE_TOPIC, CONNECTION_TOPIC):
        with contextlib.suppress(ContractError):
            adapter.decode(topic, raw, NOW)


@settings(max_examples=300, deadline=None)
@given(
    overrides=st.dictionaries(st.sampled_from(sorted(state_msg(0))), _json, max_size=4),
    nested=st.dictionaries(st.sampled_from(["x", "y", "theta", "localizationScore"]), _json),
)
def test_arbitrary_json_raises_only_contract_errors(
    overrides: dict[str, Any], nested: dict[str, Any]
) -> None:
    adapter = Vda5050Adapter()
    msg = state_msg(1, **overrides)
    if isinstance(msg.get("agvPosition"), dict):
        msg["agvPosition"] = {**msg["agvPosition"], **nested}
    for topic in (STATE_TOPIC, CONNECTION_TOPIC):
        with contextlib.suppress(ContractError):
            adapter.decode(topic, json.dumps(msg).encode(), NOW)


async def test_simulated_fleet_is_understood_by_the_adapter(broker: Mosquitto) -> None:
    from services.simulator.protocols import publish_vda5050_fleet

    iface = f"i{uuid.uuid4().hex[:6]}"
    adapter = Vda5050Adapter(interface=iface)
    results = []
    async with aiomqtt.Client("127.0.0.1", broker.port) as host:
        for f in adapter.topic_filters():
            await host.subscribe(f, qos=1)
        async with aiomqtt.Client("127.0.0.1", broker.port) as sim:
            sent = await publish_vda5050_fleet(
                sim, agvs=3, rate_hz=20, duration=0.3, interface=iface, seed=1
            )
        messages = aiter(host.messages)
        for _ in range(sent):
            msg = await anext(messages)
            results.append(adapter.decode(str(msg.topic), bytes(msg.payload), NOW))  # type: ignore[arg-type]
    assert sum(len(r.events) for r in results) == 3
    records = [rec for r in results for _, d in r.items for rec in d.records]
    assert len(records) == sent - 3
    assert {r.state for r in records} <= {"moving", "charging", "estop"}
