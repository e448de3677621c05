"""One MQTT v5 network connection: CONNECT to DISCONNECT, on an asyncio transport.

Why an `asyncio.Protocol`: the event loop (uvloop in the services) reads up to 256 KiB
per readiness event and hands the bytes over; `pause_reading` stops reading, and TCP flow
control then holds the broker back (backpressure, bounded by our Receive Maximum), while
writes (PUBACKs, PINGREQs) still go out. TLS is the loop's own (`ssl=` context).

While reading is paused the broker's PINGRESPs wait unread, so the keepalive only judges
the broker dead when reading is on and nothing arrived for 1.5 keepalive intervals.

The client itself keeps the Receive Maximum it announced: once that many QoS 1 messages are
unacknowledged it stops reading (and tells `on_window_full`) until acknowledgements bring
it under, whatever the broker sends. Mosquitto 2.0.11 sends more (each PUBACK for the
oldest message in flight moves up to Receive Maximum queued messages into flight; fixed in
2.0.13), and it numbers queued messages when it queues them, so a backlog of more than
65,535 holds each packet id more than once: a client that read on held an id twice
("packet id 8001 reused before acknowledgement"), closed the connection, was sent the
same flight again on the next, and never finished the backlog. Within the window the ids
it holds are consecutive in the broker's queue, so they are distinct.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, cast

from services.core.mqtt import codec
from services.core.mqtt.acks import AckOrder
from services.core.mqtt.codec import ConnectOptions, ProtocolError
from services.core.mqtt.stream import PacketStream, PublishHandler

log = logging.getLogger(__name__)

_REASONS: Final = {
    0x04: "disconnect with will message",
    0x10: "no matching subscribers",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x90: "topic name invalid",
    0x91: "packet identifier in use",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
    0x9E: "shared subscriptions not supported",
    0xA2: "wildcard subscriptions not supported",
}


def reason_name(code: int) -> str:
    return f"0x{code:02x} {_REASONS.get(code, 'success' if code < 0x80 else 'error')}"


class MqttError(Exception):
    """The connection could not be made or was lost; the session reconnects."""


class RefusedError(MqttError):
    """The broker answered with a failure reason code (CONNACK, SUBACK, DISCONNECT)."""

    def __init__(self, what: str, reason: int) -> None:
        super().__init__(f"{what}: {reason_name(reason)}")
        self.reason = reason


class Connection(asyncio.Protocol):
    """Use `await Connection.open(...)`; `closed` completes when the connection ends."""

    def __init__(
        self,
        options: ConnectOptions,
        on_publish: PublishHandler,
        on_window_full: Callable[[], None] | None = None,
    ) -> None:
        """`on_window_full()` runs when the messages held unacknowledged reach the Receive
        Maximum announced in `options`: reading stops until some are acknowledged (a
        batching caller should commit what it holds now, as nothing more arrives)."""
        self.options = options
        self._user_publish = on_publish
        self._window = options.receive_maximum
        self._on_window_full = on_window_full
        self._window_full = False  # reading stopped by the receive window
        self._paused = False  # reading stopped by `pause_reading`
        self._loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self._connack: asyncio.Future[codec.Connack] = self._loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._stream = PacketStream(self._on_publish, self._on_packet)
        self._acks = AckOrder()
        self._waiting: dict[int, asyncio.Future[codec.Ack]] = {}  # SUBSCRIBE/UNSUBSCRIBE
        self._inflight: dict[int, asyncio.Future[int]] = {}  # our QoS 1 PUBLISH
        self._queued: deque[
            tuple[str, bytes, bool, asyncio.Future[int], codec.Properties | None]
        ] = deque()
        self.error: Exception | None = None  # why the connection ended (None: by us)
        self._next_id = 0
        self.server_receive_maximum = 65535
        self.session_present = False
        self.keepalive_s = options.keepalive_s
        self._last_rx = time.monotonic()
        self._ping: asyncio.TimerHandle | None = None
        self._resume_handle: asyncio.Handle | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        options: ConnectOptions,
        on_publish: PublishHandler,
        tls: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
    ) -> Connection:
        """A new connection, connected (see `connect`)."""
        conn = cls(options, on_publish)
        await conn.connect(host, port, tls, timeout_s)
        return conn

    async def connect(
        self, host: str, port: int, tls: ssl.SSLContext | None = None, timeout_s: float = 10.0
    ) -> None:
        """TCP (+TLS), CONNECT, and CONNACK with success, within `timeout_s`.

        PUBLISH packets may follow CONNACK in the same read: `on_publish` can be called
        before this returns."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._loop.create_connection(
                    lambda: self, host, port, ssl=tls, server_hostname=host if tls else None
                )
                connack = await self._connack
        except TimeoutError:
            self.abort()
            raise MqttError(f"no CONNACK from {host}:{port} within {timeout_s:g} s") from None
        except OSError as exc:
            self.abort()
            raise MqttError(f"cannot connect to {host}:{port}: {exc}") from exc
        except BaseException:
            self.abort()
            raise
        if connack.reason >= 0x80:
            self.abort()
            raise RefusedError("connection refused", connack.reason)
        self.session_present = connack.session_present
        props = connack.properties
        rm = props.get(codec.RECEIVE_MAXIMUM)
        if isinstance(rm, int) and rm > 0:
            self.server_receive_maximum = rm
        ka = props.get(codec.SERVER_KEEP_ALIVE)
        if isinstance(ka, int):
            self.keepalive_s = ka
        self._schedule_ping()

    # ------------------------------------------------------------------ Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not `asyncio.Transport` subclasses; they implement it.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(codec.encode_connect(self.options))

    def data_received(self, data: bytes) -> None:
        self._last_rx = time.monotonic()
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            self._stream.feed(data)
        except ProtocolError as exc:
            self._fail(exc, codec.MALFORMED_PACKET)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._finish(
            MqttError(f"connection lost: {exc}" if exc else "broker closed the connection")
        )

    # ------------------------------------------------------------------ incoming

    def keep_properties(self, keep: bool) -> None:
        """Keep each incoming PUBLISH's properties for `publish_properties` (off by default:
        ingest and rules never read them)."""
        self._stream.keep_properties = keep

    def publish_properties(self) -> codec.Properties:
        """Properties of the PUBLISH being handed to `on_publish` (with `keep_properties`).

        A malformed block raises `ProtocolError`, as any malformed packet does."""
        raw = self._stream.properties
        if not raw:
            return {}
        return codec.decode_properties(raw, 0, len(raw))[0]

    def _on_publish(self, topic: str, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        full = qos and self._acks.received(mid) >= self._window
        self._user_publish(topic, payload, mid, qos, dup)
        if full:
            self._window_filled()  # after the message: a batch sealed now includes it

    def _window_filled(self) -> None:
        self._window_full = True
        self._stop_reading()
        if self._on_window_full is not None:
            self._on_window_full()

    def _on_packet(self, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == codec.PUBACK:
            ack = codec.decode_puback(body)
            fut = self._inflight.pop(ack.packet_id, None)
            if fut is None:
                raise ProtocolError(f"PUBACK for unknown packet id {ack.packet_id}")
            if not fut.done():
                fut.set_result(ack.reasons[0])
            self._send_queued()
        elif kind == codec.PINGRESP:
            pass
        elif kind in (codec.SUBACK, codec.UNSUBACK):
            ack = codec.decode_suback(body)
            waiter = self._waiting.pop(ack.packet_id, None)
            if waiter is None:
                raise ProtocolError(f"SUBACK/UNSUBACK for unknown packet id {ack.packet_id}")
            if not waiter.done():
                waiter.set_result(ack)
        elif kind == codec.CONNACK:
            if self._connack.done():
                raise ProtocolError("second CONNACK")
            self._connack.set_result(codec.decode_connack(body))
        elif kind == codec.DISCONNECT:
            reason, props = codec.decode_disconnect(body)
            text = props.get(codec.REASON_STRING)
            err = RefusedError("broker disconnected", reason)
            if isinstance(text, str):
                err = RefusedError(f"broker disconnected ({text})", reason)
            self._stream.stopped = True
            self._finish(err)
            if self._transport is not None:
                self._transport.close()
        else:
            raise ProtocolError(f"unexpected packet type 0x{first:02x}")

    # ------------------------------------------------------------------ requests

    def _new_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._inflight and self._next_id not in self._waiting:
                return self._next_id
        raise MqttError("no free packet identifier")

    def _write(self, data: bytes) -> None:
        if self._transport is None or self.closed.done():
            raise MqttError("not connected")
        self._transport.write(data)

    async def _request(self, packet: bytes, packet_id: int) -> codec.Ack:
        fut: asyncio.Future[codec.Ack] = self._loop.create_future()
        self._waiting[packet_id] = fut
        self._write(packet)
        waits: set[asyncio.Future[Any]] = {fut, self.closed}
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if fut not in done:
            self._waiting.pop(packet_id, None)
            raise MqttError("connection lost while waiting for the broker's answer")
        return fut.result()

    async def subscribe(self, filters: list[tuple[str, int]]) -> list[int]:
        """One reason code per filter: the granted QoS, or >= 0x80 when refused."""
        pid = self._new_id()
        ack = await self._request(codec.encode_subscribe(pid, filters), pid)
        if len(ack.reasons) != len(filters):
            self._fail(ProtocolError("SUBACK with a wrong number of reason codes"))
            raise MqttError("SUBACK with a wrong number of reason codes")
        return ack.reasons

    async def unsubscribe(self, filters: list[str]) -> list[int]:
        pid = self._new_id()
        ack = await self._request(codec.encode_unsubscribe(pid, filters), pid)
        return ack.reasons

    def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: codec.Properties | None = None,
    ) -> asyncio.Future[int]:
        """Send now (QoS 0) or as soon as the broker's Receive Maximum allows (QoS 1).

        The future gives the PUBACK reason code (0 for QoS 0 once written; >= 0x80 means the
        broker refused the message) or fails with `MqttError` if the connection ends first.
        `properties` (e.g. response topic, correlation data, message expiry) go as given.
        """
        fut: asyncio.Future[int] = self._loop.create_future()
        if qos == 0:
            self._write(codec.encode_publish(topic, payload, 0, retain, properties=properties))
            fut.set_result(codec.SUCCESS)
            return fut
        if self.closed.done():
            raise MqttError("not connected")
        codec.encode_publish(topic, b"", 1, retain, packet_id=1)  # ValueError: bad topic
        self._queued.append((topic, payload, retain, fut, properties))
        self._send_queued()
        return fut

    def _send_queued(self) -> None:
        queued = self._queued
        while queued and len(self._inflight) < self.server_receive_maximum:
            topic, payload, retain, fut, props = queued.popleft()
            pid = self._new_id()
            self._inflight[pid] = fut
            self._write(
                codec.encode_publish(topic, payload, 1, retain, packet_id=pid, properties=props)
            )

    def ack(self, packet_ids: list[int]) -> int:
        """Acknowledge handled QoS 1 messages, held back until all earlier ones are.

        Returns the number of PUBACKs written now."""
        ready = self._acks.complete(packet_ids)
        if ready and self._transport is not None and not self.closed.done():
            self._transport.write(codec.encode_pubacks(ready))
            if self._window_full and self._acks.held < self._window:
                self._window_full = False
                if not self._paused:
                    self._start_reading()
        return len(ready)

    @property
    def unacknowledged(self) -> int:
        return self._acks.held

    # ------------------------------------------------------------------ flow control

    def pause_reading(self) -> None:
        self._paused = True
        self._stop_reading()

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if not self._window_full:
            self._start_reading()

    def _stop_reading(self) -> None:
        self._stream.paused = True
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if self._transport is not None and self._transport.is_reading():
            self._transport.pause_reading()

    def _start_reading(self) -> None:
        if not self._stream.paused:
            return
        self._stream.paused = False
        self._last_rx = time.monotonic()
        if self._transport is None:
            return
        if self._stream.buffer:  # complete packets may wait: no read event will come
            self._resume_handle = self._loop.call_soon(self._drain_buffer)
        else:
            self._transport.resume_reading()

    def _drain_buffer(self) -> None:
        self._resume_handle = None
        if self._stream.paused or self._transport is None:
            return
        self._feed(b"")
        if not self._stream.paused and self._transport is not None:
            self._transport.resume_reading()

    @property
    def buffered(self) -> int:
        """Bytes read and not yet handled (at most one read plus one packet)."""
        return len(self._stream.buffer)

    # ------------------------------------------------------------------ keepalive

    def _schedule_ping(self) -> None:
        if self.keepalive_s > 0 and not self.closed.done():
            self._ping = self._loop.call_later(self.keepalive_s, self._keepalive)

    def _keepalive(self) -> None:
        if self.closed.done() or self._transport is None:
            return
        silent = time.monotonic() - self._last_rx
        if not self._stream.paused and silent > 1.5 * self.keepalive_s:
            self._fail(MqttError(f"no packet from the broker for {silent:.0f} s"), 0x8D)
            return
        self._transport.write(codec.PINGREQ_PACKET)
        self._schedule_ping()

    # ------------------------------------------------------------------ closing

    def _fail(self, exc: Exception, reason: int = codec.PROTOCOL_ERROR_RC) -> None:
        """Close after a protocol violation, telling the broker why."""
        log.warning("closing MQTT connection: %s", exc)
        self._stream.stopped = True
        if self._transport is not None:
            self._transport.write(codec.encode_disconnect(reason))
            self._transport.close()
        self._finish(MqttError(str(exc)))

    def _finish(self, exc: Exception) -> None:
        if self._ping is not None:
            self._ping.cancel()
        if not self._connack.done():
            self._connack.set_exception(exc)
            self._connack.exception()  # retrieved: `open` reports it
        for fut in list(self._inflight.values()) + [q[3] for q in self._queued]:
            if not fut.done():
                fut.set_exception(MqttError("connection ended before PUBACK"))
                fut.exception()
        self._inflight.clear()
        self._queued.clear()
        if not self.closed.done():
            self.error = exc
            self.closed.set_result(None)

    async def disconnect(self, reason: int = codec.SUCCESS) -> None:
        """Send DISCONNECT (0: the will is not published) and wait for the close."""
        if self._transport is not None and not self.closed.done():
            self._transport.write(codec.encode_disconnect(reason))
            self._stream.stopped = True
            self._transport.close()
            self._finish(MqttError("disconnected"))
            self.error = None

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._finish(MqttError("aborted"))
