"""Sparkplug B host adapter against a third-party edge node (pysparkplug) on a real broker.

The host side here is a small loop: subscribe to the adapter's filters, decode each
message, publish the commands it returns. That is what the ingest consumer does with any
adapter, minus the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt
import pysparkplug as psp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from f5gdev.devstack.servers import Mosquitto
from services.core.contracts import ContractError, Reason
from services.protocols import sparkplug as spb
from services.protocols.adapters.base import AdapterResult
from services.protocols.adapters.sparkplug import SparkplugAdapter

DT = psp.DataType


@pytest.fixture(autouse=True)
def _pysparkplug_on_paho2(monkeypatch: pytest.MonkeyPatch) -> None:
    """pysparkplug 0.6.1 calls `message_retry_set`, which paho-mqtt 2 removed (it was a
    no-op since paho 1.5). Restoring the no-op is all the edge node needs to run on the
    paho-mqtt 2 this project uses; its protocol code runs unchanged."""
    import paho.mqtt.client as paho

    monkeypatch.setattr(paho.Client, "message_retry_set", lambda self, retry: None, raising=False)


# A pysparkplug edge node with one device, "press"; each line on stdin is a new Line Speed.
EDGE_NODE = """
import sys, time
import paho.mqtt.client as paho
paho.Client.message_retry_set = lambda self, retry: None  # see _pysparkplug_on_paho2
import pysparkplug as psp
port, node_id = int(sys.argv[1]), sys.argv[2]
now = lambda: int(time.time() * 1000)
FLOAT, UINT32 = psp.DataType.FLOAT, psp.DataType.UINT32
speed = psp.Metric(timestamp=now(), name="Line Speed", datatype=FLOAT, value=2.5)
node = psp.EdgeNode(group_id="plant1", edge_node_id=node_id, metrics=[speed])
force = psp.Metric(timestamp=now(), name="Force/kN", datatype=UINT32, value=420)
node.register(psp.Device(device_id="press", metrics=[force]))
node.connect("127.0.0.1", port=port, blocking=False)
for line in sys.stdin:
    node.update([psp.Metric(timestamp=now(), name="Line Speed", datatype=FLOAT, value=float(line))])
