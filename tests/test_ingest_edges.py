"""Protocol edges through the real broker, the real ingest and the real database.

Each test attacks one way a message used to be lost or misattributed: a dead letter
without the device its topic names, a VDA 5050 state without `agvPosition`, a Sparkplug
String metric, Sparkplug metric names that collide after mapping, an alias the BIRTH never
declared, DDATA that leaves the node's `last_seen` behind, and a status message from the
far future that pinned a device's online state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from f5gdev.devstack.servers import Mosquitto, Postgres
from services.core.metrics import service_registry
from services.core.settings import Settings, load_settings
from services.ingest.metrics import IngestMetrics
from services.ingest.writer import Writer
from services.protocols import sparkplug_b_pb2 as pb
from services.protocols.adapters.registry import load_adapters
from services.protocols.batch import Batch
from services.protocols.pipeline import Pipeline
from services.security import db_roles
from tests.test_ingest_helpers import inspection, publish, query, running, scalar, wait_until

DOUBLE, STRING, INT64 = 10, 12, 4  # Sparkplug datatypes


def _settings(db_url: str, port: int, **ingest: Any) -> Settings:
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {"client_id": f"ingest-{tag}", "share_group": f"g-{tag}"}
    values.update(ingest)
    return load_settings(
        database={"url": db_url},
        mqtt={"host": "127.0.0.1", "port": port},
        ingest={"metrics_port": 0, **values},
    )


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _vda_state(serial: str, header: int, at: datetime, **over: Any) -> bytes:
    """A VDA 5050 2.0.0 state with only the fields the official schema requires."""
    doc: dict[str, Any] = {
        "headerId": header,
        "timestamp": _iso(at),
        "version": "2.0.0",
        "manufacturer": "Acme",
        "serialNumber": serial,
        "orderId": "",
        "orderUpdateId": 0,
        "lastNodeId": "",
        "lastNodeSequenceId": 0,
        "nodeStates": [],
        "edgeStates": [],
        "driving": True,
        "actionStates": [],
        "batteryState": {"batteryCharge": 64.5, "charging": False},
        "operatingMode": "AUTOMATIC",
        "errors": [{"errorType": "LINE_LOST", "errorLevel": "WARNING"}],
        "safetyState": {"eStop": "NONE", "fieldViolation": False},
    }
    doc.update(over)
    return json.dumps(doc).encode()


def _position(x: float, y: float, score: float) -> dict[str, Any]:
    return {
        "x": x,
        "y": y,
        "theta": 0.0,
        "mapId": "hall",
        "positionInitialized": True,
        "localizationScore": score,
    }


def _spb(
    seq: int | None,
    metrics: list[tuple[str | None, int | None, int, Any]],
    ts: int | None = None,
) -> bytes:
    """Sparkplug payload from (name, alias, datatype, value) tuples."""
    p = pb.Payload(timestamp=ts if ts is not None else int(time.time() * 1000))
    if seq is not None:
        p.seq = seq
    for name, alias, dtype, value in metrics:
        m = p.metrics.add(datatype=dtype)
        if name is not None:
            m.name = name.encode()
        if alias is not None:
            m.alias = alias
        if dtype == DOUBLE:
            m.double_value = value
        elif dtype == STRING:
            m.string_value = value.encode()
        elif dtype == INT64:
            m.long_value = value
    return p.SerializeToString()


async def _dead(url: str) -> list[tuple[str, str, str | None, str | None]]:
    rows = await query(
        url, "SELECT topic, reason, project_id, device_id FROM dead_letters ORDER BY received_at"
    )
    return [(r["topic"], r["reason"], r["project_id"], r["device_id"]) for r in rows]


# --------------------------------------------------------------------------- issue 15.1


async def test_every_dead_letter_names_what_its_topic_reveals(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    p, g = "plant-a", "line-g"
    settings = _settings(
        url,
        broker.port,
        vda5050_projects={"Acme": "hall-v"},
        max_future_s=60,
    )
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    big = b'{"ts": 1, "seq": 1, "pad": "' + b"x" * 300_064 + b'"}'
    assert len(big) == 300_094
    # (topic, payload, reason, project, device) the dead letter must carry.
    cases: list[tuple[str, bytes, str, str | None, str | None]] = [
        (f"f5g/v1/{p}/camera/d5/inspection", big, "oversize", p, "d5"),
        (f"f5g/v1/{p}/camera/d5/vibration", inspection(1, now_ms), "unknown_stream", p, "d5"),
        (f"f5g/v1/{p}/camera/d5/inspection", b"{not json", "invalid_json", p, "d5"),
        # The device level breaks the grammar; the project is still known.
        (f"f5g/v1/{p}/camera/bad device!/inspection", inspection(1), "bad_topic", p, None),
        (f"spBv1.0/{g}/NDATA/n1", b"\xff\xfe not protobuf", "protocol", g, "n1"),
        (f"spBv1.0/{g}/DDATA/n1/press", b"\xff\xfe", "protocol", g, "n1.press"),
        (f"spBv1.0/{g}/NBIRTH/n2", big, "oversize", g, "n2"),
        ("uagv/v2/Acme/AGV 7/state", b"{}", "schema", "hall-v", "Acme.AGV_7"),
        ("uagv/v2/Acme/AGV 7/state", big, "oversize", "hall-v", "Acme.AGV_7"),
        (
            "uagv/v2/Acme/AGV 8/state",
            _vda_state("AGV 8", 1, now + timedelta(days=1)),
            "ts_future",
            "hall-v",
            "Acme.AGV_8",
        ),
    ]
    async with running(settings):
        await publish(broker.port, [(t, payload) for t, payload, *_ in cases])

        async def all_in() -> bool:
            return int(await scalar(url, "SELECT count(*) FROM dead_letters")) >= len(cases)

        await wait_until(all_in, 30)
    got = await _dead(url)
    want = [(t, reason, proj, dev) for t, _, reason, proj, dev in cases]
    unattributed = [w for w in want if w not in got]
    assert not unattributed, f"{len(unattributed)} of {len(want)} dead letters lack their device"
    assert sorted(got) == sorted(want)


# --------------------------------------------------------------------------- issue 15.2


async def test_vda5050_state_without_agv_position_is_stored_as_it_is(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    settings = _settings(url, broker.port, vda5050_projects={"Acme": "hall-v"})
    now = datetime.now(UTC)
    base = "uagv/v2/Acme"
    messages = [
        # A new line-guided AGV: the required fields only, never a position or velocity.
        (f"{base}/LG-1/state", _vda_state("LG-1", 0, now - timedelta(seconds=3))),
        # An AGV that knows its position, then stops reporting it.
        (
            f"{base}/NAV-1/state",
            _vda_state(
                "NAV-1",
                0,
                now - timedelta(seconds=2),
                agvPosition=_position(4.0, 5.0, 0.9),
                velocity={"vx": 0.3, "vy": 0.4},
            ),
        ),
        (f"{base}/NAV-1/state", _vda_state("NAV-1", 1, now - timedelta(seconds=1))),
    ]
    async with running(settings):
        await publish(broker.port, messages)

        async def landed() -> bool:
            n = int(await scalar(url, "SELECT count(*) FROM agv_status"))
            dead = int(await scalar(url, "SELECT count(*) FROM dead_letters"))
            return n + dead >= len(messages)

        await wait_until(landed, 20)
    dead = await _dead(url)
    rows = await query(
        url,
        "SELECT device_id, seq, x, y, heading, speed, battery, state, localization, error_code"
        " FROM agv_status ORDER BY device_id, seq",
    )
    got = [tuple(r) for r in rows]
    lost = len(messages) - len(got)
    assert lost == 0, f"lost {lost} of {len(messages)} states: {dead}"
    assert got == [
        ("Acme.LG-1", 0, None, None, None, None, 64.5, "moving", None, "LINE_LOST"),
        ("Acme.NAV-1", 0, 4.0, 5.0, 0.0, 0.5, 64.5, "moving", 0.9, "LINE_LOST"),
        # Absent stays absent: no earlier position, no invented localisation of 0.
        ("Acme.NAV-1", 1, None, None, None, None, 64.5, "moving", None, "LINE_LOST"),
    ]
    assert dead == []


async def test_vda5050_nul_in_a_string_is_a_dead_letter_of_its_agv(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    # PostgreSQL text cannot hold NUL; JSON can smuggle one in as an escape.
    url, broker = new_database(), new_broker()
    settings = _settings(url, broker.port, vda5050_projects={"Acme": "hall-v"})
    now = datetime.now(UTC)
    topic = "uagv/v2/Acme/AGV-3/state"
    bad_error = [{"errorType": "MOTOR\u0000", "errorLevel": "WARNING"}]
    states = [
        _vda_state("AGV-3", 0, now - timedelta(seconds=3)),
        _vda_state("AGV-3", 1, now - timedelta(seconds=2), errors=bad_error),
        _vda_state("AGV-3", 2, now - timedelta(seconds=1), orderId="o\u0000"),
        _vda_state("AGV-3", 3, now),
    ]
    async with running(settings):
        await publish(broker.port, [(topic, p) for p in states])

        async def settled() -> bool:
            n = int(await scalar(url, "SELECT count(*) FROM agv_status"))
            return n + int(await scalar(url, "SELECT count(*) FROM dead_letters")) >= 4

        await wait_until(settled, 20)
    rows = await query(url, "SELECT seq FROM agv_status ORDER BY seq")
    assert [r["seq"] for r in rows] == [0, 3]
    assert await _dead(url) == [(topic, "schema", "hall-v", "Acme.AGV-3")] * 2
    details = await query(url, "SELECT detail FROM dead_letters")
    assert all("NUL" in r["detail"] for r in details), details


# --------------------------------------------------------------------------- issue 15.6


async def test_sparkplug_string_metrics_are_stored(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    g, node = "line-t", "n1"
    settings = _settings(url, broker.port)
    t0 = int(time.time() * 1000)
    sent = [  # (device, metric, value) of every String value sent
        (node, "State", "RUN"),
        (f"{node}.press", "Recipe", "R-17"),
        (f"{node}.press", "Recipe", "R-18 \u00e9t\u00e9"),
    ]
    async with running(settings) as service:
        await publish(
            broker.port,
            [
                (
                    f"spBv1.0/{g}/NBIRTH/{node}",
                    _spb(0, [("bdSeq", None, INT64, 0), ("State", 1, STRING, "RUN")], t0),
                ),
                (
                    f"spBv1.0/{g}/DBIRTH/{node}/press",
                    _spb(1, [("Recipe", 5, STRING, "R-17"), ("Force", 6, DOUBLE, 3.5)], t0),
                ),
                (
                    f"spBv1.0/{g}/DDATA/{node}/press",
                    _spb(2, [(None, 5, STRING, "R-18 \u00e9t\u00e9")], t0 + 1),
                ),
                # PostgreSQL text cannot hold NUL: nothing storable, so a dead letter.
                (
                    f"spBv1.0/{g}/DDATA/{node}/press",
                    _spb(3, [(None, 5, STRING, "bad\x00")], t0 + 2),
                ),
            ],
        )

        async def stored() -> list[tuple[str, str, str]]:
            if await scalar(url, "SELECT to_regclass('telemetry_text') IS NULL"):
                return []  # no table for text values at all
            rows = await query(
                url, "SELECT device_id, metric, value FROM telemetry_text ORDER BY ts, device_id"
            )
            return [(r["device_id"], r["metric"], r["value"]) for r in rows]

        async def settled() -> bool:
            dead = int(await scalar(url, "SELECT count(*) FROM dead_letters"))
            return len(await stored()) >= len(sent) and dead >= 1

        with contextlib.suppress(AssertionError):  # the assertions below say what is missing
            await wait_until(settled, 20)
        got = await stored()
        assert got == sent, f"stored {len(got)} of {len(sent)} String values: {got}"
        # A redelivered copy maps onto the same row (the natural key, as for telemetry).
        again = _spb(2, [(None, 5, STRING, "R-18 \u00e9t\u00e9")], t0 + 1)
        await publish(broker.port, [(f"spBv1.0/{g}/DDATA/{node}/press", again)])
        await publish(broker.port, [(f"f5g/v1/{g}/dev/marker/telemetry", b"{}")])

        async def handled() -> bool:
            # The copy came before the marker on one connection, so it was in the marker's
            # batch or an earlier one: once the marker is committed and nothing is pending,
            # the copy is committed too.
            dead = int(await scalar(url, "SELECT count(*) FROM dead_letters"))
            return dead >= 2 and service.writer.pending == 0

        await wait_until(handled, 20)
        assert await stored() == sent
    assert await _dead(url) == [
        (f"spBv1.0/{g}/DDATA/{node}/press", "schema", g, f"{node}.press"),
        (f"f5g/v1/{g}/dev/marker/telemetry", "schema", g, "marker"),
    ]
    force = await query(url, "SELECT metric, value FROM telemetry")
    assert [(r["metric"], r["value"]) for r in force] == [("Force", 3.5)]


async def test_ddata_keeps_the_edge_node_seen(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    g, node = "line-s", "n1"
    settings = _settings(url, broker.port)
    t0 = int(time.time() * 1000)
    sql = "SELECT last_seen FROM devices WHERE project_id = $1 AND device_id = $2"
    async with running(settings):
        await publish(
            broker.port,
            [
                (
                    f"spBv1.0/{g}/NBIRTH/{node}",
                    _spb(0, [("bdSeq", None, INT64, 0), ("Temp", 1, DOUBLE, 20.5)], t0),
                ),
                (
                    f"spBv1.0/{g}/DBIRTH/{node}/press",
                    _spb(1, [("Force", 6, DOUBLE, 3.5)], t0),
                ),
            ],
        )

        async def born() -> bool:
            return len(await query(url, "SELECT 1 FROM devices WHERE project_id = $1", g)) == 2

        await wait_until(born, 20)
        first = await scalar(url, sql, g, node)
        # Only the device sends from now on; the node that carries it is alive too. The
        # registry writes last_seen at most every few seconds, so keep sending until then.
        seq = 2
        deadline = time.monotonic() + 30
        while True:
            await publish(
                broker.port,
                [(f"spBv1.0/{g}/DDATA/{node}/press", _spb(seq, [(None, 6, DOUBLE, 4.0 + seq)]))],
            )
            seq += 1
            device_seen = await scalar(url, sql, g, f"{node}.press")
            if await scalar(url, sql, g, node) > first:
                break
            assert time.monotonic() < deadline, (
                f"node last_seen stayed at {first} through {seq - 2} DDATA over 30 s "
                f"(its device's reached {device_seen})"
            )
            await asyncio.sleep(0.5)
    assert await _dead(url) == []


# --------------------------------------------------------------------------- issue 14.7


async def test_colliding_names_and_undeclared_aliases_are_dead_lettered(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    g, node = "line-c", "n1"
    settings = _settings(url, broker.port, sparkplug_rebirth_min_interval_s=60.0)
    t0 = int(time.time() * 1000)
    birth = _spb(
        0,
        [("bdSeq", None, INT64, 0), ("x a", 1, DOUBLE, 1.0), ("x_a", 2, DOUBLE, 2.0)],
        t0,
    )
    async with running(settings):
        await publish(
            broker.port,
            [
                (f"spBv1.0/{g}/NBIRTH/{node}", birth),
                (f"spBv1.0/{g}/NDATA/{node}", _spb(1, [(None, 1, DOUBLE, 11.0)], t0 + 1)),
                (f"spBv1.0/{g}/NDATA/{node}", _spb(2, [(None, 2, DOUBLE, 12.0)], t0 + 2)),
                # Alias 9 was never declared; alias 1 next to it still lands.
                (
                    f"spBv1.0/{g}/NDATA/{node}",
                    _spb(3, [(None, 9, DOUBLE, 99.0), (None, 1, DOUBLE, 13.0)], t0 + 3),
                ),
                (f"spBv1.0/{g}/NDATA/{node}", _spb(4, [(None, 9, DOUBLE, 98.0)], t0 + 4)),
            ],
        )

        async def settled() -> bool:
            n = int(await scalar(url, "SELECT count(*) FROM telemetry"))
            return n >= 3 and int(await scalar(url, "SELECT count(*) FROM dead_letters")) >= 4

        with contextlib.suppress(AssertionError):  # the assertions below say what is missing
            await wait_until(settled, 20)
    rows = await query(url, "SELECT metric, value FROM telemetry ORDER BY ts")
    assert [(r["metric"], r["value"]) for r in rows] == [("x_a", 1.0), ("x_a", 11.0), ("x_a", 13.0)]
    dead = await _dead(url)
    birth_topic, data_topic = f"spBv1.0/{g}/NBIRTH/{node}", f"spBv1.0/{g}/NDATA/{node}"
    assert sorted(dead) == sorted(
        [
            (birth_topic, "protocol", g, node),  # "x_a" collides with "x a"
            (data_topic, "protocol", g, node),  # a value of the colliding "x_a"
            (data_topic, "protocol", g, node),  # alias 9 next to alias 1
            (data_topic, "protocol", g, node),  # alias 9 alone
        ]
    ), f"{4 - len(dead)} of 4 dropped values left no dead letter"
    details = await query(url, "SELECT detail FROM dead_letters ORDER BY received_at")
    assert "'x_a' maps to 'x_a' like 'x a'" in details[0]["detail"]
    assert all("alias 9" in r["detail"] for r in details[2:])


async def test_status_from_the_far_future_is_dead_lettered_not_pinned(
    new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    url, broker = new_database(), new_broker()
    p = "plant-s"
    settings = _settings(url, broker.port, max_future_s=60)
    status = f"f5g/v1/{p}/agv/a1/status"
    sql = "SELECT online FROM devices WHERE project_id = $1 AND device_id = 'a1'"
    async with running(settings):
        await publish(broker.port, [(status, b'{"online": false}')])

        async def is_online(want: bool) -> bool:
            rows = await query(url, sql, p)
            return bool(rows) and rows[0]["online"] is want

        await wait_until(lambda: is_online(False), 15)
        await publish(broker.port, [(status, b'{"online": true, "ts": "2099-01-01T00:00:00Z"}')])

        async def handled() -> bool:
            # Committed either way: dead-lettered, or (the old way) written as last_seen.
            dead = int(await scalar(url, "SELECT count(*) FROM dead_letters"))
            future = await scalar(
                url, "SELECT max(last_seen) > now() + interval '1 day' FROM devices"
            )
            return dead > 0 or bool(future)

        await wait_until(handled, 15)
        await publish(broker.port, [(status, b'{"online": true}')])
        await wait_until(lambda: is_online(True), 15)
        await publish(broker.port, [(status, b'{"online": false}')])
        try:
            await wait_until(lambda: is_online(False), 15)
        except AssertionError:
            raise AssertionError("a status dated 2099 pinned the device online") from None
        seen = await scalar(url, "SELECT last_seen FROM devices WHERE device_id = 'a1'")
        assert seen < datetime.now(UTC) + timedelta(minutes=1)
    assert await _dead(url) == [(status, "ts_future", p, "a1")]


async def test_a_row_the_database_refuses_is_dead_lettered_under_its_device(
    new_database: Callable[[], str],
) -> None:
    """Defence in depth: should an adapter ever let through a value PostgreSQL refuses, the
    writer isolates the message and dead-letters it, filed under its device like any other.
    The batch is built by the real pipeline; one row is then given a NUL, which no adapter
    lets through today, and written to the real database."""
    url = new_database()
    settings = _settings(url, 1883)
    pipeline = Pipeline(settings.ingest, load_adapters(settings))
    b = Batch(0)
    now = datetime.now(UTC)
    good, bad = "f5g/v1/p/camera/cam-1/inspection", "f5g/v1/p/camera/cam-2/inspection"
    pipeline.fill(b, good, inspection(1), now, 0, 0, False)
    pipeline.fill(b, bad, inspection(2), now, 0, 0, False)
    row = b.rows["inspections"][1]
    b.rows["inspections"][1] = (*row[:4], "st\x00", *row[5:])  # the station column
    committed: list[Batch] = []
    writer = Writer(url, 1, 10.0, IngestMetrics(service_registry()), committed.append)
    writer.start()
    try:
        writer.submit(b)
        await asyncio.wait_for(writer.drain(), 30)
    finally:
        await writer.stop()
    assert committed == [b]
    rows = await query(url, "SELECT device_id FROM inspections")
    assert [r["device_id"] for r in rows] == ["cam-1"]
    assert await _dead(url) == [(bad, "schema", "p", "cam-2")]


async def test_string_metrics_land_under_the_ingest_role(
    pg: Postgres, new_database: Callable[[], str], new_broker: Callable[[], Mosquitto]
) -> None:
    """In production ingest logs in as a member of its least-privilege group role, which
    must be allowed to write text telemetry: a refused INSERT would be retried for ever
    and stall all of ingest."""
    url, broker = new_database(), new_broker()
    user = f"t_ingest_{uuid.uuid4().hex[:6]}"
    pg.psql(db_roles.login_user_sql(user, db_roles.INGEST, "pw-" + user))
    dbname = url.rsplit("/", 1)[1]
    role_url = f"postgresql://{user}:pw-{user}@127.0.0.1:{pg.port}/{dbname}"
    settings = _settings(role_url, broker.port)
    t0 = int(time.time() * 1000)
    birth = _spb(0, [("bdSeq", None, INT64, 0), ("Mode", 1, STRING, "auto")], t0)
    async with running(settings):
        await publish(broker.port, [("spBv1.0/line-r/NBIRTH/n1", birth)])

        async def landed() -> bool:
            if await scalar(url, "SELECT to_regclass('telemetry_text') IS NULL"):
                return False
            return int(await scalar(url, "SELECT count(*) FROM telemetry_text")) == 1

        try:
            await wait_until(landed, 20)
        except AssertionError:
            raise AssertionError("the ingest role stored 0 of 1 String values") from None
