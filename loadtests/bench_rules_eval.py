"""Evaluation throughput of the rules engine, in process: `python -m loadtests.bench_rules_eval`.

Decodes and evaluates a realistic mix of messages (vision, AGV, 5G link; one record each)
from many devices against the full default rule set, with occasional faults so alarms open
and clear. Prints events/s and per-message latency; the target is >= 30,000 events/s.
"""

from __future__ import annotations

import argparse
import random
import time

import orjson

from services.core.contracts import decode, parse_topic
from services.rules.config import load_rules
from services.rules.engine import Engine


def messages(devices: int, count: int, seed: int = 7) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    t0 = int(time.time() * 1000) - count * 10
    out: list[tuple[str, bytes]] = []
    kinds = ("vision", "agv", "cpe")
    for i in range(count):
        d = rng.randrange(devices)
        kind = kinds[d % 3]
        ts = t0 + i * 10
        fault = rng.random() < 0.05
        if kind == "vision":
            fail = rng.random() < (0.4 if fault else 0.02)
            rec: dict[str, object] = {
                "ts": ts,
                "seq": i,
                "station": f"st-{d}",
                "part_id": f"P{i}",
                "result": "fail" if fail else "pass",
                "defects": [{"type": "scratch", "confidence": 0.9}] if fail else [],
                "confidence": rng.uniform(0.9, 0.99),
                "inference_ms": rng.gauss(25, 3),
            }
            topic = f"f5g/v1/p{d % 5}/vision/st-{d}/inspection"
        elif kind == "agv":
            rec = {
                "ts": ts,
                "seq": i,
                "x": rng.uniform(0, 50),
                "y": rng.uniform(0, 50),
                "heading": 90.0,
                "speed": 1.2,
                "battery": 15.0 if fault else 70.0,
                "state": "estop" if fault and rng.random() < 0.2 else "moving",
                "localization": rng.uniform(0.85, 1.0),
            }
            topic = f"f5g/v1/p{d % 5}/agv/agv-{d}/agv"
        else:
            rec = {
                "ts": ts,
                "seq": i,
                "rsrp": -120.0 if fault else rng.gauss(-90, 3),
                "sinr": rng.gauss(15, 2),
                "latency_ms": abs(rng.gauss(9, 2)),
                "loss_pct": 0.01,
                "cell_id": f"c{rng.randrange(2) if fault else 1}",
                "slice": "URLLC",
            }
            topic = f"f5g/v1/p{d % 5}/cpe/cpe-{d}/link"
        out.append((topic, orjson.dumps(rec)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=200_000)
    args = ap.parse_args()
    msgs = messages(args.devices, args.messages)
    engine = Engine(load_rules(None))
    transitions = 0
    lat: list[float] = []
    clock = time.perf_counter
    start = clock()
    for topic, payload in msgs:
        t = clock()
        parsed = parse_topic(topic)
        decoded = decode(parsed.stream, payload)
        transitions += len(engine.process(parsed, decoded, decoded.times[0].timestamp()))
        lat.append(clock() - t)
    elapsed = clock() - start
    lat.sort()
    n = len(lat)
    print(f"messages            {n}")
    print(f"devices             {args.devices}")
    print(f"rules per device    {len(next(iter(engine.devices.values())).slots)}")
    print(f"transitions         {transitions}")
    print(f"elapsed             {elapsed:.2f} s")
    print(f"throughput          {n / elapsed:,.0f} events/s (target >= 30,000)")
    print(f"latency p50 / p99   {lat[n // 2] * 1e6:.1f} / {lat[int(n * 0.99)] * 1e6:.1f} us")


if __name__ == "__main__":
    main()
