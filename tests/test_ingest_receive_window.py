"""A backlog larger than the packet id space, drained by an ingest that batches widely.

Mosquitto 2.0.11 gives each queued message its packet id when it queues it, so a backlog
of more than 65,535 messages holds every id twice or more, and the queue's order is the
only thing keeping two holders of one id apart. It also sends more than the client's
Receive Maximum once the client acknowledges (inflight quota bug, fixed in 2.0.13): each
PUBACK for the oldest message in flight moves up to Receive Maximum further messages from
the queue into flight. A client that reads whatever arrives and holds more than 65,535
messages unacknowledged then meets an id it still holds; ingest closed the connection
("packet id ... reused before acknowledgement"), the broker sent the same flight again
on the next connection, and the drain never finished. Two ingest processes met it on a
100,000-message backlog with default settings: each batch is sealed by rows (or payload
bytes), and half the messages a process reads are the other shard's, which add neither,
so its batches held twice the messages their rows suggest. Here shard 0 of 2 batches by
more rows and bytes than the backlog holds, so that only the receive window (or the batch
delay) bounds what it holds: on the unfixed client it meets an id it still holds every
time.

The defence is in the client: it never holds more than the Receive Maximum it announced,
whatever the broker sends (it stops reading until acknowledgements bring it under), and
the service seals its batch when that window is full, since nothing more can arrive.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from f5gdev.devstack.servers import Mosquitto
from loadtests.filler import send_all
from loadtests.mqttbytes import publish_packet
from services.ingest.service import IngestService
from tests.conftest import make_settings
from tests.test_ingest_helpers import inspection, query, running, scalar, topic, wait_count
from tests.test_ingest_processes import _devices

MESSAGES = 80_000  # the first Receive Maximum (8,000) plus more than 65,535
DEVICES = 10


@pytest.mark.slow
async def test_a_backlog_beyond_the_packet_id_space_drains_exactly_once(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    broker = new_broker()
    url = new_database()
    settings = make_settings(
        url,
        broker.port,
        ingest={
            "client_id": f"window-{uuid.uuid4().hex[:8]}",
            "shard_index": 0,
            "shard_count": 2,
            "receive_maximum": 8000,  # as in the failing drains (MESSAGES depends on it)
            # Batches wider than the backlog: only the receive window bounds what is held.
            "batch_max_rows": 200_000,
            "batch_max_delay_ms": 10_000,
        },
    )
    async with running(settings):
        pass  # the persistent session and its subscription exist from now on

    mine = _devices(0, 2, DEVICES // 2)
    theirs = _devices(1, 2, DEVICES // 2)
    per_device = MESSAGES // DEVICES
    order = [(s, d) for s in range(1, per_device + 1) for d in mine + theirs]
    packets = [
        publish_packet(topic("shards", "inspection", d), inspection(s), i % 65535 + 1)
        for i, (s, d) in enumerate(order)
    ]
    acked = await asyncio.to_thread(send_all, "127.0.0.1", broker.port, "wrap-filler", packets)
    assert acked == MESSAGES

    async with running(settings) as service:
        sql = "SELECT count(*) FROM inspections WHERE project_id = 'shards'"
        expected = per_device * len(mine)
        try:
            stored = await wait_count(url, sql, expected, within=180)
        except AssertionError as exc:
            reconnects = _reconnects(service)
            raise AssertionError(f"{exc}; reconnects {reconnects:g}") from None
        assert _reconnects(service) == 0
    rows = await query(
        url,
        "SELECT device_id, count(*) AS n, count(DISTINCT seq) AS d FROM inspections "
        "WHERE project_id = 'shards' GROUP BY 1",
    )
    lost = expected - stored
    duplicated = sum(r["n"] - r["d"] for r in rows)
    assert (lost, duplicated) == (0, 0)
    assert sorted(r["device_id"] for r in rows) == sorted(mine)
    assert await scalar(url, "SELECT count(*) FROM dead_letters") == 0


def _reconnects(service: IngestService) -> float:
    value = service.metrics.registry.get_sample_value("factory5g_ingest_reconnects_total")
    return value or 0.0
