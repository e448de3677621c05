"""A stalled database holds the rules input back instead of filling memory, and loses nothing.

Another session locks the `alarms` table, so the rules writer blocks for real. Each e-stop
on a new AGV is one alarm transition: past the high-water mark the input must stop
reading (the broker keeps the rest), and once the lock is gone every alarm must be stored.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import orjson
import pytest

from f5gdev.devstack.servers import Mosquitto
from services.core.db import asyncpg_dsn
from services.rules import service as rules_service
from tests.test_rules_scenarios import agv
from tests.test_rules_service import publish, start_service, wait_for

DEVICES = 300
HIGH_WATER = 20


async def test_stalled_database_pauses_input_and_loses_nothing(
    database_url: str, broker: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rules_service, "HIGH_WATER", HIGH_WATER)
    monkeypatch.setattr(rules_service, "LOW_WATER", 5)
    svc = await start_service(database_url, broker.port, tmp_path, "t-rules-bp")
    locker = await asyncpg.connect(asyncpg_dsn(database_url))
    lock = locker.transaction()
    await lock.start()
    await locker.execute("LOCK TABLE alarms IN ACCESS EXCLUSIVE MODE")
    try:
        now = time.time()
        messages = [
            (f"f5g/v1/bp/agv/agv-{i}/agv", orjson.dumps(agv(now, 1, state="estop")))
            for i in range(DEVICES)
        ]
        await publish(broker.port, messages)
        rules = svc.service

        async def paused() -> bool:
            return rules.input.paused

        assert await wait_for(paused)
        await asyncio.sleep(0.5)  # reading has stopped: the backlog stays bounded
        assert rules.input.paused
        assert HIGH_WATER < rules.pending <= HIGH_WATER + 1
        assert len(rules.engine.devices) < DEVICES
    finally:
        await lock.rollback()
        await locker.close()
    try:

        async def all_stored() -> bool:
            conn = await asyncpg.connect(asyncpg_dsn(database_url))
            try:
                n = await conn.fetchval(
                    "SELECT count(*) FROM alarms WHERE project_id = 'bp' AND rule = 'safety_stop'"
                )
            finally:
                await conn.close()
            return bool(n == DEVICES)

        assert await wait_for(all_stored, within=30)
        assert not svc.service.input.paused
        assert svc.service.pending == 0
    finally:
        await svc.close()
