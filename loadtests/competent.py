"""The "competent user" baseline: paho-mqtt, batched multi-row INSERT, acknowledgement on receipt.

Why: the naive baseline (`loadtests/naive.py`, one INSERT per record) is the ingestor most
people write first; this one is how most hand-written ingestors end up after a first
performance pass. It keeps paho's default acknowledgement (the PUBACK leaves when the message
is received, before anything is stored), buffers rows and writes them as one multi-row
INSERT per `BATCH_ROWS` rows or `BATCH_MS` milliseconds, whichever comes first. It is fast;
what it trades for that is durability: everything in its buffer has already been
acknowledged, so a crash (SIGKILL) loses it for good and the broker will not redeliver it.
The drain benchmark reports both its speed and that loss (`factory5g bench fault-drain-crash`).

It decodes with the same contract decoders and row builders as ingest, and speaks only the
native contract. Run as `python -m loadtests.competent` with the usual F5G_DATABASE__URL /
F5G_MQTT__* settings.
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any, Final

import paho.mqtt.client as mqtt
import psycopg2
import psycopg2.extras
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from services.core.contracts import ContractError, decode, parse_topic
from services.core.settings import load_settings
from services.core.streams import STREAM_DEFS
from services.protocols.rows import BUILDERS

BATCH_ROWS: Final = 500
BATCH_MS: Final = 100

_SQL = {
    name: f"INSERT INTO {d.table} ({', '.join(d.column_names)}) VALUES %s ON CONFLICT DO NOTHING"
    for name, d in STREAM_DEFS.items()
}


class Buffer:
    """Rows waiting for their INSERT, per stream, and when the oldest arrived."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {}
        self.count = 0
        self.first = 0.0

    def add(self, stream: str, rows: list[tuple[Any, ...]]) -> None:
        if not self.count:
            self.first = time.monotonic()
        self.rows.setdefault(stream, []).extend(rows)
        self.count += len(rows)

    def due(self) -> bool:
        return self.count >= BATCH_ROWS or (
            self.count > 0 and time.monotonic() - self.first >= BATCH_MS / 1000
        )


def main() -> int:
    settings = load_settings()
    conn = psycopg2.connect(settings.database.url, connect_timeout=5)
    conn.autocommit = True
    cur = conn.cursor()
    buf = Buffer()

    def flush() -> None:
        for stream, rows in buf.rows.items():
            if rows:
                psycopg2.extras.execute_values(cur, _SQL[stream], rows, page_size=len(rows))
        buf.rows.clear()
        buf.count = 0

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            t = parse_topic(msg.topic, settings.mqtt.topic_root)
            decoded = decode(t.stream, bytes(msg.payload))
        except ContractError as exc:
            print(f"rejected {msg.topic}: {exc}", file=sys.stderr)
            return
        out: list[tuple[Any, ...]] = []
        BUILDERS[t.stream][1](
            t.project, t.device, decoded.records, decoded.times, datetime.now(UTC), out
        )
        buf.add(t.stream, out)
        if buf.count >= BATCH_ROWS:
            flush()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        c.subscribe(f"{settings.mqtt.topic_root}/+/+/+/+", qos=1)

    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.ingest.client_id,
        protocol=mqtt.MQTTv5,
    )
    client.on_message = on_message
    client.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = settings.ingest.session_expiry_s
    client.connect(
        settings.mqtt.host,
        settings.mqtt.port,
        keepalive=settings.mqtt.keepalive_s,
        clean_start=False,
        properties=props,
    )
    running = [True]

    def stop(*_: Any) -> None:
        running[0] = False

    signal.signal(signal.SIGTERM, stop)
    while running[0]:
        client.loop(timeout=BATCH_MS / 1000)
        if buf.due():
            flush()
    flush()
    client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
