"""`PacketReader` on a real broker: every PUBLISH once and in order, a bounded buffer."""

from __future__ import annotations

import asyncio
import uuid

import aiomqtt
import pytest
import uvloop
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from services.devstack.servers import Mosquitto
from services.ingest.mqttio import PacketReader, enable_manual_ack, send_acks

MESSAGES = 20_000
PAYLOAD = 600  # about one Sparkplug DDATA of 20 metrics
READ_SIZE = 256 * 1024


def _client(broker: Mosquitto, client_id: str) -> aiomqtt.Client:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 600
    props.ReceiveMaximum = 65535
    client = aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier=client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=props,
    )
    enable_manual_ack(client)
    return client


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
    async with _client(broker, client_id) as c:
        await c.subscribe(topic, qos=1)
    async with aiomqtt.Client("127.0.0.1", broker.port, identifier=f"pub-{tag}") as pub:
        for i in range(MESSAGES):
            await pub.publish(topic, i.to_bytes(4, "big") + bytes(PAYLOAD - 4), qos=1)

    loop = asyncio.get_running_loop()
    seen: list[int] = []
    mids: list[int] = []
    max_buffered = 0
    pauses = 0
    done = asyncio.Event()
    client = _client(broker, client_id)

    def on_publish(topic_: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        nonlocal max_buffered, pauses
        seen.append(int.from_bytes(payload[:4], "big"))
        mids.append(mid)
        max_buffered = max(max_buffered, reader.buffered)
        if len(seen) == MESSAGES:
            done.set()
        elif len(seen) % 40 == 0:  # a "batch" is full: pause until it is "committed"
            pauses += 1
            reader.pause()
            # Resumed from a ready callback, as the writer's task does; from a timer,
            # uvloop happens to handle the buffer before the socket.
            loop.call_soon(reader.resume)

    reader = PacketReader(client, on_publish)
    async with client:
        await asyncio.wait_for(done.wait(), 60)
        send_acks(client, mids)

    assert seen == list(range(MESSAGES))
    assert pauses > 400
    # One read plus one incomplete packet at most; before the fix it reached megabytes.
    assert max_buffered <= READ_SIZE + PAYLOAD + 64, max_buffered
