"""The MQTT session's reader on a real broker: every PUBLISH once and in order, a bounded buffer.

(The reader was `services/ingest/mqttio.py`'s `PacketReader`; it is now the packet stream
of `services.core.mqtt.Connection`, which ingest and rules read through.)"""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest
import uvloop

from f5gdev.devstack.servers import Mosquitto
from services.core.mqtt import Connection, ConnectOptions

MESSAGES = 20_000
PAYLOAD = 600  # about one Sparkplug DDATA of 20 metrics
READ_SIZE = 256 * 1024


def _options(client_id: str) -> ConnectOptions:
    return ConnectOptions(client_id, clean_start=False, session_expiry_s=600)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_backlog_read_with_pauses_keeps_order_and_a_bounded_buffer(
    broker: Mosquitto, loop: str
) -> None:
    """Backpressure pauses the reader after a few packets, again and again, while the
    broker has megabytes queued for it: what once grew the buffer by a read per cycle.
    Services run on uvloop, which may run a socket's readiness callback before callbacks
    scheduled with `call_soon`, so both loops are tested."""
    runner = uvloop.run if loop == "uvloop" else asyncio.run
    runner(_read_backlog_with_pauses(broker))


async def _read_backlog_with_pauses(broker: Mosquitto) -> None:
    tag = uuid.uuid4().hex[:8]
    topic = f"test/{tag}/data"
    client_id = f"reader-{tag}"
    # Register the session and its subscription, then queue the backlog while it is away.
    c = await Connection.open("127.0.0.1", broker.port, _options(client_id), _ignore)
    assert await c.subscribe([(topic, 1)]) == [1]
    await c.disconnect()
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"pub-{tag}") as pub:
        for i in range(MESSAGES):
            await pub.publish(topic, i.to_bytes(4, "big") + bytes(PAYLOAD - 4), qos=1)

    loop = asyncio.get_running_loop()
    seen: list[int] = []
    mids: list[int] = []
    max_buffered = 0
    pauses = 0
    done = asyncio.Event()

    def on_publish(topic_: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        nonlocal max_buffered, pauses
        seen.append(int.from_bytes(payload[:4], "big"))
        mids.append(mid)
        max_buffered = max(max_buffered, reader.buffered)
        if len(seen) == MESSAGES:
            done.set()
        elif len(seen) % 40 == 0:  # a "batch" is full: pause until it is "committed"
            pauses += 1
            reader.pause_reading()
            # Resumed from a ready callback, as the writer's task does; from a timer,
            # uvloop happens to handle the buffer before the socket.
            loop.call_soon(reader.resume_reading)

    reader = Connection(_options(client_id), on_publish)
    await reader.connect("127.0.0.1", broker.port)
    await asyncio.wait_for(done.wait(), 60)
    assert reader.ack(mids) == MESSAGES
    await reader.disconnect()

    assert seen == list(range(MESSAGES))
    assert pauses > 400
    # One read plus one incomplete packet at most; before the fix it reached megabytes.
    assert max_buffered <= READ_SIZE + PAYLOAD + 64, max_buffered


def _ignore(topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
    pass
