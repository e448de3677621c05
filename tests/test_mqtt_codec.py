"""The project's MQTT v5 codec: round trips, and malformed input is a ProtocolError only."""

from __future__ import annotations

import contextlib
import random

import pytest

from services.core.mqtt import codec
from services.core.mqtt.codec import ConnectOptions, ProtocolError, Will
from services.core.mqtt.stream import PacketStream


def _split(packet: bytes) -> tuple[int, bytes]:
    length, pos = codec.decode_varint(packet, 1, len(packet))
    assert pos + length == len(packet)
    return packet[0], packet[pos:]


@pytest.mark.parametrize("n", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455])
def test_varint_round_trip_at_every_width(n: int) -> None:
    data = codec.encode_varint(n)
    assert codec.decode_varint(data, 0, len(data)) == (n, len(data))


def test_varint_limits() -> None:
    with pytest.raises(ValueError, match="out of range"):
        codec.encode_varint(268_435_456)
    with pytest.raises(ProtocolError):
        codec.decode_varint(b"\xff\xff\xff\xff\x01", 0, 5)
    with pytest.raises(ProtocolError):
        codec.decode_varint(b"\x80", 0, 1)


def test_strings_are_validated_utf8_without_nul() -> None:
    data = codec.encode_str("Köln/设备")
    assert codec.decode_str(data, 0, len(data)) == ("Köln/设备", 14)
    with pytest.raises(ProtocolError, match="UTF-8"):
        codec.decode_str(b"\x00\x02\xc3\x28", 0, 4)
    with pytest.raises(ProtocolError):
        codec.decode_str(b"\x00\x01\x00", 0, 3)
    with pytest.raises(ProtocolError):
        codec.decode_str(b"\x00\x05ab", 0, 4)
    with pytest.raises(ValueError, match="U\\+0000"):
        codec.encode_str("a\x00b")


def test_properties_round_trip() -> None:
    props: codec.Properties = {
        codec.SESSION_EXPIRY: 3600,
        codec.RECEIVE_MAXIMUM: 500,
        codec.REASON_STRING: "ok",
        0x09: b"\x01\x02",
        0x0B: 7,
        0x01: 1,
        codec.USER_PROPERTY: [("a", "1"), ("b", "2")],
    }
    data = codec.encode_properties(props)
    assert codec.decode_properties(data, 0, len(data)) == (props, len(data))


def test_duplicate_or_unknown_property_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError):
        codec.decode_properties(b"\x06\x21\x00\x01\x21\x00\x02", 0, 7)
    with pytest.raises(ProtocolError):
        codec.decode_properties(b"\x02\x7f\x00", 0, 3)


def test_connect_carries_session_credentials_and_will() -> None:
    opts = ConnectOptions(
        "ingest-0",
        keepalive_s=30,
        clean_start=False,
        session_expiry_s=3600,
        receive_maximum=1000,
        username="svc",
        password="pw",
        will=Will("spBv1.0/STATE/h", b'{"online":false}', 1, True),
    )
    first, body = _split(codec.encode_connect(opts))
    assert first == codec.CONNECT
    assert body[:7] == b"\x00\x04MQTT\x05"
    flags = body[7]
    assert flags == 0x80 | 0x40 | 0x20 | 0x08 | 0x04  # user, password, will retain/QoS 1/flag
    assert body[8:10] == b"\x00\x1e"
    props, pos = codec.decode_properties(body, 10, len(body))
    assert props == {codec.SESSION_EXPIRY: 3600, codec.RECEIVE_MAXIMUM: 1000}
    client_id, pos = codec.decode_str(body, pos, len(body))
    assert client_id == "ingest-0"
    will_props, pos = codec.decode_properties(body, pos, len(body))
    assert will_props == {}
    assert codec.decode_str(body, pos, len(body))[0] == "spBv1.0/STATE/h"


def test_publish_round_trip_both_qos_with_properties() -> None:
    for qos, pid in ((0, 0), (1, 513)):
        packet = codec.encode_publish(
            "f/p/d/link", b"payload", qos, True, pid, dup=bool(qos), properties={0x03: "json"}
        )
        first, body = _split(packet)
        pub = codec.decode_publish(first, body)
        assert (pub.topic, pub.payload, pub.qos, pub.packet_id, pub.retain, pub.dup) == (
            "f/p/d/link",
            b"payload",
            qos,
            pid,
            True,
            bool(qos),
        )
        assert pub.properties == {0x03: "json"}
    with pytest.raises(ValueError, match="topic name"):
        codec.encode_publish("a/+", b"", 0)
    with pytest.raises(ValueError, match="QoS"):
        codec.encode_publish("a", b"", 2)


