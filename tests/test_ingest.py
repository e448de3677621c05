"""Ingest against the real broker and database: what lands, what is rejected, and how often."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from f5gdev.devstack.servers import Mosquitto
from services.core.contracts import decode
from services.core.mqtt import codec
from services.core.settings import Settings, load_settings
from tests.test_ingest_helpers import (
    EXAMPLES,
    inspection,
    publish,
    query,
    running,
    scalar,
    topic,
    wait_count,
    wait_until,
)

YEARS = 100 * 365 * 86400.0


def _settings(db_url: str, port: int, **ingest: Any) -> Settings:
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {"client_id": f"ingest-{tag}", "share_group": f"g-{tag}"}
    values.update(ingest)
    return load_settings(
        database={"url": db_url},
        mqtt={"host": "127.0.0.1", "port": port},
        ingest={"metrics_port": 0, **values},
    )


def _expected_rows(stream: str, payload: bytes) -> int:
    records = decode(stream, payload).records
    if stream == "telemetry":
        return sum(len(r.metrics) for r in records)
    return len(records)


TABLES = {"inspection": "inspections", "agv": "agv_status", "link": "link_kpis"}
TABLES["telemetry"] = "telemetry"


async def test_every_valid_example_lands_exactly_once(
    new_database: Callable[[], str], broker: Mosquitto
) -> None:
    url = new_database()
    settings = _settings(url, broker.port, max_past_s=YEARS, max_future_s=YEARS)
    messages: list[tuple[str, bytes]] = []
    expected: dict[str, int] = dict.fromkeys(TABLES, 0)
    for path in sorted(EXAMPLES.glob("*/valid/*.json")):
        stream = path.parts[-3]
        payload = path.read_bytes()
        messages.append((topic("plant-a", stream, f"{stream}-{path.stem}"), payload))
        expected[stream] += _expected_rows(stream, payload)
    async with running(settings):
        assert await publish(broker.port, messages) == len(messages)
        for stream, table in TABLES.items():
            n = await wait_count(url, f"SELECT count(*) FROM {table}", expected[stream])
            assert n == expected[stream], stream
        assert await scalar(url, "SELECT count(*) FROM dead_letters") == 0
        # The first message of a device registered it under its (new) project.
        devices = await query(url, "SELECT project_id, device_id, kind, online FROM devices")
        assert {(r[0], r[1]) for r in devices} == {
            ("plant-a", t.split("/")[4]) for t, _ in messages
        }
        assert all(r["online"] for r in devices)
        assert await scalar(url, "SELECT count(*) FROM projects WHERE id = 'plant-a'") == 1

    # Spot-check the mapping of one example field by field.
    row = (
        await query(
            url,
            "SELECT * FROM inspections WHERE device_id = 'inspection-fail_with_defects'",
        )
    )[0]
    doc = orjson.loads((EXAMPLES / "inspection/valid/fail_with_defects.json").read_bytes())
    assert row["seq"] == doc["seq"]
    assert row["passed"] is (doc["result"] == "pass")
    assert row["defect_count"] == len(doc["defects"])
    assert orjson.loads(row["defects"]) == doc["defects"]
    assert row["part_id"] == doc["part_id"]
    tel = await query(url, "SELECT metric, value FROM telemetry WHERE device_id LIKE 'tel%'")
    assert tel, "telemetry rows carry metric names"


async def test_bad_input_is_dead_lettered_while_valid_traffic_continues(
    database_url: str, broker: Mosquitto
) -> None:
    settings = _settings(database_url, broker.port, max_payload_bytes=4096, max_future_s=60)
    project = f"bad-{uuid.uuid4().hex[:6]}"
    now_ms = int(time.time() * 1000)
    good_topic = topic(project, "inspection", "cam-1")
    bad: list[tuple[str, bytes, str]] = []
    for path in sorted(EXAMPLES.glob("*/invalid/*.json")):
        stream = path.parts[-3]
        bad.append((topic(project, stream, f"x-{path.stem}"), path.read_bytes(), "schema"))
    bad += [
        (good_topic, b"{not json", "invalid_json"),
        (good_topic, b"", "invalid_json"),
        (good_topic, b"\xff\xfe garbage", "invalid_json"),
        (good_topic, b'{"ts": 1, "seq": 1}' + b" " * 5000, "oversize"),
        (topic(project, "vibration", "cam-1"), inspection(1, now_ms), "unknown_stream"),
        (f"f5g/v1/{project}/camera/bad device!/inspection", inspection(1, now_ms), "bad_topic"),
        (f"f5g/v1/{project}/camera/{'d' * 65}/inspection", inspection(1, now_ms), "bad_topic"),
        (good_topic, inspection(5, now_ms + 3_600_000), "ts_future"),
        (good_topic, inspection(6, now_ms - 30 * 86400 * 1000), "ts_past"),
        (
            good_topic,
            inspection(7, now_ms).replace(b'"P-7"', b'"P\\u0000-7"'),
            "schema",
        ),
        (topic(project, "status", "cam-1"), b'{"online": "maybe"}', "schema"),
    ]
    # Valid messages interleaved with the bad ones must all land.
    messages: list[tuple[str, bytes]] = []
    for i, (t, p, _) in enumerate(bad):
        messages.append((t, p))
        messages.append((good_topic, inspection(100 + i, now_ms)))
    async with running(settings) as service:
        await publish(broker.port, messages)
        sql = f"SELECT count(*) FROM dead_letters WHERE topic LIKE 'f5g/v1/{project}/%'"
        assert await wait_count(database_url, sql, len(bad)) == len(bad)
        n_good = await wait_count(
            database_url,
            f"SELECT count(*) FROM inspections WHERE project_id = '{project}'",
            len(bad),
        )
        assert n_good == len(bad)
        assert service.consumer.connected
        metrics = service.metrics
        rejected = {
            s.labels["reason"]: s.value
            for m in metrics.rejected.collect()
            for s in m.samples
            if s.name.endswith("_total")
        }
    rows = await query(
        database_url,
        "SELECT topic, reason, detail, payload, payload_size, device_id FROM dead_letters "
        f"WHERE topic LIKE 'f5g/v1/{project}/%'",
    )
    got: dict[str, int] = {}
    for r in rows:
        got[r["reason"]] = got.get(r["reason"], 0) + 1
        assert r["detail"], r
    want: dict[str, int] = {}
    for _, _, reason in bad:
        want[reason] = want.get(reason, 0) + 1
    assert got == want
    assert rejected == {k: float(v) for k, v in want.items()}
    oversize = next(r for r in rows if r["reason"] == "oversize")
    assert oversize["payload_size"] == 5019
    assert len(oversize["payload"]) == 4096  # truncated
    assert next(r for r in rows if r["reason"] == "ts_future")["device_id"] == "cam-1"


async def test_redelivered_duplicates_are_stored_once(database_url: str, broker: Mosquitto) -> None:
    settings = _settings(database_url, broker.port)
    project = f"dup-{uuid.uuid4().hex[:6]}"
    now_ms = int(time.time() * 1000)
    t = topic(project, "inspection", "cam-1")
    first = [(t, inspection(i, now_ms + i)) for i in range(50)]
    async with running(settings):
        await publish(broker.port, first)
        sql = f"SELECT count(*) FROM inspections WHERE project_id = '{project}'"
        assert await wait_count(database_url, sql, 50) == 50
        # The same records again, alone and mixed with new ones in one batch.
        again = first[10:30] + [(t, inspection(i, now_ms + i)) for i in range(50, 60)] + first
        await publish(broker.port, again)
        assert await wait_count(database_url, sql, 60) == 60
        # A message that repeats a record inside its own array.
        rec = orjson.loads(inspection(70, now_ms + 70))
        await publish(broker.port, [(t, orjson.dumps([rec, rec, rec]))])
        assert await wait_count(database_url, sql, 61) == 61
    dups = await scalar(
        database_url,
        "SELECT count(*) FROM (SELECT seq, ts FROM inspections WHERE project_id = $1 "
        "GROUP BY seq, ts HAVING count(*) > 1) d",
        project,
    )
    assert dups == 0


async def test_status_topic_sets_online_state(database_url: str, broker: Mosquitto) -> None:
    settings = _settings(database_url, broker.port)
    project = f"st-{uuid.uuid4().hex[:6]}"
    now_ms = int(time.time() * 1000)
    status = topic(project, "status", "agv-7").replace("/dev/", "/agv/")
    sql = f"SELECT online FROM devices WHERE project_id = '{project}' AND device_id = 'agv-7'"

    async def online_is(value: bool) -> bool:
        rows = await query(database_url, sql)
        return bool(rows) and rows[0][0] is value

    async with running(settings):
        # The device dies: its will says offline. A bare socket, so that it can vanish
        # without DISCONNECT.
        will = codec.Will(status, b'{"online": false}', qos=1)
        _, writer = await asyncio.open_connection("127.0.0.1", broker.port)
        writer.write(codec.encode_connect(codec.ConnectOptions(f"agv-7-{project}", will=will)))
        writer.write(
            codec.encode_publish(topic(project, "agv", "agv-7"), _agv(now_ms), qos=1, packet_id=1)
        )
        await writer.drain()
        await wait_until(lambda: online_is(True), 10)
        writer.transport.abort()  # drop the TCP connection without DISCONNECT
        await wait_until(lambda: online_is(False), 10)
        await publish(broker.port, [(status, b"online")])
        await wait_until(lambda: online_is(True), 10)
        await publish(broker.port, [(status, b'"offline"')])
        await wait_until(lambda: online_is(False), 10)
        kind = await scalar(
            database_url, f"SELECT kind FROM devices WHERE project_id = '{project}'"
        )
        assert kind == "agv"


def _agv(ts_ms: int, seq: int = 1) -> bytes:
    return orjson.dumps(
        {
            "ts": ts_ms,
            "seq": seq,
            "x": 1.0,
            "y": 2.0,
            "heading": 90,
            "speed": 1.2,
            "battery": 80,
            "state": "moving",
            "localization": 0.95,
        }
    )


async def test_two_replicas_on_one_shared_subscription_store_each_message_once(
    database_url: str, broker: Mosquitto
) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    a = _settings(database_url, broker.port, share_group=group)
    b = _settings(database_url, broker.port, share_group=group)
    project = f"share-{uuid.uuid4().hex[:6]}"
    now_ms = int(time.time() * 1000)
    messages = [
        (topic(project, "inspection", f"cam-{i % 20}"), inspection(i, now_ms)) for i in range(2000)
    ]
    async with running(a) as one, running(b) as two:
        assert await publish(broker.port, messages, window=50) == len(messages)
        sql = f"SELECT count(*) FROM inspections WHERE project_id = '{project}'"
        assert await wait_count(database_url, sql, 2000) == 2000
        got = [_received(one), _received(two)]
    assert sum(got) == 2000
    assert min(got) > 0, f"one replica got nothing: {got}"
    distinct = await scalar(
        database_url,
        "SELECT count(DISTINCT (device_id, seq)) FROM inspections WHERE project_id = $1",
        project,
    )
    assert distinct == 2000


def _received(service: Any) -> int:
    return int(service.metrics.messages_received._value.get())


async def test_metrics_and_health_endpoints(database_url: str, broker: Mosquitto) -> None:
    from f5gdev.devstack.servers import free_port

    port = free_port()
    settings = _settings(database_url, broker.port, metrics_port=port)
    project = f"m-{uuid.uuid4().hex[:6]}"
    async with running(settings):
        await publish(broker.port, [(topic(project, "inspection", "c"), inspection(1))])
        await wait_count(
            database_url, f"SELECT count(*) FROM inspections WHERE project_id = '{project}'", 1
        )
        await wait_until(lambda: _http_ok(port, "/healthz"), 10)
        status, body = await _http(port, "/metrics")
    assert status == 200
    for name in (
        "factory5g_ingest_messages_received_total",
        'factory5g_ingest_rows_written_total{stream="inspection"}',
        "factory5g_ingest_rejected_total",
        "factory5g_ingest_batch_rows_bucket",
        "factory5g_ingest_commit_seconds_bucket",
        "factory5g_ingest_lag_seconds_bucket",
        "factory5g_ingest_queue_depth",
        "factory5g_ingest_mqtt_connected 1.0",
        "factory5g_ingest_database_up 1.0",
        "factory5g_ingest_reconnects_total",
    ):
        assert name in body, name


async def _http(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def _http_ok(port: int, path: str) -> bool:
    status, body = await _http(port, path)
    return status == 200 and orjson.loads(body)["ok"] is True
