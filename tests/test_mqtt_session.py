"""The MQTT session against a loopback peer written here for faults a real broker never
makes: out-of-order commits must still give PUBACKs in receive order, malformed packets
must end the connection (and only it), refused publishes must reach the caller.

Mosquitto cannot show the order in which a client acknowledges (it accepts any order), so
the peer records the PUBACK packet ids exactly as they arrive on the wire.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from services.core.mqtt import Backoff, ConnectOptions, Endpoint, Session, codec
from services.core.mqtt.stream import PacketStream

Script = Callable[["Peer"], Awaitable[None]]


class Peer:
    """One accepted connection: reads packets, writes raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.packets: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._stream = PacketStream(self._pub, lambda f, b: self.packets.put_nowait((f, b)))

    def _pub(self, topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        body = codec.encode_publish(topic, payload, qos, packet_id=mid)
        self.packets.put_nowait((body[0], body[2:]))  # first byte; body (short packets)

    async def next(self) -> tuple[int, bytes]:
        while self.packets.empty():
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("client closed")
            self._stream.feed(data)
        return self.packets.get_nowait()

    async def handshake(self, connack_props: codec.Properties | None = None) -> None:
        first, _ = await self.next()
        assert first == codec.CONNECT
        body = b"\x00\x00" + codec.encode_properties(connack_props)
        self.writer.write(bytes((codec.CONNACK,)) + codec.encode_varint(len(body)) + body)
        first, body = await self.next()
        assert first == codec.SUBSCRIBE
        n = _count_filters(body)
        suback = body[:2] + b"\x00" + bytes([1] * n)
        self.writer.write(bytes((codec.SUBACK, len(suback))) + suback)


def _count_filters(body: bytes) -> int:
    _props, pos = codec.decode_properties(body, 2, len(body))
    n = 0
    while pos < len(body):
        _, pos = codec.decode_str(body, pos, len(body))
        pos += 1
        n += 1
    return n


async def _serve(script: Script) -> tuple[asyncio.Server, int, list[Peer]]:
    peers: list[Peer] = []

    async def on_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        peer = Peer(r, w)
        peers.append(peer)
        try:
            await script(peer)
        except ConnectionError:
            pass
        finally:
            w.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, peers


def _session(
    port: int, on_publish: Callable[[str, bytes, int, int, bool], None], **kw: object
) -> Session:
    return Session(
        Endpoint("127.0.0.1", port, None, 10.0),
        lambda: ConnectOptions("test", keepalive_s=30),
        [("t/#", 1)],
        on_publish,
        Backoff(0.05, 0.1),
        **kw,  # type: ignore[arg-type]
    )


async def _until(cond: Callable[[], bool], deadline_s: float = 30.0) -> None:
    """Poll `cond` (the peer and the callbacks have no event to wait on) until a deadline."""
    async with asyncio.timeout(deadline_s):
        while not cond():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


MESSAGES = 3000


def test_pubacks_leave_in_receive_order_when_writers_commit_shuffled() -> None:
    """Messages arrive with packet ids in a scrambled (but valid) order; batches of them
    are "committed" by several writers in a shuffled order. The peer must see every
    PUBACK, each exactly once, in the order it sent the PUBLISH packets."""
    asyncio.run(_pubacks_in_order())


async def _pubacks_in_order() -> None:
    rng = random.Random(4602)
    ids = rng.sample(range(1, 65536), MESSAGES)  # ids need not rise; order is what counts
    acked: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        for i, mid in enumerate(ids):
            peer.writer.write(codec.encode_publish("t/x", i.to_bytes(4, "big"), 1, packet_id=mid))
        while len(acked) < MESSAGES:
            first, body = await peer.next()
            if first == codec.PUBACK:
                acked.append(codec.decode_puback(body).packet_id)

    server, port, _ = await _serve(script)
    received: list[tuple[int, int]] = []

    def on_publish(topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        received.append((session.gen, mid))

    session = _session(port, on_publish)
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop))
    await _until(lambda: len(received) == MESSAGES)
    # Batches of 1..60 messages, committed by "writers" in a shuffled order.
    batches: list[list[int]] = []
    pos = 0
    while pos < MESSAGES:
        size = rng.randint(1, 60)
        batches.append([mid for _, mid in received[pos : pos + size]])
        pos += size
    order = list(range(len(batches)))
    rng.shuffle(order)
    assert order[0] != 0
    gen = received[0][0]

    async def writer(batch: list[int], delay: float) -> None:
        await asyncio.sleep(delay)
        session.ack(gen, batch)

    await asyncio.gather(*(writer(batches[b], rank * 0.001) for rank, b in enumerate(order)))
    await _until(lambda: len(acked) == MESSAGES)
    stop.set()
    await task
    server.close()
    assert sorted(acked) == sorted(ids)  # each exactly once
    rank = {mid: i for i, mid in enumerate(ids)}
    done = [False] * MESSAGES
    first_open = 0
    early = 0  # PUBACKs written while an earlier-received message was still unacknowledged
    for mid in acked:
        done[rank[mid]] = True
        if rank[mid] != first_open:
            early += 1
        while first_open < MESSAGES and done[first_open]:
            first_open += 1
    assert early == 0, f"{early} of {MESSAGES} PUBACKs left before an earlier message's"
    assert session.connection is None


