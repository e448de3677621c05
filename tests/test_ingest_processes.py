"""Several ingest processes on one host: each its own persistent session and shard.

`factory5g ingest --processes N` (or `F5G_INGEST__PROCESSES`) forks N ingest processes;
process i keeps its own persistent session (client id `{client_id}-{i}of{N}`) with a plain
subscription, which Mosquitto keeps with its queue while ingest is down and across broker
restarts, and stores the devices of its shard (CRC-32, `shard_count` times N shards). The
tests queue a backlog while ingest is stopped, start it, and count every record: none
lost, none stored twice, each process storing its share. Also: a replica that is sent
only other shards' messages acknowledges them (they used to wait for a message of its own,
holding the broker's Receive Maximum and, at worst, stalling its session for good).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from services.core.settings import load_settings
from services.ingest.service import process_settings
from services.protocols.adapters.native import NativeAdapter
from tests.conftest import make_settings
from tests.test_ingest_helpers import (
    REPO,
    ingest_env,
    inspection,
    publish,
    query,
    rows_written,
    running,
    scalar,
    topic,
    wait_count,
    wait_until,
)


def _devices(shard: int, count: int, n: int) -> list[str]:
    """`n` device ids whose messages shard `shard` of `count` stores."""
    owner = NativeAdapter("f5g/v1", shard, count)
    out: list[str] = []
    i = 0
    while len(out) < n:
        device = f"cam-{i}"
        if owner.owns(topic("shards", "inspection", device)):
            out.append(device)
        i += 1
    return out


async def test_a_replica_sent_only_other_shards_messages_acknowledges_them(
    new_database: Callable[[], str], broker: Mosquitto
) -> None:
    """Shard 1 of 2 gets 200 messages of shard 0's device and none of its own."""
    tag = uuid.uuid4().hex[:8]
    url = new_database()
    settings = make_settings(
        url,
        broker.port,
        ingest={
            "client_id": f"shard1-{tag}",
            "shard_index": 1,
            "shard_count": 2,
            "receive_maximum": 20,
            "batch_max_delay_ms": 20,
        },
    )
    (device,) = _devices(0, 2, 1)
    messages = [(topic("shards", "inspection", device), inspection(s)) for s in range(1, 201)]
    async with running(settings) as service:
        handled = 0
        fill = service._fill

        def counting(*args: Any) -> None:
            nonlocal handled
            handled += 1
            fill(*args)

        service._fill = counting
        connection = service.consumer.session.connection
        assert connection is not None
        assert await publish(broker.port, messages, window=50) == 200

        async def done() -> bool:
            return handled == 200 and connection.unacknowledged == 0

        try:
            await wait_until(done, 30, 0.05)
        except AssertionError:
            raise AssertionError(
                f"received {handled} of 200, {connection.unacknowledged} unacknowledged"
            ) from None
    assert await scalar(url, "SELECT count(*) FROM inspections") == 0


def test_process_settings_split_shards_and_sessions() -> None:
    base = load_settings(
        ingest={"client_id": "ing", "shard_index": 1, "shard_count": 2, "metrics_port": 9300}
    )
    children = [process_settings(base, i, 3) for i in range(3)]
    assert [c.ingest.client_id for c in children] == ["ing-0of3", "ing-1of3", "ing-2of3"]
    assert [(c.ingest.shard_index, c.ingest.shard_count) for c in children] == [
        (3, 6),
        (4, 6),
        (5, 6),
    ]
    assert [c.ingest.metrics_port for c in children] == [9300, 9301, 9302]
    off = load_settings(ingest={"metrics_port": 0})
    assert process_settings(off, 1, 2).ingest.metrics_port == 0


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "ingest", "--processes", "2"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert code == 0, log.read_text(errors="replace")[-4000:]


@pytest.mark.slow
async def test_two_processes_drain_a_backlog_exactly_once(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto], tmp_path: Path
) -> None:
    broker = new_broker()
    url = new_database()
    settings = make_settings(url, broker.port)
    metrics = _two_free_ports()
    env = ingest_env(
        settings,
        F5G_INGEST__CLIENT_ID=f"ingest-{uuid.uuid4().hex[:6]}",
        F5G_INGEST__METRICS_PORT=str(metrics),
        F5G_LOG_LEVEL="INFO",
    )
    log = tmp_path / "ingest.log"
    devices = [f"cam-{i}" for i in range(40)]

    # First start: the two sessions and their subscriptions exist from now on.
    proc = _start(env, log)
    try:
        await wait_until(
            lambda: asyncio.sleep(0, log.read_text(errors="replace").count("MQTT connected") >= 2),
            60,
            0.1,
        )
    finally:
        _stop(proc, log)

    # While ingest is stopped, the broker queues the backlog in both sessions.
    per_device = 100
    messages = [
        (topic("backlog", "inspection", d), inspection(s))
        for s in range(1, per_device + 1)
        for d in devices
    ]
    assert await publish(broker.port, messages, window=200) == len(messages)

    proc = _start(env, log)
    try:
        sql = "SELECT count(*) FROM inspections WHERE project_id = 'backlog'"
        try:
            await wait_count(url, sql, len(messages), within=180)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log.read_text(errors='replace')[-4000:]}") from None
        shares = [rows_written(metrics + i) for i in range(2)]
    finally:
        _stop(proc, log)

    rows = await query(
        url,
        "SELECT device_id, count(*) AS n, count(DISTINCT seq) AS distinct_seq, min(seq), max(seq) "
        "FROM inspections WHERE project_id = 'backlog' GROUP BY 1",
    )
    assert sorted(r["device_id"] for r in rows) == sorted(devices)
    assert all(r["n"] == per_device for r in rows), "lost or duplicated"
    assert all(r["distinct_seq"] == per_device for r in rows)
    # Each process wrote the rows of its own shard and none of the other's.
    shards = [NativeAdapter("f5g/v1", i, 2) for i in range(2)]
    owned = [
        per_device * sum(s.owns(topic("backlog", "inspection", d)) for d in devices) for s in shards
    ]
    assert min(owned) > 0
    assert shares == owned
    assert await scalar(url, "SELECT count(*) FROM dead_letters") == 0
    text = log.read_text(errors="replace")
    assert "ingest process 0 of 2" in text
    assert "ingest process 1 of 2" in text


def _two_free_ports() -> int:
    """A port p with p + 1 free as well (the processes' metrics ports)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")
