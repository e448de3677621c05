"""Rules replicas keep their sessions across a broker restart: nothing published meanwhile
goes unjudged.

Each replica (a shard of the devices) connects with a persistent session under its fixed
client id (`F5G_RULES__SESSION_EXPIRY_S`), so Mosquitto saves its subscription and queues
what arrives for it, also across its own restart. The test stretches the window a restart
opens (between the broker being back and the replicas resubscribing) to certainty: both
replicas are stopped, the broker restarts, e-stops of devices of both shards are
published, then the replicas start again under the same client ids. Every e-stop must
open its alarm. With clean sessions the broker forgets the replicas and drops them all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from f5gdev.devstack.servers import Mosquitto
from services.rules.sharding import shard_of
from tests.test_rules_scenarios import agv
from tests.test_rules_service import Running, events_of, publish, start_service, wait_for

PROJECT = "rbr"
DEVICES = [f"agv-{i}" for i in range(12)]


async def _start(database_url: str, port: int, tmp_path: Path) -> list[Running]:
    return [
        await start_service(database_url, port, tmp_path, f"t-rules-rbr-{i}", index=i, count=2)
        for i in range(2)
    ]


async def test_broker_restart_while_replicas_are_away_loses_no_evaluation(
    database_url: str, new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> None:
    assert {shard_of(PROJECT, d, 2) for d in DEVICES} == {0, 1}
    broker = new_broker()
    replicas = await _start(database_url, broker.port, tmp_path)
    for svc in replicas:
        await svc.close()
    broker.restart()
    now = time.time()
    await publish(
        broker.port,
        [
            (f"f5g/v1/{PROJECT}/agv/{d}/agv", orjson.dumps(agv(now, 1, state="estop")))
            for d in DEVICES
        ],
    )
    replicas = await _start(database_url, broker.port, tmp_path)
    try:

        async def opened() -> set[str]:
            rows: list[dict[str, Any]] = await events_of(database_url, PROJECT)
            found = {
                r["device_id"]
                for r in rows
                if r["rule"] == "safety_stop" and r["transition"] == "opened"
            }
            return found if found == set(DEVICES) else set()

        found = await wait_for(opened, 30)
        if not found:
            rows = await events_of(database_url, PROJECT)
            got = {r["device_id"] for r in rows if r["rule"] == "safety_stop"}
            raise AssertionError(
                f"{len(DEVICES) - len(got)} of {len(DEVICES)} e-stops published during the "
                f"restart were never judged (alarms for {sorted(got)})"
            )
    finally:
        for svc in replicas:
            await svc.close()
