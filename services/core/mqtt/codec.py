"""MQTT v5 packets as bytes, both ways: the project's own codec.

Why not paho: the services read tens of thousands of QoS 1 messages a second and must
acknowledge each one after commit, in receive order. Paho decodes every PUBLISH into
property and message objects under locks and reads a packet with three `recv` calls; the
measured drain (loadtests/mqtt_drain.py, docs/architecture.md) was several times slower
than parsing the few fields the services need. Only the client side of MQTT v5 is here,
and only QoS 0 and 1 (the services never subscribe or publish at QoS 2).

Decoding never trusts a length: every malformed input raises `ProtocolError` (the
connection then sends DISCONNECT 0x81 and closes), never an IndexError or a crash.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

# Fixed-header packet types (upper nibble).
CONNECT: Final = 0x10
CONNACK: Final = 0x20
PUBLISH: Final = 0x30
PUBACK: Final = 0x40
SUBSCRIBE: Final = 0x82  # reserved flags 0b0010 included
SUBACK: Final = 0x90
UNSUBSCRIBE: Final = 0xA2
UNSUBACK: Final = 0xB0
PINGREQ: Final = 0xC0
PINGRESP: Final = 0xD0
DISCONNECT: Final = 0xE0

MAX_REMAINING: Final = 268_435_455  # largest variable byte integer

# Reason codes the services name.
SUCCESS: Final = 0x00
NO_MATCHING_SUBSCRIBERS: Final = 0x10
MALFORMED_PACKET: Final = 0x81
PROTOCOL_ERROR_RC: Final = 0x82
DISCONNECT_WITH_WILL: Final = 0x04

# Property identifiers and their wire types.
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
PROPERTY_TYPES: Final[dict[int, int]] = {
    0x01: _BYTE,  # Payload Format Indicator
    0x02: _U32,  # Message Expiry Interval
    0x03: _STR,  # Content Type
    0x08: _STR,  # Response Topic
    0x09: _BIN,  # Correlation Data
    0x0B: _VARINT,  # Subscription Identifier
    0x11: _U32,  # Session Expiry Interval
    0x12: _STR,  # Assigned Client Identifier
    0x13: _U16,  # Server Keep Alive
    0x15: _STR,  # Authentication Method
    0x16: _BIN,  # Authentication Data
    0x17: _BYTE,  # Request Problem Information
    0x18: _U32,  # Will Delay Interval
    0x19: _BYTE,  # Request Response Information
    0x1A: _STR,  # Response Information
    0x1C: _STR,  # Server Reference
    0x1F: _STR,  # Reason String
    0x21: _U16,  # Receive Maximum
    0x22: _U16,  # Topic Alias Maximum
    0x23: _U16,  # Topic Alias
    0x24: _BYTE,  # Maximum QoS
    0x25: _BYTE,  # Retain Available
    0x26: _PAIR,  # User Property
    0x27: _U32,  # Maximum Packet Size
    0x28: _BYTE,  # Wildcard Subscription Available
    0x29: _BYTE,  # Subscription Identifier Available
    0x2A: _BYTE,  # Shared Subscription Available
}
SESSION_EXPIRY: Final = 0x11
RECEIVE_MAXIMUM: Final = 0x21
TOPIC_ALIAS: Final = 0x23
MAXIMUM_QOS: Final = 0x24
REASON_STRING: Final = 0x1F
SERVER_KEEP_ALIVE: Final = 0x13
ASSIGNED_CLIENT_ID: Final = 0x12
MAXIMUM_PACKET_SIZE: Final = 0x27
USER_PROPERTY: Final = 0x26

PropValue = int | str | bytes | tuple[str, str]
Properties = dict[int, PropValue | list[tuple[str, str]]]


class ProtocolError(Exception):
    """The peer sent bytes that are not valid MQTT v5: the connection must be closed."""


# --------------------------------------------------------------------- primitives


def encode_varint(n: int) -> bytes:
    if not 0 <= n <= MAX_REMAINING:
        raise ValueError(f"variable byte integer out of range: {n}")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, next position); at most four bytes, as the standard allows."""
    value = 0
    for shift in (0, 7, 14, 21):
        if pos >= end:
            raise ProtocolError("truncated variable byte integer")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
    raise ProtocolError("variable byte integer longer than four bytes")


def encode_str(s: str) -> bytes:
    data = s.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("string longer than 65,535 bytes")
    if "\x00" in s:
        raise ValueError("MQTT strings must not contain U+0000")
    return struct.pack(">H", len(data)) + data


def encode_bin(b: bytes) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError("binary data longer than 65,535 bytes")
    return struct.pack(">H", len(b)) + b


