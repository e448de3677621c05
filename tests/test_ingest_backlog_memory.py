"""A backlog of arrays is read under backpressure from the first message, not all at once.

Ingest bounds what it holds (read, not yet committed) by pausing the MQTT reader while
the writer has a batch queued per connection. A persistent session's queued messages
arrive straight after CONNACK, up to the broker's Receive Maximum of them, before the
SUBACK of the resubscription; while the pause waited for that SUBACK, a drain of arrays of
50 records read 8,000 messages (400,000 rows) before the first backpressure took hold and
ingest's RSS reached 403 MB (`bench ingest-drain-arrays`, issue 21). Here a backlog of
arrays is queued in ingest's session on a real broker while ingest is stopped, ingest is
started with a Receive Maximum above the backlog, and every seal and commit is counted:
the rows held at once must stay within what the writer queue allows, and every record
must be stored once.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from loadtests.filler import fill
from services.ingest.service import IngestService
from services.protocols.batch import Batch
from tests.conftest import make_settings
from tests.test_ingest_helpers import running, wait_count, wait_until

MESSAGES = 1_500
RECORDS = 20  # per message: 30,000 rows in all
BATCH_ROWS = 1_000
WRITERS = 1


async def test_a_backlog_of_arrays_is_read_under_backpressure(
    new_database: Callable[[], str], broker: Mosquitto
) -> None:
    url = new_database()
    settings = make_settings(
        url,
        broker.port,
        ingest={
            "client_id": f"arrays-{uuid.uuid4().hex[:8]}",
            "receive_maximum": 2 * MESSAGES,  # the broker may send the whole backlog at once
            "batch_max_rows": BATCH_ROWS,
            "writers": WRITERS,
        },
    )
    # Subscribe once, so that the broker queues for ingest's session while it is stopped.
    async with running(settings):
        pass
    filled = fill("127.0.0.1", broker.port, "link", "mem", 30, MESSAGES, 1, RECORDS)
    assert filled.acked == MESSAGES

    service = IngestService(settings)
    held = peak = held_messages = peak_messages = 0
    sealed, committed = service.batcher._on_sealed, service.writer.on_committed

    def on_sealed(batch: Batch) -> None:
        nonlocal held, peak, held_messages, peak_messages
        held += batch.nrows
        held_messages += len(batch)
        peak = max(peak, held)
        peak_messages = max(peak_messages, held_messages)
        sealed(batch)

    def on_committed(batch: Batch) -> None:
        nonlocal held, held_messages
        held -= batch.nrows
        held_messages -= len(batch)
        committed(batch)

    service.batcher._on_sealed = on_sealed
    service.writer.on_committed = on_committed
    stop = asyncio.Event()
    task = asyncio.ensure_future(service.run_until(stop))
    try:
        rows = await wait_count(url, "SELECT count(*) FROM link_kpis", MESSAGES * RECORDS, 60)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert rows == MESSAGES * RECORDS
    # The writer queue holds `writers` batches before the reader pauses, each writer
    # writes one, and one is filling: a batch is at most BATCH_ROWS plus one message.
    bound = (2 * WRITERS + 1) * (BATCH_ROWS + RECORDS)
    assert peak <= bound, f"held {peak:,} rows ({peak_messages:,} messages) at once"


async def test_a_stop_while_paused_before_the_suback_disconnects_and_loses_nothing(
    new_database: Callable[[], str], broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """The database is down, so the writer holds its batches and the reader pauses with
    the SUBACK still behind the queued messages; a stop then must still drain (bounded by
    `shutdown_timeout_s`) and disconnect, not wait for a SUBACK it will never read, and
    what was read but not committed stays unacknowledged for the next start."""
    url = new_database()
    ingest = {
        "client_id": f"stop-{uuid.uuid4().hex[:8]}",
        "receive_maximum": 1_000,
        "batch_max_rows": BATCH_ROWS,
        "writers": WRITERS,
        "shutdown_timeout_s": 2.0,
    }
    settings = make_settings(url, broker.port, ingest=ingest)
    async with running(settings):
        pass
    filled = fill("127.0.0.1", broker.port, "link", "stop", 10, 300, 1, RECORDS)
    assert filled.acked == 300

    down = make_settings(
        f"postgresql://nobody:nothing@127.0.0.1:{free_port()}/none",
        broker.port,
        ingest=ingest,
        database={"connect_timeout_s": 1.0},
    )
    service = IngestService(down)
    stop = asyncio.Event()
    task = asyncio.ensure_future(service.run_until(stop))

    async def paused() -> bool:
        return service.consumer.session.paused and service.writer.pending >= 2

    await wait_until(paused, 30, 0.02)
    assert not service.consumer.connected  # the SUBACK is still unread
    stop.set()
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(task, 30)
    assert "MQTT disconnect did not finish in time" not in caplog.text

    async with running(settings):
        rows = await wait_count(url, "SELECT count(*) FROM link_kpis", 300 * RECORDS, 60)
    assert rows == 300 * RECORDS
