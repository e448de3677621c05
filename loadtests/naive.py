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

_SQL = {
    "link": "INSERT INTO link_kpis (ts, project_id, device_id, seq, rsrp, sinr, latency_ms, "
    "rsrq, jitter_ms, loss_pct, ul_mbps, dl_mbps, cell_id, slice, received_at) VALUES "
    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
    "agv": "INSERT INTO agv_status (ts, project_id, device_id, seq, x, y, heading, speed, "
    "battery, state, localization, task_id, error_code, received_at) VALUES "
    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
    "inspection": "INSERT INTO inspections (ts, project_id, device_id, seq, station, part_id, "
    "passed, defect_count, defects, confidence, inference_ms, model, received_at) VALUES "
    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
    "telemetry": "INSERT INTO telemetry (ts, project_id, device_id, seq, metric, value, "
    "received_at) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT DO NOTHING",
}


def _rows(stream: str, project: str, device: str, rec: Any, ts: datetime) -> list[tuple[Any, ...]]:
    now = datetime.now(UTC)
    head = (ts, project, device, rec.seq)
    if stream == "link":
        return [
            (
                *head,
                rec.rsrp,
                rec.sinr,
                rec.latency_ms,
                rec.rsrq,
                rec.jitter_ms,
                rec.loss_pct,
                rec.ul_mbps,
                rec.dl_mbps,
                rec.cell_id,
                rec.slice,
                now,
            )
        ]
    if stream == "agv":
        return [
            (
                *head,
                rec.x,
                rec.y,
                rec.heading,
                rec.speed,
                rec.battery,
                rec.state,
                rec.localization,
                rec.task_id,
                rec.error_code,
                now,
            )
        ]
    if stream == "inspection":
        import orjson

        defects = orjson.dumps([{"type": d.type, "confidence": d.confidence} for d in rec.defects])
        return [
            (
                *head,
                rec.station,
                rec.part_id,
                rec.result == "pass",
                len(rec.defects),
                defects.decode(),
                rec.confidence,
                rec.inference_ms,
                rec.model,
                now,
            )
        ]
    return [(*head, name, value, now) for name, value in rec.metrics.items()]


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