def _u16(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 2 > end:
        raise ProtocolError("truncated two-byte integer")
    return (buf[pos] << 8) | buf[pos + 1], pos + 2


def _u32(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos + 4 > end:
        raise ProtocolError("truncated four-byte integer")
    return int.from_bytes(buf[pos : pos + 4], "big"), pos + 4


def _bin(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    n, pos = _u16(buf, pos, end)
    if pos + n > end:
        raise ProtocolError("truncated string or binary data")
    return bytes(buf[pos : pos + n]), pos + n


def decode_str(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    raw, pos = _bin(buf, pos, end)
    try:
        s = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"invalid UTF-8 string: {exc.reason}") from None
    if "\x00" in s:
        raise ProtocolError("string contains U+0000")
    return s, pos


# --------------------------------------------------------------------- properties


def encode_properties(props: Properties | None) -> bytes:
    body = bytearray()
    for pid, value in (props or {}).items():
        kind = PROPERTY_TYPES.get(pid)
        if kind is None:
            raise ValueError(f"unknown property 0x{pid:02x}")
        values = value if pid == USER_PROPERTY and isinstance(value, list) else [value]
        for v in values:
            body.append(pid)
            if kind == _BYTE and isinstance(v, int):
                body.append(v)
            elif kind == _U16 and isinstance(v, int):
                body += struct.pack(">H", v)
            elif kind == _U32 and isinstance(v, int):
                body += struct.pack(">I", v)
            elif kind == _VARINT and isinstance(v, int):
                body += encode_varint(v)
            elif kind == _STR and isinstance(v, str):
                body += encode_str(v)
            elif kind == _BIN and isinstance(v, bytes):
                body += encode_bin(v)
            elif kind == _PAIR and isinstance(v, tuple):
                body += encode_str(v[0]) + encode_str(v[1])
            else:
                raise ValueError(f"property 0x{pid:02x} has a value of the wrong type")
    return encode_varint(len(body)) + bytes(body)


def decode_properties(buf: bytes, pos: int, end: int) -> tuple[Properties, int]:
    length, pos = decode_varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise ProtocolError("properties longer than the packet")
    props: Properties = {}
    while pos < stop:
        pid, pos = decode_varint(buf, pos, stop)
        kind = PROPERTY_TYPES.get(pid)
        value: PropValue
        if kind is None:
            raise ProtocolError(f"unknown property 0x{pid:02x}")
        if kind == _BYTE:
            if pos >= stop:
                raise ProtocolError("truncated byte property")
            value, pos = buf[pos], pos + 1
        elif kind == _U16:
            value, pos = _u16(buf, pos, stop)
        elif kind == _U32:
            value, pos = _u32(buf, pos, stop)
        elif kind == _VARINT:
            value, pos = decode_varint(buf, pos, stop)
        elif kind == _STR:
            value, pos = decode_str(buf, pos, stop)
        elif kind == _BIN:
            value, pos = _bin(buf, pos, stop)
        else:
            k, pos = decode_str(buf, pos, stop)
            v, pos = decode_str(buf, pos, stop)
            pairs = props.setdefault(USER_PROPERTY, [])
            assert isinstance(pairs, list)
            pairs.append((k, v))
            continue
        if pid in props and pid != 0x0B:
            raise ProtocolError(f"property 0x{pid:02x} given twice")
        props[pid] = value
    return props, stop


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


# --------------------------------------------------------------------- client -> server


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True)
class ConnectOptions:
    """Everything CONNECT carries; built from the services' settings in `runtime`."""

    client_id: str
    keepalive_s: int = 60
    clean_start: bool = True
    session_expiry_s: int = 0
    receive_maximum: int = 65535
    username: str | None = None
    password: str | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=dict)


def encode_connect(o: ConnectOptions) -> bytes:
    flags = 0x02 if o.clean_start else 0
    if o.will is not None:
        flags |= 0x04 | (o.will.qos << 3) | (0x20 if o.will.retain else 0)
    if o.password is not None:
        flags |= 0x40
    if o.username is not None:
        flags |= 0x80
    props: Properties = dict(o.properties)
    if o.session_expiry_s:
        props[SESSION_EXPIRY] = o.session_expiry_s
    if o.receive_maximum != 65535:
        props[RECEIVE_MAXIMUM] = o.receive_maximum
    body = bytearray(encode_str("MQTT"))
    body += bytes((5, flags)) + struct.pack(">H", o.keepalive_s)
    body += encode_properties(props)
    body += encode_str(o.client_id)
    if o.will is not None:
        body += encode_properties({}) + encode_str(o.will.topic) + encode_bin(o.will.payload)
    if o.username is not None:
        body += encode_str(o.username)
    if o.password is not None:
        body += encode_bin(o.password.encode("utf-8"))
    return _packet(CONNECT, bytes(body))


def check_filter(topic_filter: str) -> None:
    """ValueError unless a valid topic filter: `#` only as a whole last level, `+` only as
    a whole level. (Mosquitto closes the connection on an invalid one: refuse it here.)"""
    levels = topic_filter.split("/")
    if not topic_filter:
        raise ValueError("empty topic filter")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(f"'#' must be the whole last level: {topic_filter!r}")
        if "+" in level and level != "+":
            raise ValueError(f"'+' must be a whole level: {topic_filter!r}")


# A subscription option (MQTT 5.0, 3.8.3.1), or-ed into a filter's maximum QoS: the broker
# does not send the client's own publications back to it on this subscription.
NO_LOCAL: Final = 0x04


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    """`filters`: (topic filter, options): the maximum QoS (0 or 1), or-ed with `NO_LOCAL`
    if wanted; Retain As Published and Retain Handling stay 0."""
    body = struct.pack(">H", packet_id) + encode_properties({})
    for topic, options in filters:
        check_filter(topic)
        if options & ~(0x03 | NO_LOCAL) or options & 0x03 not in (0, 1):
            raise ValueError("only QoS 0 and 1 (and No Local) are supported")
        body += encode_str(topic) + bytes((options,))
    return _packet(SUBSCRIBE, body)


def encode_unsubscribe(packet_id: int, filters: list[str]) -> bytes:
    body = struct.pack(">H", packet_id) + encode_properties({})
    for topic in filters:
        check_filter(topic)
        body += encode_str(topic)
    return _packet(UNSUBSCRIBE, body)


def encode_publish(
    topic: str,
    payload: bytes,
    qos: int = 0,
    retain: bool = False,
    packet_id: int = 0,
    dup: bool = False,
    properties: Properties | None = None,
) -> bytes:
    if qos not in (0, 1):
        raise ValueError("only QoS 0 and 1 are supported")
    if not topic or "+" in topic or "#" in topic:
        raise ValueError(f"not a valid topic name: {topic!r}")
    first = PUBLISH | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = encode_str(topic)
    if qos:
        body += struct.pack(">H", packet_id)
    body += encode_properties(properties) + payload
    return _packet(first, body)


def encode_puback(packet_id: int, reason: int = SUCCESS) -> bytes:
    if reason == SUCCESS:  # MQTT v5 allows leaving out reason 0 and properties
        return struct.pack(">BBH", PUBACK, 2, packet_id)
    return struct.pack(">BBHBB", PUBACK, 4, packet_id, reason, 0)


_PUBACK_HEAD: Final = 0x40020000


def encode_pubacks(packet_ids: list[int]) -> bytes:
    """Many success PUBACKs as one buffer (4 bytes each), for one write."""
    return struct.pack(f">{len(packet_ids)}I", *[_PUBACK_HEAD | m for m in packet_ids])


PINGREQ_PACKET: Final = bytes((PINGREQ, 0))


def encode_disconnect(reason: int = SUCCESS) -> bytes:
    if reason == SUCCESS:
        return bytes((DISCONNECT, 0))
    return bytes((DISCONNECT, 2, reason, 0))


# --------------------------------------------------------------------- server -> client


@dataclass(frozen=True)
class Connack:
    session_present: bool
    reason: int
    properties: Properties


@dataclass(frozen=True)
class Ack:
    """PUBACK, SUBACK or UNSUBACK: a packet id and its reason code(s)."""

    packet_id: int
    reasons: list[int]
    properties: Properties


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int
    retain: bool
    dup: bool
    properties: Properties


def decode_connack(body: bytes) -> Connack:
    n = len(body)
    if n < 2:
        raise ProtocolError("CONNACK too short")
    if body[0] & 0xFE:
        raise ProtocolError("CONNACK reserved flags set")
    props: Properties = {}
    if n > 2:
        props, end = decode_properties(body, 2, n)
        if end != n:
            raise ProtocolError("bytes after CONNACK properties")
    return Connack(bool(body[0] & 1), body[1], props)


def decode_puback(body: bytes) -> Ack:
    n = len(body)
    pid, _ = _u16(body, 0, n)
    reason = body[2] if n > 2 else SUCCESS
    props: Properties = {}
    if n > 3:
        props, end = decode_properties(body, 3, n)
        if end != n:
            raise ProtocolError("bytes after PUBACK properties")
    return Ack(pid, [reason], props)


def decode_suback(body: bytes) -> Ack:
    """SUBACK and UNSUBACK share a layout: packet id, properties, one reason per filter."""
    n = len(body)
    pid, pos = _u16(body, 0, n)
    props, pos = decode_properties(body, pos, n)
    if pos >= n:
        raise ProtocolError("SUBACK/UNSUBACK without reason codes")
    return Ack(pid, list(body[pos:n]), props)


def decode_disconnect(body: bytes) -> tuple[int, Properties]:
    n = len(body)
    if n == 0:
        return SUCCESS, {}
    props: Properties = {}
    if n > 1:
        props, end = decode_properties(body, 1, n)
        if end != n:
            raise ProtocolError("bytes after DISCONNECT properties")
    return body[0], props


def decode_publish(first: int, body: bytes) -> Publish:
    """A whole PUBLISH with its properties (tests and the slow path; see `stream`)."""
    qos = (first >> 1) & 3
    if qos == 3:
        raise ProtocolError("PUBLISH with QoS 3")
    n = len(body)
    topic, pos = decode_str(body, 0, n)
    pid = 0
    if qos:
        pid, pos = _u16(body, pos, n)
        if pid == 0:
            raise ProtocolError("PUBLISH with packet id 0")
    props, pos = decode_properties(body, pos, n)
    if not topic and TOPIC_ALIAS not in props:
        raise ProtocolError("PUBLISH without topic")
    return Publish(topic, bytes(body[pos:n]), qos, pid, bool(first & 1), bool(first & 8), props)
