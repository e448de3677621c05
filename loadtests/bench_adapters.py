"""In-process decode throughput of the protocol adapters (no broker, no database).

    .venv/bin/python -m loadtests.bench_adapters [--seconds 3]

Sparkplug: DDATA with 20 aliased Double metrics per message, after a DBIRTH, seq
advancing so the gap check runs as in production. VDA 5050: full `state` messages.
Prints messages/s and metrics (or records)/s per adapter; the target for one ingest
process end to end is 100,000 metrics/s, so decoding must leave most of the budget to
COPY and the broker.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from services.ingest.adapters.sparkplug import SparkplugAdapter
from services.ingest.adapters.vda5050 import Vda5050Adapter
from services.protocols import sparkplug as spb

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per adapter")
    args = parser.parse_args()

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