def test_acks_and_disconnect_decode() -> None:
    assert codec.decode_puback(b"\x00\x05") == codec.Ack(5, [0], {})
    _, body = _split(codec.encode_puback(6, 0x87))
    assert codec.decode_puback(body) == codec.Ack(6, [0x87], {})
    assert codec.decode_suback(b"\x00\x01\x00\x01\x87") == codec.Ack(1, [1, 0x87], {})
    assert codec.decode_disconnect(b"") == (0, {})
    assert codec.decode_disconnect(b"\x8e\x00") == (0x8E, {})
    assert codec.decode_connack(b"\x01\x00\x03\x21\x00\x0a").properties == {
        codec.RECEIVE_MAXIMUM: 10
    }
    assert codec.encode_pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    _, sub = _split(codec.encode_subscribe(9, [("a/#", 1), ("$share/g/b/+", 1)]))
    assert sub[:3] == b"\x00\x09\x00"
    _, unsub = _split(codec.encode_unsubscribe(10, ["a/#"]))
    assert unsub == b"\x00\x0a\x00\x00\x03a/#"
    assert codec.encode_disconnect(0x04) == b"\xe0\x02\x04\x00"


def _stream() -> tuple[PacketStream, list[tuple[str, bytes, int, int, bool]], list[int]]:
    pubs: list[tuple[str, bytes, int, int, bool]] = []
    others: list[int] = []
    s = PacketStream(lambda *a: pubs.append(a), lambda first, body: others.append(first))
    return s, pubs, others


def test_stream_splits_packets_at_any_byte_boundary() -> None:
    packets = [
        codec.encode_publish("t/a", b"x" * 300, 1, packet_id=7, properties={0x01: 1}),
        bytes((codec.PINGRESP, 0)),
        codec.encode_publish("t/b", b"", 0),
    ]
    data = b"".join(packets)
    for cut in range(len(data) + 1):
        s, pubs, others = _stream()
        s.feed(data[:cut])
        s.feed(data[cut:])
        assert pubs == [("t/a", b"x" * 300, 7, 1, False), ("t/b", b"", 0, 0, False)]
        assert others == [codec.PINGRESP]
        assert s.buffer == b""


@pytest.mark.parametrize(
    "bad",
    [
        b"\x30\x03\x00\x05a",  # topic longer than the packet
        b"\x30\x04\x00\x02\xc3\x28\x00",  # topic not UTF-8
        b"\x30\x03\x00\x00\x00",  # empty topic (no aliases allowed)
        b"\x34\x06\x00\x01a\x00\x01\x00",  # QoS 2
        b"\x32\x06\x00\x01a\x00\x00\x00",  # QoS 1 with packet id 0
        b"\x30\x05\x00\x01a\x09\x00",  # properties longer than the packet
        b"\x30\xff\xff\xff\xff\x7f",  # remaining length of five bytes
    ],
)
def test_malformed_publish_is_a_protocol_error(bad: bytes) -> None:
    s, pubs, _ = _stream()
    with pytest.raises(ProtocolError):
        s.feed(bad)
    assert pubs == []


def test_random_bytes_never_raise_anything_but_protocol_error() -> None:
    rng = random.Random(16)
    valid = codec.encode_publish("a/b", b"p", 1, packet_id=1)
    decoders = [
        codec.decode_connack,
        codec.decode_puback,
        codec.decode_suback,
        codec.decode_disconnect,
        lambda b: codec.decode_publish(0x32, b),
    ]
    for _ in range(5000):
        n = rng.randint(0, 24)
        data = bytes(rng.getrandbits(8) for _ in range(n))
        if rng.random() < 0.5:  # mutate a valid packet: most bytes then look plausible
            data = bytearray(valid)
            data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data)
        s, _, _ = _stream()
        with contextlib.suppress(ProtocolError):
            s.feed(data)
        for decode in decoders:
            with contextlib.suppress(ProtocolError):
                decode(data)


@pytest.mark.parametrize("good", ["a/b", "a/+/c", "a/#", "#", "+", "$share/g/f5g/v1/+/+/+/+"])
def test_valid_filters_pass(good: str) -> None:
    codec.check_filter(good)


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b+", "f5g/v1/p9/+/a/#/b/+"])
def test_invalid_filters_are_refused_before_they_reach_the_broker(bad: str) -> None:
    """Mosquitto closes the connection on an invalid filter; the client refuses it first."""
    with pytest.raises(ValueError, match=r"filter|level"):
        codec.encode_subscribe(1, [(bad, 1)])