def test_malformed_packet_ends_only_that_connection() -> None:
    """A PUBLISH whose topic is not UTF-8: DISCONNECT 0x81 to the peer, a new connection
    afterwards, and the messages before and after the bad packet are delivered."""
    asyncio.run(_malformed())


async def _malformed() -> None:
    disconnect_reasons: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        first_conn = len(peers) == 1
        peer.writer.write(codec.encode_publish("t/ok", b"before" if first_conn else b"after", 0))
        if first_conn:
            peer.writer.write(b"\x30\x06\x00\x02\xc3\x28ab")  # invalid UTF-8 topic
        while True:
            first, body = await peer.next()
            if first == codec.DISCONNECT:
                disconnect_reasons.append(codec.decode_disconnect(body)[0])
                return

    server, port, peers = await _serve(script)
    got: list[bytes] = []
    session = _session(port, lambda t, p, m, q, d: got.append(p))
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop))
    await _until(lambda: got == [b"before", b"after"])
    stop.set()
    await task
    server.close()
    assert disconnect_reasons[0] == codec.MALFORMED_PACKET
    assert len(peers) == 2


def test_publish_reason_codes_reach_the_caller_and_receive_maximum_is_kept() -> None:
    """The peer allows 2 QoS 1 messages in flight (CONNACK Receive Maximum) and refuses
    every other one with 0x87: the client never exceeds 2 and each caller gets its code."""
    asyncio.run(_publish_codes())


async def _publish_codes() -> None:
    max_inflight = 0

    async def script(peer: Peer) -> None:
        nonlocal max_inflight
        await peer.handshake({codec.RECEIVE_MAXIMUM: 2})
        inflight: list[int] = []
        seen = 0
        while seen < 10:
            while True:  # take everything the client sent so far
                first, body = await peer.next()
                assert first & 0xF0 == codec.PUBLISH
                pub = codec.decode_publish(first, body)
                inflight.append(pub.packet_id)
                max_inflight = max(max_inflight, len(inflight))
                if peer.packets.empty():
                    break
            for pid in inflight:
                reason = 0x87 if seen % 2 else 0
                seen += 1
                peer.writer.write(codec.encode_puback(pid, reason))
            inflight.clear()
        await peer.next()

    server, port, _ = await _serve(script)
    session = _session(port, lambda *a: None)
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop))
    await asyncio.wait_for(session.up.wait(), 30)
    futures = [session.publish("t/out", bytes([i]), 1) for i in range(10)]
    codes = await asyncio.wait_for(asyncio.gather(*(f for f in futures if f)), 30)
    stop.set()
    await task
    server.close()
    assert codes == [0, 0x87] * 5
    assert max_inflight == 2


def test_the_client_keeps_its_receive_maximum_when_the_broker_does_not() -> None:
    """The client announces Receive Maximum 10; the peer sends 40 messages at once, with
    packet ids 1..20 twice (as Mosquitto 2.0.11 does past its window on a backlog of more
    than 65,535). The client reads 10, stops, and reads on only as it acknowledges: every
    message arrives once on one connection, and no id is ever held twice. A pause by the
    caller outlasts the acknowledgements that reopen the window."""
    asyncio.run(_receive_window())


