"""The rules input notices a broker restart, reconnects and judges what comes next.

The input watches the connection itself (ingest's packet reader replaces aiomqtt's message
iterator, which used to end with the error), so a lost broker must still be seen and
survived: health goes red while it is down and an e-stop after the restart opens its alarm.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from f5gdev.devstack.servers import Mosquitto
from tests.test_rules_scenarios import agv
from tests.test_rules_service import events_of, keys, publish, start_service, wait_for


async def test_broker_restart_is_survived(
    database_url: str, new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> None:
    broker = new_broker()
    svc = await start_service(database_url, broker.port, tmp_path, "t-rules-reconnect")
    try:
        broker.stop()

        async def down() -> bool:
            return not svc.service.health()[0]

        assert await wait_for(down)
        broker.start()
        assert await asyncio.wait_for(svc.service.connected.wait(), 15)
        assert svc.service.health()[0]
        record = agv(time.time(), 1, state="estop")
        await publish(broker.port, [("f5g/v1/rc/agv/agv-r/agv", orjson.dumps(record))])

        async def opened() -> list[dict[str, Any]]:
            rows = await events_of(database_url, "rc", "agv-r")
            return [r for r in rows if r["rule"] == "safety_stop"]

        assert keys(await wait_for(opened)) == ["opened:critical"]
    finally:
        await svc.close()
