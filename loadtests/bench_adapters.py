"""Throughput of the protocol adapters: in-process decoding, and Sparkplug end to end.

    .venv/bin/python -m loadtests.bench_adapters [--seconds 3]
    .venv/bin/python -m loadtests.bench_adapters --e2e [--messages 30000] [--nodes 10]

The default mode decodes in-process (no broker, no database).

Sparkplug: DDATA with 20 aliased Double metrics per message, after a DBIRTH, seq
advancing so the gap check runs as in production. VDA 5050: full `state` messages.
Prints messages/s and metrics (or records)/s per adapter; the target for one ingest
process end to end is 100,000 metrics/s, so decoding must leave most of the budget to
COPY and the broker.

`--e2e` measures that target: private PostgreSQL and Mosquitto, one real ingest process
(`python -m services.cli ingest`). Ingest connects once so its persistent session
exists, stops, and the Sparkplug edge nodes publish their births and all DDATA (QoS 1,
every PUBACK awaited) into the session's queue; then ingest starts again and drains it.
Draining a backlog keeps the publisher's speed out of the figure: what is reported is
committed metrics/s of ingest alone (rows_written over time, from its /metrics, first
committed row to last), checked against a count of the telemetry table.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from loadtests.procs import INGESTORS, Ingestor, wait_until
from loadtests.runner import BenchEnv
from services.protocols import sparkplug as spb
from services.protocols.adapters.sparkplug import SparkplugAdapter
from services.protocols.adapters.vda5050 import Vda5050Adapter

METRICS_PER_MESSAGE = 20


def _sparkplug_messages(count: int) -> tuple[SparkplugAdapter, list[tuple[str, bytes]]]:
    adapter = SparkplugAdapter()
    t0 = int(time.time() * 1000)
    now = datetime.now(UTC)
    nbirth = spb.Payload(timestamp=t0, seq=0)
    nbirth.metrics.add(name=b"bdSeq", datatype=spb.DataType.Int64, long_value=0)
    adapter.decode("spBv1.0/bench/NBIRTH/line", nbirth.SerializeToString(), now)
    dbirth = spb.Payload(timestamp=t0, seq=1)
    for i in range(METRICS_PER_MESSAGE):
        dbirth.metrics.add(
            name=f"Axis {i}/Position".encode(),
            alias=i,
            datatype=spb.DataType.Double,
            double_value=0.0,
        )
    adapter.decode("spBv1.0/bench/DBIRTH/line/cnc", dbirth.SerializeToString(), now)
    messages = []
    for n in range(count):
        p = spb.Payload(timestamp=t0 + n, seq=(n + 2) % 256)
        for i in range(METRICS_PER_MESSAGE):
            p.metrics.add(alias=i, double_value=math.sin(n + i))
        messages.append(("spBv1.0/bench/DDATA/line/cnc", p.SerializeToString()))
    return adapter, messages


def _vda_messages(count: int) -> tuple[Vda5050Adapter, list[tuple[str, bytes]]]:
    adapter = Vda5050Adapter()
    messages = []
    for n in range(count):
        state = {
            "headerId": n,
            "timestamp": "2025-03-11T11:40:03.12Z",
            "version": "2.0.0",
            "manufacturer": "ACME",
            "serialNumber": "AGV-1",
            "orderId": "o1",
            "orderUpdateId": 0,
            "lastNodeId": "n1",
            "lastNodeSequenceId": 0,
            "nodeStates": [],
            "edgeStates": [],
            "driving": True,
            "operatingMode": "AUTOMATIC",
            "agvPosition": {
                "x": n % 100,
                "y": 2.0,
                "theta": 0.5,
                "mapId": "m",
                "positionInitialized": True,
            },
            "velocity": {"vx": 1.0, "vy": 0.0},
            "actionStates": [],
            "batteryState": {"batteryCharge": 80.0, "charging": False},
            "errors": [],
            "safetyState": {"eStop": "NONE", "fieldViolation": False},
        }
        messages.append(("uagv/v2/ACME/AGV-1/state", json.dumps(state).encode()))
    return adapter, messages


def _run(
    decode: Callable[[str, bytes, datetime], object],
    messages: list[tuple[str, bytes]],
    seconds: float,
) -> float:
    """Messages per second over repeated passes until `seconds` have elapsed."""
    now = datetime.now(UTC)
    done = 0
    start = time.perf_counter()
    while True:
        for topic, payload in messages:
            decode(topic, payload, now)
        done += len(messages)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def _edge_backlog(nodes: int, messages: int) -> list[tuple[str, bytes]]:
    """Births, then DDATA round-robin over the nodes' one device each, seq per node."""
    t0 = int(time.time() * 1000)
    out: list[tuple[str, bytes]] = []
    for n in range(nodes):
        nbirth = spb.Payload(timestamp=t0, seq=0)
        nbirth.metrics.add(name=b"bdSeq", datatype=spb.DataType.Int64, long_value=0)
        out.append((f"spBv1.0/bench/NBIRTH/line{n}", nbirth.SerializeToString()))
        dbirth = spb.Payload(timestamp=t0, seq=1)
        for i in range(METRICS_PER_MESSAGE):
            dbirth.metrics.add(
                name=f"Axis {i}/Position".encode(),
                alias=i,
                datatype=spb.DataType.Double,
                double_value=0.0,
            )
        out.append((f"spBv1.0/bench/DBIRTH/line{n}/cnc", dbirth.SerializeToString()))
    for k in range(messages):
        n, step = k % nodes, k // nodes
        p = spb.Payload(timestamp=t0 + 1 + step, seq=(step + 2) % spb.SEQ_MODULO)
        for i in range(METRICS_PER_MESSAGE):
            p.metrics.add(alias=i, double_value=math.sin(step + i))
        out.append((f"spBv1.0/bench/DDATA/line{n}/cnc", p.SerializeToString()))
    return out