time.sleep(3600)
"""


def _now() -> int:
    return psp.get_current_timestamp()


def _metric(name: str | None, dtype: psp.DataType, value: object, alias: int | None) -> psp.Metric:
    return psp.Metric(timestamp=None, name=name, datatype=dtype, value=value, alias=alias)  # type: ignore[arg-type]


def _rebirths(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value(
        "factory5g_ingest_sparkplug_rebirth_requests_total", {"reason": reason}
    )
    return value or 0.0


@dataclass
class Host:
    """Collects what the adapter made of each message, in arrival order."""

    adapter: SparkplugAdapter
    results: list[AdapterResult] = field(default_factory=list)
    errors: list[ContractError] = field(default_factory=list)
    ncmds: list[bytes] = field(default_factory=list)

    def telemetry(self, device: str) -> list[dict[str, float]]:
        return [
            rec.metrics
            for r in self.results
            for topic, decoded in r.items
            if topic.device == device
            for rec in decoded.records
        ]

    def events(self) -> list[tuple[str, bool]]:
        return [(e.device, e.online) for r in self.results for e in r.events]


@contextlib.asynccontextmanager
async def run_host(port: int, adapter: SparkplugAdapter) -> AsyncIterator[Host]:
    host = Host(adapter)
    will = adapter.will()
    client = aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"host-{uuid.uuid4().hex[:8]}",
        will=aiomqtt.Will(will.topic, will.payload, will.qos, will.retain),
    )
    async with client:
        for f in adapter.topic_filters():
            await client.subscribe(f, qos=1)
        await client.subscribe("spBv1.0/+/NCMD/+", qos=1)
        for cmd in adapter.on_connect():
            await client.publish(cmd.topic, cmd.payload, qos=cmd.qos, retain=cmd.retain)

        async def pump() -> None:
            async for msg in client.messages:
                topic = str(msg.topic)
                payload = bytes(msg.payload)  # type: ignore[arg-type]
                if "/NCMD/" in topic:
                    host.ncmds.append(payload)
                    continue
                try:
                    result = adapter.decode(topic, payload, datetime.now(UTC))
                except ContractError as exc:
                    host.errors.append(exc)
                    continue
                host.results.append(result)
                for cmd in result.commands:
                    await client.publish(cmd.topic, cmd.payload, qos=cmd.qos, retain=cmd.retain)

        task = asyncio.create_task(pump())
        try:
            yield host
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_for(predicate: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def edge_client(port: int) -> psp.Client:
    client = psp.Client(client_id=f"edge-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", port=port, blocking=False)
    return client


def publish(
    client: psp.Client,
    mtype: psp.MessageType,
    node: str,
    payload: object,
    device: str | None = None,
    group: str = "plant1",
) -> None:
    topic = psp.Topic(message_type=mtype, group_id=group, edge_node_id=node, device_id=device)
    client.publish(
        psp.Message(topic=topic, payload=payload, qos=psp.QoS.AT_LEAST_ONCE, retain=False),  # type: ignore[arg-type]
        include_dtypes=mtype in (psp.MessageType.NBIRTH, psp.MessageType.DBIRTH),
    )


BIRTH_METRICS = (
    _metric("Motor 1/Speed RPM", DT.DOUBLE, 1500.0, 1),
    _metric("Temperature", DT.INT16, -12, 2),
    _metric("Running", DT.BOOLEAN, True, 3),
    _metric("Label", DT.STRING, "press", 4),
)


async def test_edge_node_births_register_metrics_and_ndeath_marks_offline(
    broker: Mosquitto,
) -> None:
    adapter = SparkplugAdapter(host_id=f"h{uuid.uuid4().hex[:6]}")
    node_id = f"n{uuid.uuid4().hex[:6]}"
    async with run_host(broker.port, adapter) as host:
        # The edge node runs in a process of its own, so that it can crash for real.
        node = await asyncio.create_subprocess_exec(
            sys.executable, "-c", EDGE_NODE, str(broker.port), node_id, stdin=subprocess.PIPE
        )
        assert node.stdin is not None
        try:
            await wait_for(lambda: (f"{node_id}.press", True) in host.events(), 30)
            node.stdin.write(b"3.0\n")
            await node.stdin.drain()
            await wait_for(lambda: {"Line_Speed": 3.0} in host.telemetry(node_id))
        finally:
            # A crash, not a goodbye: SIGKILL closes the socket without DISCONNECT, so the
            # broker publishes the NDEATH will registered at connect.
            node.kill()
            await node.wait()
        await wait_for(lambda: (node_id, False) in host.events())

    assert {"Line_Speed": 2.5} in host.telemetry(node_id)
    assert {"Force/kN": 420.0} in host.telemetry(f"{node_id}.press")
    assert (f"{node_id}.press", False) in host.events()
    state = adapter.node_state("plant1", node_id)
    assert state is not None
    assert not state.online
    assert not state.devices["press"].online
    assert not host.errors


async def test_aliased_data_lands_with_names_and_a_seq_gap_asks_one_rebirth(
    broker: Mosquitto,
) -> None:
    registry = CollectorRegistry()
    adapter = SparkplugAdapter(rebirth_min_interval_s=60.0, registry=registry)
    node = f"n{uuid.uuid4().hex[:6]}"
    async with run_host(broker.port, adapter) as host:
        edge = edge_client(broker.port)
        try:
            t = _now()
            bd = _metric("bdSeq", DT.INT64, 0, None)
            nbirth = psp.NBirth(timestamp=t, seq=0, metrics=(bd, *BIRTH_METRICS))
            publish(edge, psp.MessageType.NBIRTH, node, nbirth)
            level = _metric("Level", DT.UINT8, 7, 10)
            dbirth = psp.DBirth(timestamp=t, seq=1, metrics=(level,))
            publish(edge, psp.MessageType.DBIRTH, node, dbirth, device="tank")
            data = (
                _metric(None, DT.DOUBLE, 1510.5, 1),
                _metric(None, DT.INT16, -3, 2),
                _metric(None, DT.BOOLEAN, False, 3),
            )
            publish(
                edge, psp.MessageType.NDATA, node, psp.NData(timestamp=t + 1, seq=2, metrics=data)
            )
            ddata = psp.DData(timestamp=t + 2, seq=3, metrics=(_metric(None, DT.UINT8, 9, 10),))
            publish(edge, psp.MessageType.DDATA, node, ddata, device="tank")
            # seq 4 and 5 are lost: one gap. A second gap inside the rate limit asks nothing.
            for seq in (6, 7, 9):
                value = (_metric(None, DT.DOUBLE, float(seq), 1),)
                ndata = psp.NData(timestamp=t + seq, seq=seq, metrics=value)
                publish(edge, psp.MessageType.NDATA, node, ndata)
            await wait_for(lambda: {"Motor_1/Speed_RPM": 9.0} in host.telemetry(node))
            await asyncio.sleep(0.3)  # let any extra NCMD arrive
        finally:
            edge.disconnect()

    telemetry = host.telemetry(node)
    assert {"Motor_1/Speed_RPM": 1510.5, "Temperature": -3.0, "Running": 0.0} in telemetry
    # birth values are data too; the string metric is skipped, not fatal
    assert {"Motor_1/Speed_RPM": 1500.0, "Temperature": -12.0, "Running": 1.0} in telemetry
    assert {"Level": 9.0} in host.telemetry(f"{node}.tank")
    assert len(host.ncmds) == 1
    rebirth = spb.parse_payload(host.ncmds[0])
    assert rebirth.metrics[0].name == b"Node Control/Rebirth"
    assert rebirth.metrics[0].boolean_value is True
    assert _rebirths(registry, "seq_gap") == 1
    assert not host.errors


async def test_data_before_birth_asks_for_rebirth(broker: Mosquitto) -> None:
    registry = CollectorRegistry()
    adapter = SparkplugAdapter(registry=registry)
    node = f"n{uuid.uuid4().hex[:6]}"
    async with run_host(broker.port, adapter) as host:
        edge = edge_client(broker.port)
        try:
            value = (_metric(None, DT.DOUBLE, 1.0, 1),)
            publish(
                edge,
                psp.MessageType.NDATA,
                node,
                psp.NData(timestamp=_now(), seq=17, metrics=value),
            )
            await wait_for(lambda: len(host.ncmds) == 1)
        finally:
            edge.disconnect()
    assert host.telemetry(node) == []
    assert _rebirths(registry, "no_birth") == 1


async def test_host_state_birth_is_retained_and_will_fires(
    new_broker: Callable[[], Mosquitto],
) -> None:
    server = new_broker()
    adapter = SparkplugAdapter(host_id="plant-host")
    will = adapter.will()
    (birth,) = adapter.on_connect()
    # The host's client is plain paho (own thread) so its socket can be dropped like a
    # crash, without an MQTT DISCONNECT, and without disturbing this test's event loop.
    import paho.mqtt.client as paho

    host = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="state-host")
    host.will_set(will.topic, will.payload, will.qos, will.retain)
    host.connect("127.0.0.1", server.port)
    host.loop_start()
    host.publish(birth.topic, birth.payload, qos=birth.qos, retain=birth.retain).wait_for_publish(5)

    async with aiomqtt.Client("127.0.0.1", server.port, identifier="watcher") as watcher:
        await watcher.subscribe(spb.state_topic("plant-host"), qos=1)
        messages = aiter(watcher.messages)
        async with asyncio.timeout(5):
            first = await anext(messages)
        assert first.retain
        online = json.loads(bytes(first.payload))  # type: ignore[arg-type]
        assert online["online"] is True
        host.loop_stop()
        host.socket().close()
        async with asyncio.timeout(10):
            second = await anext(messages)
        offline = json.loads(bytes(second.payload))  # type: ignore[arg-type]
        assert offline == {"online": False, "timestamp": online["timestamp"]}


# ------------------------------------------------------------------ in-process decoding


def _decode(adapter: SparkplugAdapter, topic: str, payload: object) -> AdapterResult:
    raw = payload.encode(include_dtypes="BIRTH" in topic)  # type: ignore[attr-defined]
    return adapter.decode(topic, raw, datetime.now(UTC))


def test_stale_ndeath_of_an_earlier_session_is_ignored() -> None:
    adapter = SparkplugAdapter()
    t = _now()
    bd5 = _metric("bdSeq", DT.INT64, 5, None)
    _decode(adapter, "spBv1.0/g/NBIRTH/n", psp.NBirth(timestamp=t, seq=0, metrics=(bd5,)))
    old = psp.NDeath(timestamp=t, bd_seq_metric=_metric("bdSeq", DT.INT64, 4, None))
    assert _decode(adapter, "spBv1.0/g/NDEATH/n", old).events == []
    state = adapter.node_state("g", "n")
    assert state is not None
    assert state.online
    current = psp.NDeath(timestamp=t, bd_seq_metric=bd5)
    assert [e.online for e in _decode(adapter, "spBv1.0/g/NDEATH/n", current).events] == [False]


def test_ddeath_marks_only_that_device_offline() -> None:
    adapter = SparkplugAdapter()
    t = _now()
    x = (_metric("x", DT.DOUBLE, 1.0, 1),)
    _decode(adapter, "spBv1.0/g/NBIRTH/n", psp.NBirth(timestamp=t, seq=0, metrics=()))
    _decode(adapter, "spBv1.0/g/DBIRTH/n/a", psp.DBirth(timestamp=t, seq=1, metrics=x))
    _decode(adapter, "spBv1.0/g/DBIRTH/n/b", psp.DBirth(timestamp=t, seq=2, metrics=x))
    result = _decode(adapter, "spBv1.0/g/DDEATH/n/a", psp.DDeath(timestamp=t, seq=3))
    assert [(e.device, e.online) for e in result.events] == [("n.a", False)]
    state = adapter.node_state("g", "n")
    assert state is not None
    assert state.online
    assert state.devices["b"].online
    # DATA from the dead device now needs a rebirth, not a guess
    dd = psp.DData(timestamp=t, seq=4, metrics=(_metric(None, DT.DOUBLE, 2.0, 1),))
    assert _decode(adapter, "spBv1.0/g/DDATA/n/a", dd).commands


def test_data_with_only_unsupported_metrics_is_dead_lettered() -> None:
    adapter = SparkplugAdapter()
    t = _now()
    # Strings are stored (telemetry_text); raw bytes are not.
    blob = (_metric("Blob", DT.BYTES, b"a", 1),)
    _decode(adapter, "spBv1.0/g/NBIRTH/n", psp.NBirth(timestamp=t, seq=0, metrics=blob))
    data = psp.NData(timestamp=t, seq=1, metrics=(_metric(None, DT.BYTES, b"b", 1),))
    with pytest.raises(ContractError) as err:
        _decode(adapter, "spBv1.0/g/NDATA/n", data)
    assert err.value.reason is Reason.UNSUPPORTED


@pytest.mark.parametrize(
    "topic",
    [
        "spBv1.0/bad group/NDATA/n",
        "spBv1.0/g/NDATA/" + "n" * 65,
        "spBv1.0/g/DDATA/n",
        "spBv1.0/g/NDATA/n/extra",
        "spBv1.0/g/NCMD/n",
        "spBv1.0/g/WHAT/n",
        "spBv2.0/g/NDATA/n",
    ],
)
def test_bad_topics_are_rejected(topic: str) -> None:
    with pytest.raises(ContractError) as err:
        SparkplugAdapter().decode(topic, b"", datetime.now(UTC))
    assert err.value.reason is Reason.BAD_TOPIC


def test_metric_names_map_to_the_telemetry_grammar() -> None:
    assert spb.metric_name(b"Motor 1/Speed (RPM)") == "Motor_1/Speed__RPM_"
    assert spb.metric_name("Temp\u00b0C".encode()) == "Temp_C"
    assert spb.metric_name(b"x" * 129) is None
    assert spb.metric_name(b"\xff") is None


def test_signed_integers_decode_from_both_encodings() -> None:
    m = spb.Metric(int_value=0xFFFFFFFF)  # sign-extended -1
    assert spb.metric_value(m, spb.DataType.Int8) == -1.0
    m = spb.Metric(int_value=0xFF)  # -1 at the type's own width
    assert spb.metric_value(m, spb.DataType.Int8) == -1.0
    m = spb.Metric(long_value=2**64 - 2)
    assert spb.metric_value(m, spb.DataType.Int64) == -2.0
    assert spb.metric_value(spb.Metric(float_value=float("nan")), spb.DataType.Float) is None


def test_shards_split_nodes_stably() -> None:
    nodes = [f"node{i}" for i in range(200)]
    owners = [
        [n for n in nodes if SparkplugAdapter(shard_index=i, shard_count=3).owns("g", n)]
        for i in range(3)
    ]
    assert sorted(n for o in owners for n in o) == sorted(nodes)
    assert all(len(o) > 30 for o in owners)
    assert owners[0] == [n for n in nodes if spb.shard_of("g", n, 3) == 0]


def _born_adapter() -> SparkplugAdapter:
    adapter = SparkplugAdapter()
    birth = psp.NBirth(timestamp=_now(), seq=0, metrics=BIRTH_METRICS)
    _decode(adapter, "spBv1.0/g/NBIRTH/n", birth)
    return adapter


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_contract_errors(raw: bytes) -> None:
    adapter = _born_adapter()
    topics = (
        "spBv1.0/g/NDATA/n",
        "spBv1.0/g/NBIRTH/n",
        "spBv1.0/g/NDEATH/n",
        "spBv1.0/g/DDATA/n/d",
    )
    for topic in topics:
        with contextlib.suppress(ContractError):
            adapter.decode(topic, raw, datetime.now(UTC))


_metric_st = st.builds(
    spb.Metric,
    name=st.one_of(st.none(), st.binary(max_size=20)),
    alias=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    timestamp=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    datatype=st.one_of(st.none(), st.integers(0, 40)),
    is_null=st.booleans(),
    int_value=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    double_value=st.one_of(st.none(), st.floats()),
)


@settings(max_examples=300, deadline=None)
@given(
    metrics=st.lists(_metric_st, max_size=8),
    seq=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
    ts=st.one_of(st.none(), st.integers(0, 2**64 - 1)),
)
def test_well_formed_protobuf_with_wild_values_raises_only_contract_errors(
    metrics: list[spb.Metric], seq: int | None, ts: int | None
) -> None:
    raw = spb.Payload(metrics=metrics, seq=seq, timestamp=ts).SerializeToString()
    adapter = _born_adapter()
    topics = (
        "spBv1.0/g/NBIRTH/n",
        "spBv1.0/g/NDATA/n",
        "spBv1.0/g/DBIRTH/n/d",
        "spBv1.0/g/DDATA/n/d",
        "spBv1.0/g/DDEATH/n/d",
        "spBv1.0/g/NDEATH/n",
    )
    for topic in topics:
        with contextlib.suppress(ContractError):
            result = adapter.decode(topic, raw, datetime.now(UTC))
            for _, decoded in result.items:
                for rec in decoded.records:
                    assert 1 <= len(rec.metrics) <= 1000
                    assert all(abs(v) <= 1e300 for v in rec.metrics.values())


async def test_simulated_line_is_understood_by_the_host(broker: Mosquitto) -> None:
    from services.simulator.protocols import publish_sparkplug_line, sparkplug_will

    adapter = SparkplugAdapter()
    group = f"g{uuid.uuid4().hex[:6]}"
    async with run_host(broker.port, adapter) as host:
        will = sparkplug_will(group, "line1")
        async with aiomqtt.Client("127.0.0.1", broker.port, will=will) as sim:
            sent = await publish_sparkplug_line(
                sim, group=group, machines=2, metrics_per_machine=4, rate_hz=20, duration=0.5
            )
        await wait_for(lambda: len(host.telemetry("line1.machine2")) >= 5)
    assert sent > 10
    assert not host.errors
    assert host.ncmds == []
    assert set(host.telemetry("line1.machine1")[-1]) == {
        "Axis_0/Temp_C",
        "Spindle_1/Load",
        "Axis_2/Temp_C",
        "Spindle_3/Load",
        "Running",
        "Setpoint",  # writable by commands (issue 18)
    }
