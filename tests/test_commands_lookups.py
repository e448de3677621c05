"""The commander's statements reach a command by its id and a device by its key, however
long the device's history and however many devices the plant has.

A plant keeps its commands: a device that has received thousands has thousands of rows,
and a reply or a claim that read them (or every device) would slow down as the plant
ages. Each test builds such a history, analyses it as autovacuum would, and reads what
the statement touched as the commander runs it (a cached generic plan)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import orjson

from services.commands.service import _CLAIM, _REPLY_BATCH
from services.core.db import asyncpg_dsn

HISTORY = 3_000  # commands one device has already received
DEVICES = 5_000


async def _plant(url: str) -> tuple[asyncpg.Connection, uuid.UUID]:
    """DEVICES devices; d00001 and d00002 share HISTORY completed commands, interleaved;
    one more command of d00001 is `sent` and waits for its reply. Analysed."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    await conn.execute(
        "INSERT INTO devices (project_id, device_id, kind, online) "
        "SELECT 'p', 'd' || lpad(i::text, 5, '0'), 'k', true FROM generate_series(0, $1) i",
        DEVICES - 1,
    )
    await conn.execute(
        "INSERT INTO commands (id, project_id, device_id, kind, name, protocol, params, state,"
        " actor, deadline, created_at, finished_at) "
        "SELECT gen_random_uuid(), 'p', 'd0000' || (1 + i % 2), 'k', 'ping', 'native', '{}',"
        " 'completed', 'a', now() - interval '1 day', now() - interval '2 days', now() "
        "FROM generate_series(1, $1) i",
        2 * HISTORY,
    )
    waiting = uuid.uuid4()
    await conn.execute(
        "INSERT INTO commands (id, project_id, device_id, kind, name, protocol, params, state,"
        " actor, deadline, sent_at) "
        "VALUES ($1, 'p', 'd00001', 'k', 'ping', 'native', '{}', 'sent', 'a',"
        " now() + interval '1 minute', now())",
        waiting,
    )
    await conn.execute("ANALYZE devices; ANALYZE commands; ANALYZE command_events")
    await conn.execute("SET plan_cache_mode = force_generic_plan")
    return conn, waiting


async def _explained(conn: asyncpg.Connection, sql: str, *args: Any) -> dict[str, Any]:
    """EXPLAIN (ANALYZE, BUFFERS) of `sql` as a prepared statement, rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        raw = await conn.fetchval("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, *args)
    finally:
        await tx.rollback()
    plan: dict[str, Any] = orjson.loads(raw)[0]["Plan"]
    return plan


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


def _blocks(plan: dict[str, Any]) -> int:
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


def test_a_reply_reads_its_command_not_the_devices_history(
    new_database: Callable[..., str],
) -> None:
    async def go() -> None:
        conn, waiting = await _plant(new_database())
        try:
            plan = await _explained(
                conn, _REPLY_BATCH, [waiting], ["p"], ["d00001"], ["accepted"], [None],
                [None], ["{}"], ["completed"], [None], [None], ["{}"], [0],
            )  # fmt: skip
            # One command located, locked, updated, two events written: tens of buffers.
            # Through the device's index it would be one per history row.
            assert _blocks(plan) < 200, (_blocks(plan), plan)
            scans = {
                (n["Node Type"], n.get("Index Name"))
                for n in _nodes(plan)
                if n.get("Relation Name") == "commands" and n["Node Type"].endswith("Scan")
            }
            assert scans == {("Index Scan", "commands_pkey")}, scans
        finally:
            await conn.close()

    asyncio.run(go())


def test_a_claim_looks_up_the_devices_of_queued_commands_only(
    new_database: Callable[..., str],
) -> None:
    async def go() -> None:
        conn, _waiting = await _plant(new_database())
        try:
            await conn.execute(
                "INSERT INTO commands (id, project_id, device_id, kind, name, protocol, params,"
                " state, actor, deadline) VALUES ($1, 'p', 'd00002', 'k', 'ping', 'native',"
                " '{}', 'queued', 'a', now() + interval '1 minute')",
                uuid.uuid4(),
            )
            plan = await _explained(conn, _CLAIM, 200)
            on_devices = [n for n in _nodes(plan) if n.get("Relation Name") == "devices"]
            assert on_devices, plan
            # Every visit of the devices table is one key lookup, never a scan of all.
            assert all(n["Node Type"] == "Index Scan" for n in on_devices), on_devices
            assert sum(int(n["Actual Rows"]) for n in on_devices) == 1, on_devices
        finally:
            await conn.close()

    asyncio.run(go())
