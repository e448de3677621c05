"""MQTT packets as bytes, for load generators that write pre-encoded packets to a socket.

Why: the filler (`loadtests/filler.py`) and the raw publisher (`loadtests/publisher.py`)
both build PUBLISH packets without a client library, so that the generator is not what a
benchmark measures (issue 21).
"""

from __future__ import annotations

import struct


def remaining_length(n: int) -> bytes:
    """The variable-length integer of a fixed header."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(s: bytes) -> bytes:
    """A length-prefixed UTF-8 string (topic names, client ids)."""
    return struct.pack("!H", len(s)) + s


def publish_packet(topic: str, payload: bytes, mid: int) -> bytes:
    """One QoS 1 PUBLISH (no DUP, no retain, no properties) with packet id `mid`; the same
    bytes in MQTT 3.1.1 and, but for the properties length, v5."""
    t = topic.encode()
    variable = mqtt_string(t) + struct.pack("!H", mid)
    return b"\x32" + remaining_length(len(variable) + len(payload)) + variable + payload
