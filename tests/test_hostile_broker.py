"""Hostile traffic through the real broker into the real ingest pipeline, beside valid traffic.

Every valid message must land; every hostile one must be dead-lettered with a reason,
refused by the broker (the connection is closed before a PUBACK), or, for topics outside
ingest's subscription, never delivered to ingest at all. Each class is counted separately.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
import uuid
from collections import Counter
from collections.abc import Callable

import aiomqtt
import orjson

from f5gdev import hostile
from f5gdev.devstack.servers import Mosquitto
from services.core.contracts import Reason
from services.core.settings import Settings
from tests.conftest import make_settings
from tests.test_ingest_helpers import publish, query, running, wait_count

VALID_MESSAGES = 600
BROKER_MAX_PACKET = 2 * 1024 * 1024  # servers.Mosquitto's max_packet_size


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(raw: bytes) -> bytes:
    return struct.pack("!H", len(raw)) + raw


def raw_publish_refused(port: int, topic: str, payload: bytes) -> bool:
    """Send a hand-made MQTT 3.1.1 PUBLISH (no client library to sanitise it first) and
    report whether the broker closed the connection instead of acknowledging it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + _string(f"hostile-{uuid.uuid4().hex}".encode())
        s.sendall(b"\x10" + _varint(len(connect)) + connect)
        assert s.recv(4) == b"\x20\x02\x00\x00", "CONNACK"
        body = _string(topic.encode("utf-8", "surrogatepass")) + b"\x00\x01" + payload
        try:
            s.sendall(b"\x32" + _varint(len(body)) + body)
            reply = s.recv(4)
        except (ConnectionResetError, BrokenPipeError):
            return True
        return reply == b""


def valid_traffic(project: str) -> list[tuple[str, bytes]]:
    msgs = []
    for i in range(VALID_MESSAGES):
        device = f"m-{i % 10}"
        body = {"ts": _now_ms(), "seq": i, "metrics": {"temp": 20.0 + i % 7, "rpm": float(i)}}
        msgs.append((f"f5g/v1/{project}/machine/{device}/telemetry", orjson.dumps(body)))
    return msgs


def _now_ms() -> int:
    return int(time.time() * 1000)


async def test_hostile_corpus_is_dead_lettered_while_valid_traffic_lands(
    database_url: str, new_broker: Callable[[], Mosquitto]
) -> None:
    # A broker of its own: the ingest's retained Sparkplug STATE stays out of other tests.
    broker = new_broker()
    tag = uuid.uuid4().hex[:6]
    good_project, bad_project = f"good{tag}", f"bad{tag}"
    settings: Settings = make_settings(
        database_url,
        broker.port,
        ingest={"client_id": f"hostile-{tag}", "share_group": f"hostile-{tag}"},
    )
    corpus = hostile.corpus(bad_project, settings.ingest.max_payload_bytes)
    refused = hostile.broker_refused(bad_project, BROKER_MAX_PACKET)
    undelivered = hostile.never_delivered(bad_project)
    valid = valid_traffic(good_project)

    async with running(settings):
        # Valid traffic flows while the hostile messages arrive, on separate connections.
        valid_task = asyncio.ensure_future(publish(broker.port, valid))
        hostile_acked = await publish(broker.port, [(h.topic, h.payload) for h in corpus])
        undelivered_acked = await publish(broker.port, [(h.topic, h.payload) for h in undelivered])
        refused_by_broker = [
            h.name
            for h in refused
            if await asyncio.to_thread(raw_publish_refused, broker.port, h.topic, h.payload)
        ]
        assert await valid_task == VALID_MESSAGES

        landed = await wait_count(
            database_url,
            f"SELECT count(DISTINCT seq) FROM telemetry WHERE project_id = '{good_project}'",
            VALID_MESSAGES,
        )
        prefix = f"f5g/v1/{bad_project}"
        # On a shortfall the comparison below names what is missing.
        with contextlib.suppress(AssertionError):
            await wait_count(
                database_url,
                f"SELECT count(*) FROM dead_letters WHERE starts_with(topic, '{prefix}')",
                len(corpus),
            )
        letters = await query(
            database_url,
            "SELECT topic, reason, detail FROM dead_letters WHERE starts_with(topic, $1)",
            prefix,
        )

    assert landed == VALID_MESSAGES
    assert hostile_acked == len(corpus)
    assert undelivered_acked == len(undelivered)
    assert sorted(refused_by_broker) == sorted(h.name for h in refused)
    # Exactly one dead letter per hostile message, each with a known reason and a detail.
    missing = Counter(h.topic for h in corpus) - Counter(r["topic"] for r in letters)
    names = {h.topic: h.name for h in corpus}
    assert not missing, f"not dead-lettered: {[names[t] for t in missing]}"
    assert Counter(r["topic"] for r in letters) == Counter(h.topic for h in corpus)
    assert {r["reason"] for r in letters} <= {r.value for r in Reason}
    assert all(r["detail"] for r in letters)
    # Nothing hostile became a row, and nothing valid was dead-lettered.
    for table in ("telemetry", "inspections", "agv_status", "link_kpis"):
        rows = await query(
            database_url,
            f"SELECT count(*) FROM {table} WHERE project_id LIKE $1",
            f"{bad_project}%",
        )
        assert rows[0][0] == 0, table
    valid_letters = await query(
        database_url,
        "SELECT count(*) FROM dead_letters WHERE starts_with(topic, $1)",
        f"f5g/v1/{good_project}",
    )
    assert valid_letters[0][0] == 0
    reasons = Counter(r["reason"] for r in letters)
    print(
        f"\nhostile corpus: valid sent={VALID_MESSAGES} landed={landed}; "
        f"hostile dead-lettered={len(letters)}/{len(corpus)} {dict(reasons)}; "
        f"refused by broker={len(refused_by_broker)}/{len(refused)}; "
        f"outside ingest's subscription (never delivered)={len(undelivered)}"
    )


async def test_wildcard_subscriber_sees_no_undelivered_topic_under_ingest_filter(
    broker: Mosquitto,
) -> None:
    """The never-delivered class is real: ingest's filter does not match those topics."""
    tag = uuid.uuid4().hex[:6]
    undelivered = hostile.never_delivered(f"bad{tag}")
    got: list[str] = []
    async with aiomqtt.Client("127.0.0.1", broker.port) as sub:
        await sub.subscribe("f5g/v1/+/+/+/+", qos=1)
        await publish(broker.port, [(h.topic, h.payload) for h in undelivered])
        marker = f"f5g/v1/bad{tag}/machine/m-1/telemetry"
        await publish(broker.port, [(marker, b"{}")])
        async for msg in sub.messages:
            got.append(msg.topic.value)
            if msg.topic.value == marker:
                break
    assert got == [marker]
