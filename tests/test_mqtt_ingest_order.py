"""Ingest with several writers acknowledges in receive order, end to end.

A loopback MQTT peer (tests/test_mqtt_session.py) plays the broker, because Mosquitto
accepts PUBACKs in any order and so cannot show the fault; ingest and PostgreSQL are real.
Small batches and four writers make batches commit out of order; the peer records the
PUBACK packet ids as they arrive on the wire.
"""

from __future__ import annotations

import uuid

from services.core.mqtt import codec
from tests.conftest import make_settings
from tests.test_ingest_helpers import inspection, running, topic, wait_count
from tests.test_mqtt_session import Peer, _serve, _until

MESSAGES = 2000


async def test_ingest_acks_in_receive_order_while_writers_commit_out_of_order(
    database_url: str,
) -> None:
    project = f"order{uuid.uuid4().hex[:8]}"
    ids = [(i * 7919) % 65535 + 1 for i in range(MESSAGES)]  # distinct, not rising
    assert len(set(ids)) == MESSAGES
    acked: list[int] = []

    async def script(peer: Peer) -> None:
        await peer.handshake()
        for i, mid in enumerate(ids):
            t = topic(project, "inspection", f"cam-{i % 20}")
            peer.writer.write(codec.encode_publish(t, inspection(i), 1, packet_id=mid))
        while len(acked) < MESSAGES:
            first, body = await peer.next()
            if first == codec.PUBACK:
                acked.append(codec.decode_puback(body).packet_id)
        # Hold the connection until ingest leaves: a broker that hung up here would make
        # ingest reconnect and this script publish all of it again while the test stops it.
        while await peer.reader.read(65536):
            pass

    server, port, _ = await _serve(script)
    settings = make_settings(
        database_url,
        port,
        ingest={"batch_max_rows": 7, "batch_max_delay_ms": 1, "writers": 4},
    )
    try:
        async with running(settings):
            await wait_count(
                database_url,
                f"SELECT count(*) FROM inspections WHERE project_id = '{project}'",
                MESSAGES,
                within=90,
            )
            await _until(lambda: len(acked) == MESSAGES, 60)
    finally:
        server.close()
    assert sorted(acked) == sorted(ids)
    rank = {mid: i for i, mid in enumerate(ids)}
    done = [False] * MESSAGES
    first_open = 0
    early = 0
    for mid in acked:
        done[rank[mid]] = True
        if rank[mid] != first_open:
            early += 1
        while first_open < MESSAGES and done[first_open]:
            first_open += 1
    assert early == 0, f"{early} of {MESSAGES} PUBACKs left before an earlier message's"
