"""The few places where ingest reaches below aiomqtt into paho-mqtt, and why.

aiomqtt gives connection handling, subscriptions and publishing; its message path does
not fit a service that must acknowledge after commit at tens of thousands of messages a
second:

* aiomqtt acknowledges on receipt and queues without bound. Paho's manual-ack mode keeps
  QoS 1 messages unacknowledged until `send_acks` writes their PUBACKs (after commit).
* Paho reads a packet with three `recv` calls of one byte, one byte and the rest, and
  aiomqtt handles one packet per readiness event. `BufferedSocket` turns that into one
  `recv` of up to 256 KiB per many packets, and `FastReader` parses until the buffer is
  empty, so a burst of messages costs one event-loop wake-up.
* Paho queues one write per PUBACK. `send_acks` packs a whole batch of PUBACKs (4 bytes
  each) into one buffer and one write.
* To stop reading (backpressure, shutdown) the reader is removed from the event loop;
  TCP flow control then holds the broker back. While paused, paho would take the missing
  PINGRESP for a dead broker, so `FastReader` keeps its receive clock fresh; the broker
  still gets our PINGREQs and acknowledgements and so keeps the session alive.

Everything here is tied to paho-mqtt 2.x internals (pinned `<3` in pyproject.toml);
`tests/test_ingest_mqttio.py` checks them against a real broker.
"""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any, Final

import aiomqtt
import paho.mqtt.client as paho

_READ_SIZE: Final = 256 * 1024
_PUBACK: Final = 0x40
# PUBACK with remaining length 2 and the packet id: MQTT v5 allows leaving out reason
# code 0 (success) and properties.
_PUBACK_HEAD: Final = 0x40020000


class BufferedSocket:
    """A paho socket whose `recv` is served from one large read."""

    __slots__ = ("_buf", "_pos", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            data: bytes = self._sock.recv(_READ_SIZE)  # raises BlockingIOError when empty
            if len(data) <= n:
                return data
            self._buf, self._pos = data, n
            return data[:n]
        end = pos + n
        self._pos = end
        return buf[pos:end]

    def pending(self) -> int:
        """Bytes already read but not consumed (paho and aiomqtt call this for TLS)."""
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def send(self, data: bytes) -> int:
        sent: int = self._sock.send(data)
        return sent

    def fileno(self) -> int:
        fd: int = self._sock.fileno()
        return fd

    def close(self) -> None:
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class FastReader:
    """Reads a connected aiomqtt client's socket in bulk; can pause and resume reading."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client
        # Typed loosely: this module reaches into paho attributes its stubs do not describe.
        paho_client: Any = client._client
        self._paho = paho_client
        self._loop = asyncio.get_running_loop()
        sock = paho_client._sock
        if sock is None:
            raise aiomqtt.MqttError("not connected")
        self._sock = BufferedSocket(sock)
        paho_client._sock = self._sock
        self._fd = self._sock.fileno()
        self.paused = False
        self._closed = False
        self._keepalive_task: asyncio.Task[None] | None = None
        # aiomqtt registered its own one-packet reader while connecting; replace it.
        self._loop.remove_reader(self._fd)
        self._loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        paho_client = self._paho
        sock = self._sock
        try:
            while not self.paused:
                if paho_client._sock is not sock:
                    return  # paho closed the connection
                if paho_client.loop_read() != paho.MQTT_ERR_SUCCESS:
                    return  # paho reported the disconnect to aiomqtt
                if sock.pending() <= 0:
                    return
        except Exception as exc:
            # As aiomqtt's own reader does: a read error means the connection broke.
            disconnected = self._client._disconnected
            if not disconnected.done():
                disconnected.set_exception(exc)

    def pause(self) -> None:
        if self.paused or self._closed:
            return
        self.paused = True
        self._loop.remove_reader(self._fd)
        if self._keepalive_task is None:
            self._keepalive_task = self._loop.create_task(self._keep_session())

    def resume(self) -> None:
        if not self.paused or self._closed:
            return
        self.paused = False
        if self._paho._sock is self._sock:
            self._loop.add_reader(self._fd, self._on_readable)
            if self._sock.pending() > 0:  # already buffered: no readiness event will come
                self._loop.call_soon(self._on_readable)

    def close(self) -> None:
        self._closed = True
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()

    async def _keep_session(self) -> None:
        try:
            while self.paused and not self._closed:
                # paho.time_func is time.monotonic; see the module docstring.
                self._paho._last_bytes_received = time.monotonic()
                await asyncio.sleep(1.0)
        finally:
            self._keepalive_task = None


def send_acks(client: aiomqtt.Client, mids: list[int]) -> None:
    """Queue the PUBACKs of QoS 1 message ids as one write on the client's connection."""
    if not mids:
        return
    data = struct.pack(f">{len(mids)}I", *[_PUBACK_HEAD | m for m in mids])
    client._client._packet_queue(_PUBACK, data, 0, 0)


def enable_manual_ack(client: aiomqtt.Client) -> None:
    """Must be called before connecting: paho then never acknowledges on its own."""
    client._client.manual_ack_set(True)
