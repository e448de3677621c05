"""The incoming byte stream cut into packets, with a fast path for PUBLISH.

Why a hand-written loop: PUBLISH is nearly every packet the services read (tens of
thousands a second), and all they need of it is topic, payload, packet id, QoS and DUP.
The loop takes those with a few slices and hands every other packet (CONNACK, SUBACK,
PUBACK, PINGRESP, DISCONNECT, ...) whole to `on_packet`. Properties of an incoming PUBLISH
are skipped: the client never allows topic aliases (Topic Alias Maximum 0), so a PUBLISH
without a topic is a protocol error.

Reading stops between two packets as soon as `paused` is set (backpressure): the rest
stays in `buffer`, at most one read plus one incomplete packet, and `feed(b"")` resumes
from it before anything new is read. Malformed input raises `ProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable

from services.core.mqtt.codec import PUBLISH, ProtocolError

# (topic, payload, packet id, qos, dup)
PublishHandler = Callable[[str, bytes, int, int, bool], None]
# (first byte, body)
PacketHandler = Callable[[int, bytes], None]


class PacketStream:
    __slots__ = (
        "buffer",
        "keep_properties",
        "on_packet",
        "on_publish",
        "paused",
        "properties",
        "stopped",
    )

    def __init__(self, on_publish: PublishHandler, on_packet: PacketHandler) -> None:
        self.on_publish = on_publish
        self.on_packet = on_packet
        self.buffer = b""
        self.paused = False
        self.stopped = False  # set by `on_packet` when the connection is over
        # When set, `properties` holds the raw property block (with its length) of the
        # PUBLISH being handed to `on_publish`; off on the hot paths that never read it.
        self.keep_properties = False
        self.properties = b""

    def feed(self, data: bytes) -> None:
        """Handle every complete packet of buffer + `data` until paused or stopped."""
        buf = self.buffer + data if self.buffer else data
        try:
            self.buffer = self._parse(buf)
        except (IndexError, ValueError) as exc:  # a length pointing past the packet
            self.buffer = b""
            raise ProtocolError(f"malformed packet: {exc}") from None
        except ProtocolError:
            self.buffer = b""
            raise

    def _parse(self, buf: bytes) -> bytes:
        n = len(buf)
        pos = 0
        on_publish = self.on_publish
        while pos < n and not self.paused and not self.stopped:
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
                    raise ProtocolError("remaining length longer than four bytes")
            end = i + length
            if end > n:
                return buf[pos:]
            if cmd & 0xF0 == PUBLISH:
                qos = (cmd >> 1) & 3
                if qos > 1:
                    raise ProtocolError(f"PUBLISH with QoS {qos} (subscribed at most QoS 1)")
                j = i + 2 + ((buf[i] << 8) | buf[i + 1])
                if j > end or i + 2 > end:
                    raise ProtocolError("PUBLISH topic longer than the packet")
                try:
                    topic = buf[i + 2 : j].decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError("PUBLISH topic is not valid UTF-8") from None
                if not topic or "\x00" in topic:
                    raise ProtocolError("PUBLISH topic empty or with U+0000")
                mid = 0
                if qos:
                    mid = (buf[j] << 8) | buf[j + 1]
                    j += 2
                    if mid == 0:
                        raise ProtocolError("QoS 1 PUBLISH with packet id 0")
                props = 0
                shift = 0
                pstart = j
                while True:
                    b = buf[j]
                    j += 1
                    props |= (b & 0x7F) << shift
                    if not b & 0x80:
                        break
                    shift += 7
                    if shift > 21:
                        raise ProtocolError("property length longer than four bytes")
                j += props
                if j > end:
                    raise ProtocolError("PUBLISH properties longer than the packet")
                if self.keep_properties:
                    self.properties = buf[pstart:j]
                on_publish(topic, buf[j:end], mid, qos, bool(cmd & 0x08))
            else:
                self.on_packet(cmd, buf[i:end])
            pos = end
        return buf[pos:] if pos < n else b""
