"""The baseline: the ingestor most people write first (paho-mqtt, one INSERT per record).

It subscribes at QoS 1, lets paho acknowledge each message on receipt, decodes it with the
same contract decoders as ingest and INSERTs every row on its own in autocommit. Benchmarks
run it on the same workload in the same run so results read as ratios, not only as
absolute numbers on one machine. It is deliberately naive; it is not for production.

Run as `python -m loadtests.naive` with the usual F5G_DATABASE__URL / F5G_MQTT__* settings.
`F5G_BENCH_DROP=<device>:<seq>` makes it skip one record, so the harness's loss accounting
can be tested against a loss that really happened.
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg2
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from services.core.contracts import ContractError, decode, parse_topic
from services.core.settings import load_settings
from services.core.streams import STREAM_DEFS
from services.protocols.rows import BUILDERS

# One INSERT per row, columns and tuples from the stream definitions (the row builders are
# the ingest's own, called for one record at a time; the naive part is how rows are written).
_SQL = {
    name: f"INSERT INTO {d.table} ({', '.join(d.column_names)}) VALUES "
    f"({','.join(['%s'] * len(d.columns))}) ON CONFLICT DO NOTHING"
    for name, d in STREAM_DEFS.items()
}


def _rows(stream: str, project: str, device: str, rec: Any, ts: datetime) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    BUILDERS[stream][1](project, device, [rec], [ts], datetime.now(UTC), out)
    return out


def main() -> int:
    settings = load_settings()
    drop = os.environ.get("F5G_BENCH_DROP", "")
    drop_key = tuple(drop.rsplit(":", 1)) if drop else None
    state: dict[str, Any] = {}

    def _reconnect() -> None:
        try:
            conn = psycopg2.connect(settings.database.url, connect_timeout=2)
        except psycopg2.Error:
            return
        conn.autocommit = True
        state["cur"] = conn.cursor()

    _reconnect()
    if "cur" not in state:
        print("cannot connect to the database", file=sys.stderr)
        return 1

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            t = parse_topic(msg.topic, settings.mqtt.topic_root)
            decoded = decode(t.stream, bytes(msg.payload))
        except ContractError as exc:
            print(f"rejected {msg.topic}: {exc}", file=sys.stderr)
            return
        for rec, ts in zip(decoded.records, decoded.times, strict=True):
            if drop_key == (t.device, str(rec.seq)):
                continue
            for row in _rows(t.stream, t.project, t.device, rec, ts):
                try:
                    state["cur"].execute(_SQL[t.stream], row)
                except psycopg2.Error as exc:  # the row is lost, as it is in naive code
                    print(f"insert failed: {exc}".strip(), file=sys.stderr)
                    _reconnect()

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
    signal.signal(signal.SIGTERM, lambda *_: client.disconnect())
    client.loop_forever(retry_first_connection=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