def _publish_all(port: int, messages: list[tuple[str, bytes]], window: int = 2000) -> float:
    """Publish with QoS 1 and wait for every PUBACK; returns messages/s."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    acked = 0

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-edge")
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    start = time.perf_counter()
    for sent, (topic, payload) in enumerate(messages, 1):
        client.publish(topic, payload, qos=1)
        while sent - acked > window:
            client.loop(0.01)
    while acked < len(messages):
        client.loop(0.05)
    elapsed = time.perf_counter() - start
    client.disconnect()
    return len(messages) / elapsed


def _rows_written(ingestor: Ingestor) -> float:
    return sum(
        v
        for k, v in ingestor.metrics().items()
        if k.startswith("factory5g_ingest_rows_written_total")
    )


def run_e2e(messages: int, nodes: int, timeout: float = 300.0) -> float:
    """Committed metrics/s of one ingest process draining a Sparkplug DDATA backlog."""
    import sqlalchemy as sa

    from services.core.db import sync_url

    expected = messages * METRICS_PER_MESSAGE
    with BenchEnv() as env:
        url = env.new_database()
        broker = env.new_broker()
        ingestor = Ingestor(
            "ingest",
            INGESTORS["ingest"],
            {
                "F5G_DATABASE__URL": url,
                "F5G_MQTT__HOST": "127.0.0.1",
                "F5G_MQTT__PORT": str(broker.port),
                "F5G_INGEST__CLIENT_ID": "bench-adapters",
                "F5G_LOG_LEVEL": "WARNING",
            },
            env.base / "ingest.log",
        )

        def subscribed() -> bool:
            return ingestor.metrics().get("factory5g_ingest_mqtt_connected") == 1.0

        try:
            ingestor.start()
            if not wait_until(subscribed, 60):
                raise SystemExit(f"ingest did not connect:\n{ingestor.log_tail()}")
            ingestor.stop()
            backlog = _edge_backlog(nodes, messages)
            rate = _publish_all(broker.port, backlog)
            print(f"published {len(backlog):,} messages into the session queue: {rate:,.0f} msg/s")
            ingestor.start()
            samples: list[tuple[float, float]] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                rows = _rows_written(ingestor)
                samples.append((time.monotonic(), rows))
                if rows >= expected:
                    break
                time.sleep(0.1)
            committed = [(t, r) for t, r in samples if r > 0]
            if len(committed) < 2 or committed[-1][1] < expected:
                raise SystemExit(
                    f"ingest committed {samples[-1][1]:,.0f} of {expected:,} rows in {timeout:.0f}s"
                    f"\n{ingestor.log_tail()}"
                )
            (t_first, r_first), (t_last, r_last) = committed[0], committed[-1]
            throughput = (r_last - r_first) / (t_last - t_first)
            engine = sa.create_engine(sync_url(url))
            with engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT count(*) FROM telemetry")).scalar_one()
            engine.dispose()
        finally:
            ingestor.stop()
    print(
        f"sparkplug e2e: {messages:,} DDATA x{METRICS_PER_MESSAGE} metrics from {nodes} edge "
        f"nodes, {stored:,} telemetry rows stored (births included), "
        f"{t_last - t_first:.2f}s first to last commit"
    )
    print(
        f"sparkplug e2e: {throughput:,.0f} committed metrics/s per ingest process (target 100,000)"
    )
    return throughput


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per adapter")
    parser.add_argument("--e2e", action="store_true", help="Sparkplug through broker and ingest")
    parser.add_argument("--messages", type=int, default=30_000, help="e2e: DDATA messages")
    parser.add_argument("--nodes", type=int, default=10, help="e2e: edge nodes")
    args = parser.parse_args()
    if args.e2e:
        run_e2e(args.messages, args.nodes)
        return

    sp_adapter, sp_messages = _sparkplug_messages(2000)
    rate = _run(sp_adapter.decode, sp_messages, args.seconds)
    print(
        f"sparkplug DDATA x{METRICS_PER_MESSAGE} metrics: {rate:,.0f} msg/s, "
        f"{rate * METRICS_PER_MESSAGE:,.0f} metrics/s"
    )
    vda_adapter, vda_messages = _vda_messages(2000)
    rate = _run(vda_adapter.decode, vda_messages, args.seconds)
    print(f"vda5050 state: {rate:,.0f} msg/s (= AGV records/s)")


if __name__ == "__main__":
    main()