async def _receive_window() -> None:
    acked: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        for i in range(40):
            peer.writer.write(codec.encode_publish("t/x", bytes([i]), 1, packet_id=i % 20 + 1))
        while len(acked) < 40:
            first, body = await peer.next()
            if first == codec.PUBACK:
                acked.append(codec.decode_puback(body).packet_id)

    server, port, peers = await _serve(script)
    got: list[int] = []
    fulls: list[int] = []

    def on_publish(topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        got.append(payload[0])

    session = Session(
        Endpoint("127.0.0.1", port, None, 10.0),
        lambda: ConnectOptions("test", keepalive_s=30, receive_maximum=10),
        [("t/#", 1)],
        on_publish,
        Backoff(0.05, 0.1),
        on_window_full=lambda: fulls.append(len(got)),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop))
    await _until(lambda: len(got) == 10)
    conn = session.connection
    assert conn is not None
    assert fulls == [10]
    await asyncio.sleep(0.2)  # the other 30 are on the socket; none is read
    assert len(got) == 10
    session.ack(session.gen, [i % 20 + 1 for i in range(5)])
    await _until(lambda: len(got) == 15)
    session.pause()
    session.ack(session.gen, [i % 20 + 1 for i in range(5, 15)])
    await asyncio.sleep(0.2)
    assert len(got) == 15  # paused by the caller: acknowledgements do not resume reading
    session.resume()
    await _until(lambda: len(got) == 25)
    session.ack(session.gen, [i % 20 + 1 for i in range(15, 25)])
    await _until(lambda: len(got) == 35)
    session.ack(session.gen, [i % 20 + 1 for i in range(25, 35)])
    await _until(lambda: len(got) == 40)
    session.ack(session.gen, [i % 20 + 1 for i in range(35, 40)])
    await _until(lambda: len(acked) == 40)
    stop.set()
    await task
    server.close()
    assert got == list(range(40))
    assert acked == [i % 20 + 1 for i in range(40)]
    assert fulls == [10, 15, 25, 35]
    assert len(peers) == 1  # one connection: no id was taken as reused


def test_no_new_connection_while_paused() -> None:
    """The caller paused (its writer is behind) and the connection drops: the session
    reconnects only once resumed. Otherwise every reconnection would bring another window
    of the persistent session's queue (sent right after CONNACK, before a pause applies)
    on top of what the caller could not yet write."""
    asyncio.run(_paused_reconnect())


async def _paused_reconnect() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake()
        peer.writer.write(codec.encode_publish("t/x", b"m", 1, packet_id=len(peers)))
        await peer.writer.drain()
        # and the connection ends (the script returns)

    server, port, peers = await _serve(script)
    got: list[int] = []

    def on_publish(topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        got.append(mid)
        session.pause()

    session = _session(port, on_publish)
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop))
    await _until(lambda: got == [1])
    # Paused from the message on, the client reads nothing more, so it would not see the
    # peer's close either: the drop comes as a keepalive timeout would end it, by abort.
    conn = session.connection
    if conn is not None:
        conn.abort()
    await _until(lambda: session.connection is None)
    await asyncio.sleep(0.5)  # backoff is 0.05-0.1 s: a reconnection would have come
    assert len(peers) == 1
    session.resume()
    await _until(lambda: got == [1, 2])
    stop.set()
    await asyncio.wait_for(task, 30)
    server.close()


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    """Ingest's cap bounds the window after a broker restart (services/ingest/consumer.py)."""
    b = Backoff(0.25, 1.0, jitter=False)
    assert [b.next_delay() for _ in range(5)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    b.reset()
    assert b.next_delay() == 0.25
    jittered = Backoff(0.25, 1.0)
    assert all(0.125 <= jittered.next_delay() <= 1.5 for _ in range(50))


def test_keepalive_drops_a_silent_broker_but_not_while_paused() -> None:
    """A peer that stops answering PINGREQ is given up after 1.5 keepalive intervals
    (DISCONNECT 0x8D, then a new connection). While reading is paused (backpressure) its
    answers wait unread, so silence then must not end the session."""
    asyncio.run(_keepalive())


async def _keepalive() -> None:
    reasons: list[int] = []
    pings = 0

    async def script(peer: Peer) -> None:
        nonlocal pings
        await peer.handshake()
        while True:  # never answers
            first, body = await peer.next()
            if first == codec.PINGREQ:
                pings += 1
            if first == codec.DISCONNECT:
                reasons.append(codec.decode_disconnect(body)[0])
                return

    server, port, peers = await _serve(script)
    session = Session(
        Endpoint("127.0.0.1", port, None, 10.0),
        lambda: ConnectOptions("test", keepalive_s=1),
        [("t/#", 1)],
        lambda *a: None,
        Backoff(0.05, 0.1),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(session.run(stop))
    await _until(lambda: len(peers) >= 2)  # the silent first connection was given up
    assert reasons[0] == 0x8D
    # Paused: PINGREQs still go out, silence is tolerated for several intervals. The pause
    # comes once the new connection is up: a paused session makes no new connection, and
    # a connection paused before its SUBACK reads nothing more (not even the SUBACK).
    await _until(session.up.is_set)
    session.pause()
    before, pings_before = len(peers), pings
    await _until(lambda: pings >= pings_before + 3)
    assert len(peers) == before
    stop.set()
    await task
    server.close()
