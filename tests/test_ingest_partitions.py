"""Two ingest replicas on Mosquitto, split by device hash, across a broker restart.

Mosquitto 2.0 does not restore shared subscriptions (`$share/...`) from its persistence
file, so a share group drops what devices publish between the broker's return and the
replicas' resubscription. Sharded replicas (`F5G_INGEST__SHARD_COUNT`, no share group)
each keep a persistent session with a plain subscription, which the broker restores with
its queue; each stores the devices of its shard and acknowledges the others. The test
restarts the real broker under a steady publish and counts: every acknowledged message
stored exactly once, each replica storing its share.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from services.protocols.adapters.native import NativeAdapter
from tests.test_ingest_faults import (
    SteadyPublisher,
    _assert_exactly_acked,
    _settings,
    _wait_healthy,
)
from tests.test_ingest_helpers import IngestProcess, ingest_env, query, rows_written, topic

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def _replicas(
    url: str, broker: Mosquitto, tmp_path: Path, count: int
) -> Iterator[list[tuple[IngestProcess, int]]]:
    started: list[tuple[IngestProcess, int]] = []
    try:
        for index in range(count):
            port = free_port()
            settings = _settings(url, broker.port, port)
            env = ingest_env(
                settings,
                F5G_INGEST__CLIENT_ID=f"ingest-{index}-{uuid.uuid4().hex[:6]}",
                F5G_INGEST__SHARE_GROUP="",
                F5G_INGEST__SHARD_INDEX=str(index),
                F5G_INGEST__SHARD_COUNT=str(count),
            )
            proc = IngestProcess(env, tmp_path / f"ingest-{index}.log")
            proc.start()
            started.append((proc, port))
        yield started
    finally:
        for proc, _ in started:
            proc.stop_quietly()


def test_native_devices_split_by_stable_hash() -> None:
    """Every topic has exactly one owner among the replicas, the same in every process,
    and a broken topic too (it is dead-lettered once)."""
    shards = [NativeAdapter("f5g/v1", i, 3) for i in range(3)]
    topics = [f"f5g/v1/p{p}/inspection/cam-{d}/inspection" for p in range(5) for d in range(40)]
    topics += ["f5g/v1/!!/x", "f5g/v1/p/inspection"]
    owners = [[s.owns(t) for s in shards].count(True) for t in topics]
    assert owners == [1] * len(topics)
    assert all(sum(s.owns(t) for t in topics) > 20 for s in shards[:3])
    assert not NativeAdapter("f5g/v1", 0, 2).shared()
    assert NativeAdapter("f5g/v1").shared()
    with pytest.raises(ValueError, match="shard_index 2"):
        NativeAdapter("f5g/v1", 2, 2)


async def test_broker_restart_with_two_sharded_replicas_loses_nothing(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> None:
    broker = new_broker()
    url = new_database()
    pub = SteadyPublisher(broker.port, "partitions", rate=800)
    with _replicas(url, broker, tmp_path, 2) as replicas:
        for proc, port in replicas:
            await _wait_healthy(port, proc)
        pub.start()
        await asyncio.sleep(2)
        await asyncio.to_thread(broker.restart)
        await asyncio.sleep(3)
        await pub.finish()
        try:
            await _assert_exactly_acked(url, pub, within=60)
        except AssertionError as exc:
            logs = "\n".join(proc.log() for proc, _ in replicas)
            raise AssertionError(f"{exc}\n{logs}") from None
        # Each replica wrote the rows of its own devices and none of the other's.
        rows = await query(
            url,
            "SELECT device_id, count(*) FROM inspections WHERE project_id = $1 GROUP BY 1",
            "partitions",
        )
        shards = [NativeAdapter("f5g/v1", i, 2) for i in range(2)]
        expected = [
            sum(n for device, n in rows if shard.owns(topic("partitions", "inspection", device)))
            for shard in shards
        ]
        shares = [rows_written(port) for _, port in replicas]
        assert all(n > 0 for n in expected), expected
        assert shares == expected
        for proc, port in replicas:
            await _wait_healthy(port, proc)
            assert proc.terminate() == 0, proc.log()
