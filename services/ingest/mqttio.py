"""The few places where ingest reaches below aiomqtt into paho-mqtt, and why.

aiomqtt gives connection handling, subscriptions and publishing; its message path does
not fit a service that must acknowledge after commit at tens of thousands of messages a
second:

* aiomqtt acknowledges on receipt and queues without bound. Paho's manual-ack mode keeps
  QoS 1 messages unacknowledged until `send_acks` writes their PUBACKs (after commit).
* Paho reads a packet with three `recv` calls, aiomqtt handles one packet per readiness
  event, and paho's PUBLISH decoding (properties objects, message objects, callback
  locks) costs more CPU than validating the payload. `PacketReader` reads up to 256 KiB
  at a time and parses PUBLISH itself (a few slices per message), handing every other
  packet to paho, which keeps the protocol state (CONNACK, SUBACK, PINGRESP, ...).
* Paho queues one write per PUBACK. `send_acks` packs a whole batch of PUBACKs (4 bytes
  each) into one buffer and one write.
* To stop reading (backpressure, shutdown) the reader is removed from the event loop;
  TCP flow control then holds the broker back. While paused, paho would take the missing
  PINGRESP for a dead broker, so `PacketReader` keeps its receive clock fresh; the broker
  still gets our PINGREQs and acknowledgements and so keeps the session alive.

Everything here is tied to paho-mqtt 2.x internals (pinned `<3` in pyproject.toml);
`tests/test_ingest_mqttio.py` checks the reader against a real broker.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any, Final

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.exception import MalformedPacket

_READ_SIZE: Final = 256 * 1024
_PUBACK: Final = 0x40
# PUBACK with remaining length 2 and the packet id: MQTT v5 allows leaving out reason
# code 0 (success) and properties.
_PUBACK_HEAD: Final = 0x40020000

# (topic, payload, message id, qos, dup flag)
PublishHandler = Callable[[str, bytes, int, int, bool], None]


class PacketReader:
    """Reads one client's socket and parses the MQTT stream itself.

    PUBLISH packets of QoS 0 and 1 go straight to `on_publish(topic, payload, mid, qos,
    dup)`; every other packet (CONNACK, SUBACK, PUBACK of our publishes, PINGRESP,
    DISCONNECT, QoS 2) is handed to paho exactly as its own reader would. It takes over
    the socket as it opens, before CONNACK, so it sees the stream from its first byte.
    """

    def __init__(self, client: aiomqtt.Client, on_publish: PublishHandler) -> None:
        self._client = client
        # Typed loosely: this module reaches into paho attributes its stubs do not describe.
        paho_client: Any = client._client
        self._paho = paho_client
        self._on_publish = on_publish
        self._loop = asyncio.get_running_loop()
        self._sock: Any = None
        self._fd = -1
        self._buf = b""
        self.paused = False
        self._closed = False
        self._keepalive_task: asyncio.Task[None] | None = None
        aiomqtt_open = paho_client.on_socket_open

        def on_socket_open(c: Any, userdata: Any, sock: Any) -> None:
            aiomqtt_open(c, userdata, sock)
            # Runs after aiomqtt's add_reader (same thread, FIFO) and before any read.
            self._loop.call_soon_threadsafe(self._attach, sock)

        paho_client.on_socket_open = on_socket_open

    def _attach(self, sock: Any) -> None:
        if self._closed or self._paho._sock is not sock:
            return
        self._sock = sock
        self._fd = sock.fileno()
        self._loop.remove_reader(self._fd)
        if not self.paused:
            self._loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None or self._paho._sock is not sock:
            return
        try:
            if self._buf:
                # Packets left by a pause are handled before reading more. Reading first
                # added up to 256 KiB per pause/resume cycle while a cycle may consume
                # less (a 5,000-row batch of Sparkplug DDATA is about 150 KB): under
                # overload the buffer grew by megabytes a second, and copying it on every
                # read collapsed throughput.
                self._buf = self._parse(self._buf)
                if self.paused or self._paho._sock is not sock:
                    return
            while True:
                try:
                    data = sock.recv(_READ_SIZE)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    return
                except OSError:
                    self._lost()
                    return
                if not data:
                    self._lost()
                    return
                self._paho._last_bytes_received = time.monotonic()
                self._buf = self._parse(self._buf + data if self._buf else data)
                if self.paused or self._paho._sock is not sock:
                    return
                pending = getattr(sock, "pending", None)  # TLS may hold decrypted bytes
                if pending is None or pending() <= 0:
                    return
        except Exception as exc:
            # As aiomqtt's own reader does: an error here means the connection is unusable.
            disconnected = self._client._disconnected
            if not disconnected.done():
                disconnected.set_exception(exc)

    def _parse(self, buf: bytes) -> bytes:
        """Handle every complete packet in `buf`; return the incomplete rest."""
        n = len(buf)
        pos = 0
        on_publish = self._on_publish
        while pos < n and not self.paused:
            cmd = buf[pos]
            i = pos + 1
            length = 0
            shift = 0
            while True:
                if i >= n:
                    return buf[pos:]
                b = buf[i]
                i += 1
                length |= (b & 0x7F) << shift
                if not b & 0x80:
                    break
                shift += 7
                if shift > 21:
                    raise aiomqtt.MqttError("malformed remaining length")
            end = i + length
            if end > n:
                return buf[pos:]
            if cmd & 0xF0 == 0x30 and cmd & 0x06 != 0x04:  # PUBLISH, QoS 0 or 1
                j = i + 2 + ((buf[i] << 8) | buf[i + 1])
                topic = buf[i + 2 : j].decode("utf-8", "replace")
                qos = (cmd >> 1) & 3
                mid = 0
                if qos:
                    mid = (buf[j] << 8) | buf[j + 1]
                    j += 2
                props = 0  # MQTT v5 properties: skipped (no topic aliases are allowed)
                shift = 0
                while True:
                    b = buf[j]
                    j += 1
                    props |= (b & 0x7F) << shift
                    if not b & 0x80:
                        break
                    shift += 7
                on_publish(topic, buf[j + props : end], mid, qos, bool(cmd & 0x08))
            else:
                self._to_paho(cmd, buf[i:end], length)
                if self._paho._sock is not self._sock:
                    return b""
            pos = end
        return buf[pos:] if pos < n else b""

    def _to_paho(self, cmd: int, body: bytes, length: int) -> None:
        p = self._paho
        p._in_packet = {
            "command": cmd,
            "have_remaining": 1,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": length,
            "to_process": 0,
            "packet": body,
            "pos": 0,
        }
        try:
            rc = p._packet_handle()
        except MalformedPacket:
            rc = paho.MQTT_ERR_PROTOCOL
        p._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        if rc:
            p._loop_rc_handle(rc)

    def _lost(self) -> None:
        self._paho._loop_rc_handle(paho.MQTT_ERR_CONN_LOST)

    @property
    def buffered(self) -> int:
        """Bytes read from the socket and not yet handled."""
        return len(self._buf)

    def pause(self) -> None:
        if self.paused or self._closed:
            return
        self.paused = True
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
        if self._keepalive_task is None:
            self._keepalive_task = self._loop.create_task(self._keep_session())

    def resume(self) -> None:
        if not self.paused or self._closed:
            return
        self.paused = False
        sock = self._sock
        if sock is not None and self._paho._sock is sock:
            self._loop.add_reader(self._fd, self._on_readable)
            if self._buf:  # complete packets may wait in the buffer: no event will come
                self._loop.call_soon(self._drain_buffer)

    def _drain_buffer(self) -> None:
        if not self.paused and self._sock is not None and self._paho._sock is self._sock:
            try:
                self._buf = self._parse(self._buf)
            except Exception as exc:
                disconnected = self._client._disconnected
                if not disconnected.done():
                    disconnected.set_exception(exc)

    def close(self) -> None:
        self._closed = True
        self._buf = b""
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
