"""A commander that falls far behind its devices' replies loses none of them.

On a starved machine the commander records replies more slowly than the devices send
them: more than its Receive Maximum (1,000 unacknowledged messages) wait in the broker
for it. The benchmark at 50 commands/s on a loaded machine ended runs with commands the
devices had received and answered, never `accepted`. Here the backlog is made for real:
the reply worker's inserts are held by a table lock while a device answers every command
(accepted, completed), then the lock goes and every command must complete, each with its
four events, none dead-lettered.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import asyncpg

from f5gdev.devstack.servers import Mosquitto
from services.core.db import asyncpg_dsn
from tests.test_commands import Device, add_devices, command_settings, commander, fetch, wait_for

N_DEVICES = 20
PER_DEVICE = 60  # 1,200 commands, 2,400 replies: more than twice the Receive Maximum


async def _queue(url: str, ids: list[tuple[uuid.UUID, str]]) -> None:
    """The rows the API would have written (`queued` with its event), in one go."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            await conn.executemany(
                "INSERT INTO commands (id, project_id, device_id, kind, name, params, state, "
                "actor, deadline) VALUES ($1, 'p1', $2, 'press', 'ping', '{}', 'queued', "
                "'test', now() + interval '10 minutes')",
                ids,
            )
            await conn.execute(
                "INSERT INTO command_events (command_id, project_id, device_id, ts, state, actor) "
                "SELECT id, project_id, device_id, created_at, 'queued', actor FROM commands"
            )
    finally:
        await conn.close()


async def test_replies_beyond_the_receive_maximum_are_all_recorded(
    new_database: Callable[..., str], new_broker: Callable[[], Mosquitto]
) -> None:
    url = new_database()
    broker = new_broker()
    names = [f"bl{i:02d}" for i in range(N_DEVICES)]
    await add_devices(url, [("p1", "press", n, True) for n in names])
    settings = command_settings(url, broker.port, client_id="cmd-backlog")
    devices = {n: Device(broker.port, "p1", "press", n, answer=None) for n in names}
    ids = [(uuid.uuid4(), n) for _ in range(PER_DEVICE) for n in names]
    try:
        await wait_for(lambda: all(d.subscribed.is_set() for d in devices.values()))
        async with commander(settings):
            await _queue(url, ids)
            await wait_for(
                lambda: sum(len(d.ids()) for d in devices.values()) == len(ids),
                within=120,
                what="every command sent",
            )
            sent = await wait_for(
                lambda: _count(url, "sent", len(ids)), within=120, what="every command sent"
            )
            assert sent
            hold = await asyncpg.connect(asyncpg_dsn(url))
            try:
                tx = hold.transaction()
                await tx.start()
                # The reply worker's event inserts wait behind this lock: its batch, and the
                # acknowledgements of everything it read, wait with it.
                await hold.execute("LOCK TABLE command_events IN SHARE MODE")
                for cid, n in ids:
                    topic = f"f5g/v1/p1/press/{n}/reply"
                    devices[n].reply(topic, str(cid).encode(), {"status": "accepted"})
                    devices[n].reply(topic, str(cid).encode(), {"status": "completed"})
                await asyncio.sleep(3)  # let the broker queue them; not a figure
                await tx.rollback()
            finally:
                await hold.close()
            done = await _wait_completed(url, len(ids))
            assert done == len(ids), f"{len(ids) - done} of {len(ids)} commands never completed"
        dead = await fetch(url, "SELECT count(*) AS n FROM dead_letters")
        assert dead[0]["n"] == 0
        events = await fetch(url, "SELECT count(*) AS n FROM command_events")
        assert events[0]["n"] == 4 * len(ids)
    finally:
        for d in devices.values():
            d.close()


async def _count(url: str, state: str, n: int) -> bool:
    rows = await fetch(url, "SELECT count(*) AS n FROM commands WHERE state = $1", state)
    return bool(rows[0]["n"] == n)


async def _wait_completed(url: str, n: int) -> int:
    """Completed commands once all are, or after a generous deadline without progress."""
    last, idle = -1, 0
    while True:
        rows = await fetch(url, "SELECT count(*) AS n FROM commands WHERE state = 'completed'")
        done = int(rows[0]["n"])
        if done == n:
            return done
        idle = 0 if done != last else idle + 1
        last = done
        if idle > 300:  # 30 s without one more completed
            return done
        await asyncio.sleep(0.1)


async def test_replies_before_sent_is_committed_are_all_recorded(
    new_database: Callable[..., str], new_broker: Callable[[], Mosquitto]
) -> None:
    url = new_database()
    broker = new_broker()
    names = [f"early{i:02d}" for i in range(N_DEVICES)]
    await add_devices(url, [("p1", "press", n, True) for n in names])
    settings = command_settings(url, broker.port, client_id="cmd-early")
    devices = {n: Device(broker.port, "p1", "press", n) for n in names}
    ids = [(uuid.uuid4(), n) for _ in range(10) for n in names]
    try:
        await wait_for(lambda: all(d.subscribed.is_set() for d in devices.values()))
        async with commander(settings):
            hold = await asyncpg.connect(asyncpg_dsn(url))
            try:
                tx = hold.transaction()
                await tx.start()
                # The senders' `sent` marks wait behind this lock, holding their rows, while
                # the devices answer at once.
                await hold.execute("LOCK TABLE command_events IN SHARE MODE")
                await _queue_without_events(url, ids)
                await wait_for(
                    lambda: sum(len(d.ids()) for d in devices.values()) >= len(ids) // 2,
                    within=60,
                    what="commands sent",
                )
                await asyncio.sleep(2)  # let replies arrive before the marks; not a figure
                await tx.rollback()
            finally:
                await hold.close()
            done = await _wait_completed(url, len(ids))
            assert done == len(ids), f"{len(ids) - done} of {len(ids)} commands never completed"
    finally:
        for d in devices.values():
            d.close()


async def _queue_without_events(url: str, ids: list[tuple[uuid.UUID, str]]) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.executemany(
            "INSERT INTO commands (id, project_id, device_id, kind, name, params, state, "
            "actor, deadline) VALUES ($1, 'p1', $2, 'press', 'ping', '{}', 'queued', "
            "'test', now() + interval '10 minutes')",
            ids,
        )
    finally:
        await conn.close()


async def test_a_reply_naming_another_devices_command_in_the_same_batch_moves_nothing(
    new_database: Callable[..., str], new_broker: Callable[[], Mosquitto]
) -> None:
    """Replies are recorded in bulk, two per command at once: a device answering for another
    device's command must be dead-lettered even when the owner's own replies are in the
    same batch (held together here behind a table lock), and must never move that command."""
    url = new_database()
    broker = new_broker()
    names = ["owner", "stranger"]
    await add_devices(url, [("p1", "press", n, True) for n in names])
    settings = command_settings(url, broker.port, client_id="cmd-stranger")
    devices = {n: Device(broker.port, "p1", "press", n, answer=None) for n in names}
    ids = [(uuid.uuid4(), "owner") for _ in range(20)]
    try:
        await wait_for(lambda: all(d.subscribed.is_set() for d in devices.values()))
        async with commander(settings):
            await _queue(url, ids)
            await wait_for(lambda: _count(url, "sent", len(ids)), within=120, what="all sent")
            hold = await asyncpg.connect(asyncpg_dsn(url))
            try:
                tx = hold.transaction()
                await tx.start()
                await hold.execute("LOCK TABLE command_events IN SHARE MODE")
                for cid, _ in ids:
                    mine, theirs = "f5g/v1/p1/press/owner/reply", "f5g/v1/p1/press/stranger/reply"
                    devices["owner"].reply(mine, str(cid).encode(), {"status": "accepted"})
                    # Between the owner's two replies: it would pair with the first.
                    devices["stranger"].reply(theirs, str(cid).encode(), {"status": "failed"})
                    devices["owner"].reply(mine, str(cid).encode(), {"status": "completed"})
                await asyncio.sleep(3)  # every reply waiting in one batch; not a figure
                await tx.rollback()
            finally:
                await hold.close()
            assert await _wait_completed(url, len(ids)) == len(ids)
            dead = await wait_for(
                lambda: fetch(url, "SELECT reason FROM dead_letters WHERE device_id = 'stranger'"),
                what="the stranger's replies dead-lettered",
            )
            await asyncio.sleep(1)  # the rest of them; not a figure
        dead = await fetch(url, "SELECT reason FROM dead_letters WHERE device_id = 'stranger'")
        assert [r["reason"] for r in dead] == ["unknown_command"] * len(ids)
        events = await fetch(
            url,
            "SELECT state, actor FROM command_events "
            "WHERE state IN ('accepted', 'completed', 'failed')",
        )
        assert {(r["state"], r["actor"]) for r in events} == {
            ("accepted", "device:owner"),
            ("completed", "device:owner"),
        }
        assert len(events) == 2 * len(ids)
    finally:
        for d in devices.values():
            d.close()
