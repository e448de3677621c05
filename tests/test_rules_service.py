"""The rules service end to end on the real broker and database.

Scripted device records go through Mosquitto into a running rules service; the alarms
must appear in `alarms` / `alarm_events` and on the alarm topics exactly as the scenarios
say. Also: two shards produce what one replica produces, malformed messages are skipped
without stopping anything, operators acknowledge and clear, and replay matches live.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import asyncpg
import orjson
import pytest

from f5gdev.devstack.servers import Mosquitto
from services.core.db import asyncpg_dsn
from services.protocols import alarm_lifecycle as lifecycle
from services.rules.config import parse_rules
from services.rules.engine import Engine
from services.rules.replay import replay
from services.rules.service import RulesService
from tests.conftest import make_settings
from tests.test_rules_scenarios import (
    BREAK_RULES,
    TEST_RULES,
    Scenario,
    agv,
    insp,
    key_transitions,
    link,
    scenarios,
)

T0 = time.time() - 300


class Running:
    def __init__(self, service: RulesService, task: asyncio.Task[None], stop: asyncio.Event):
        self.service, self.task, self.stop = service, task, stop

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


async def start_service(
    db_url: str,
    port: int,
    tmp: Path,
    client_id: str,
    index: int = 0,
    count: int = 1,
    rules: str = TEST_RULES,
) -> Running:
    rules_file = tmp / f"{client_id}.yaml"
    rules_file.write_text(rules)
    settings = make_settings(
        db_url,
        port,
        rules={
            "rules_file": str(rules_file),
            "client_id": client_id,
            "shard_index": index,
            "shard_count": count,
        },
    )
    service = RulesService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    await asyncio.wait_for(service.ready.wait(), 15)
    return Running(service, task, stop)


class Collector:
    """Everything published on the alarm topics."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def for_device(self, project: str, device: str) -> list[dict[str, Any]]:
        # f5g/v1/{project}/alarms/{kind}/{device}/{rule}
        return [
            m
            for t, m in self.messages
            if t.split("/")[2] == project
            and t.split("/")[3] == "alarms"
            and t.split("/")[5] == device
        ]


@pytest.fixture
async def collector(broker: Mosquitto) -> AsyncIterator[Collector]:
    col = Collector()
    client = aiomqtt.Client(
        "127.0.0.1", broker.port, identifier="t-alarms", protocol=aiomqtt.ProtocolVersion.V5
    )
    async with client:
        await client.subscribe("f5g/v1/+/alarms/#", qos=1)

        async def pump() -> None:
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                col.messages.append((msg.topic.value, orjson.loads(msg.payload)))

        task = asyncio.create_task(pump())
        yield col
        task.cancel()


async def publish(port: int, items: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as client:
        for topic, payload in items:
            await client.publish(topic, payload, qos=1)


def scenario_messages(sc: Scenario, project: str, device: str) -> list[tuple[str, bytes]]:
    topic = f"f5g/v1/{project}/{sc.kind}/{device}/{sc.stream}"
    return [(topic, orjson.dumps(rec)) for rec in sc.records]


async def events_of(db_url: str, project: str, device: str | None = None) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        rows = await conn.fetch(
            "SELECT a.device_id, a.rule, e.transition, e.severity, e.ts "
            "FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id "
            "WHERE a.project_id = $1 AND ($2::text IS NULL OR a.device_id = $2) "
            "ORDER BY e.ts, a.id, e.transition",
            project,
            device,
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()


def keys(rows: list[dict[str, Any]]) -> list[str]:
    return [
        r["transition"] if r["transition"] == "cleared" else f"{r['transition']}:{r['severity']}"
        for r in rows
        if r["transition"] != "updated"
    ]


async def wait_for(check: Callable[[], Any], within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def tmp_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rules")


async def test_every_scenario_end_to_end(
    database_url: str, broker: Mosquitto, collector: Collector, tmp_rules: Path
) -> None:
    svc = await start_service(database_url, broker.port, tmp_rules, "t-rules-e2e")
    try:
        all_scenarios = scenarios(T0)
        await asyncio.gather(
            *(
                publish(broker.port, scenario_messages(sc, "e2e", f"{sc.rule}-d"))
                for sc in all_scenarios
            )
        )

        async def settled() -> bool:
            rows = await events_of(database_url, "e2e")
            return sum(1 for r in rows if r["transition"] != "updated") >= sum(
                len(sc.expect) for sc in all_scenarios
            )

        await wait_for(settled)
        await asyncio.sleep(0.5)  # anything extra (a flap) would arrive now
        for sc in all_scenarios:
            device = f"{sc.rule}-d"
            rows = [r for r in await events_of(database_url, "e2e", device) if r["rule"] == sc.rule]
            assert keys(rows) == sc.expect, sc.rule
            if sc.updates:
                assert any(r["transition"] == "updated" for r in rows), sc.rule
            published = [m for m in collector.for_device("e2e", device) if m["rule"] == sc.rule]
            assert [
                m["transition"]
                if m["transition"] == "cleared"
                else f"{m['transition']}:{m['severity']}"
                for m in published
                if m["transition"] != "updated"
            ] == sc.expect, sc.rule
            opened = next(m for m in published if m["transition"] == "opened")
            assert opened["evidence"]["thresholds"]["raise"] is not None
            assert opened["alarm_id"] is not None
        conn = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            still_open = await conn.fetchval(
                "SELECT count(*) FROM alarms WHERE project_id = 'e2e' AND state <> 'cleared'"
                " AND device_id = rule || '-d'"
            )
            repeats = await conn.fetchval(
                "SELECT max(count) FROM alarms WHERE project_id = 'e2e' AND rule = 'battery_low'"
            )
        finally:
            await conn.close()
        assert still_open == 0
        assert repeats > 1
    finally:
        await svc.close()


async def test_timed_rules_on_the_wall_clock(
    database_url: str, broker: Mosquitto, tmp_rules: Path
) -> None:
    svc = await start_service(database_url, broker.port, tmp_rules, "t-rules-timed")
    try:
        now = time.time()
        await publish(
            broker.port,
            [
                ("f5g/v1/tm/agv/agv-1/agv", orjson.dumps(agv(now, 1))),
                ("f5g/v1/tm/vision/st-a/inspection", orjson.dumps(insp(now, 1))),
            ],
        )
        for i in range(2, 6):  # st-b keeps the line running while st-a is silent
            await publish(
                broker.port,
                [("f5g/v1/tm/vision/st-b/inspection", orjson.dumps(insp(time.time(), i)))],
            )
            await asyncio.sleep(0.8)

        async def opened() -> bool:
            rows = await events_of(database_url, "tm")
            return {(r["device_id"], r["transition"]) for r in rows} >= {
                ("agv-1", "opened"),
                ("st-a", "opened"),
            }

        assert await wait_for(opened, 10)
        await publish(
            broker.port,
            [
                ("f5g/v1/tm/agv/agv-1/agv", orjson.dumps(agv(time.time(), 2))),
                ("f5g/v1/tm/vision/st-a/inspection", orjson.dumps(insp(time.time(), 2))),
            ],
        )

        async def cleared() -> bool:
            rows = await events_of(database_url, "tm")
            return sum(1 for r in rows if r["transition"] == "cleared") >= 2

        assert await wait_for(cleared, 10)
        rows = await events_of(database_url, "tm")
        assert sorted(
            (r["device_id"], r["rule"], r["transition"])
            for r in rows
            if r["transition"] != "updated"
        ) == [
            ("agv-1", "connection_lost", "cleared"),
            ("agv-1", "connection_lost", "opened"),
            ("st-a", "station_silent", "cleared"),
            ("st-a", "station_silent", "opened"),
        ]
    finally:
        await svc.close()


async def test_station_silent_counts_only_stations_as_line_activity(
    database_url: str, broker: Mosquitto, tmp_rules: Path
) -> None:
    """Issue 15.4: both stations of a project stop (a break), its CPE keeps reporting.

    Project `brk` must stay without alarms. Project `run` is the control: one station
    stops while the other keeps producing, so the rule is live and must open one alarm.
    """
    svc = await start_service(
        database_url, broker.port, tmp_rules, "t-rules-mixed", rules=BREAK_RULES
    )
    try:
        now = time.time()
        await publish(
            broker.port,
            [
                ("f5g/v1/brk/vision/st-a/inspection", orjson.dumps(insp(now, 1))),
                ("f5g/v1/brk/vision/st-b/inspection", orjson.dumps(insp(now, 1))),
                ("f5g/v1/run/vision/st-c/inspection", orjson.dumps(insp(now, 1))),
            ],
        )
        engine = svc.service.engine
        raise_s = 3.0  # BREAK_RULES: station_silent raise

        def silence(project: str, device: str) -> float:
            dev = engine.devices.get((project, device))
            return 0.0 if dev is None else float(dev.slots["station_silent"].state.silent)

        def control_opened() -> bool:
            dev = engine.devices.get(("run", "st-c"))
            return dev is not None and dev.slots["station_silent"].active

        deadline = time.monotonic() + 90
        i = 1
        # Keep the CPEs and st-d reporting until the engine has judged both silent stations
        # of `brk` well past the raise threshold on its clock, and opened the control alarm
        # (a stalled machine may delay it: st-d must still be reporting when it does).
        while (
            min(silence("brk", "st-a"), silence("brk", "st-b")) < 2 * raise_s
            or not control_opened()
        ):
            assert time.monotonic() < deadline, "the rules clock did not tick"
            i += 1
            t = time.time()
            await publish(
                broker.port,
                [
                    ("f5g/v1/brk/cpe/cpe-1/link", orjson.dumps(link(t, i))),
                    ("f5g/v1/run/cpe/cpe-2/link", orjson.dumps(link(t, i))),
                    ("f5g/v1/run/vision/st-d/inspection", orjson.dumps(insp(t, i))),
                ],
            )
            await asyncio.sleep(0.3)
        await asyncio.wait_for(svc.service.queue.join(), 30)  # everything decided is stored
        run = [
            (r["device_id"], r["rule"], r["transition"])
            for r in await events_of(database_url, "run")
            if r["transition"] != "updated"
        ]
        assert run == [("st-c", "station_silent", "opened")]
        brk = [
            (r["device_id"], r["rule"], r["transition"])
            for r in await events_of(database_url, "brk")
        ]
        assert brk == [], f"{len(brk)} false alarms while the line was on a break: {brk}"
    finally:
        await svc.close()


# The scenarios below end with their devices silent, and `connection_lost` is judged on
# the wall clock: at TEST_RULES' 2 s it opened whenever a loaded machine took longer than
# that between a scenario's last message and the comparison, in one database and not the
# other (about one run in three). No scenario here expects it, so its threshold is put
# where no load reaches; the comparison then covers every alarm the scenarios produce.
SHARD_RULES = TEST_RULES.replace(
    "connection_lost: {raise: 2, escalate: null}", "connection_lost: {raise: 86400, escalate: null}"
)


async def test_two_shards_produce_the_alarms_of_one_replica(
    new_database: Callable[[], str], broker: Mosquitto, tmp_rules: Path
) -> None:
    assert SHARD_RULES != TEST_RULES
    sharded_db, single_db = new_database(), new_database()
    a = await start_service(sharded_db, broker.port, tmp_rules, "t-shard-0", 0, 2, SHARD_RULES)
    b = await start_service(sharded_db, broker.port, tmp_rules, "t-shard-1", 1, 2, SHARD_RULES)
    one = await start_service(single_db, broker.port, tmp_rules, "t-single", 0, 1, SHARD_RULES)
    try:
        picked = [
            sc for sc in scenarios(T0) if sc.rule in ("battery_low", "safety_stop", "rsrp_low")
        ]
        messages = [
            m
            for n in range(6)
            for sc in picked
            for m in scenario_messages(sc, "sh", f"d{n}-{sc.rule}")
        ]
        await publish(broker.port, messages)
        expected = 6 * sum(len(sc.expect) for sc in picked)

        async def done(url: str) -> bool:
            rows = await events_of(url, "sh")
            return sum(1 for r in rows if r["transition"] != "updated") >= expected

        assert await wait_for(lambda: done(sharded_db))
        assert await wait_for(lambda: done(single_db))
        await asyncio.sleep(0.5)

        def summary(rows: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
            return sorted(
                (r["device_id"], r["rule"], r["transition"], r["severity"])
                for r in rows
                if r["transition"] != "updated"
            )

        assert summary(await events_of(sharded_db, "sh")) == summary(
            await events_of(single_db, "sh")
        )
        # And both hold exactly what each scenario says of its rule, device by device.
        for url in (sharded_db, single_db):
            for n in range(6):
                for sc in picked:
                    rows = await events_of(url, "sh", f"d{n}-{sc.rule}")
                    got = keys([r for r in rows if r["rule"] == sc.rule])
                    assert got == sc.expect, (url == sharded_db, n, sc.rule, got)
        # Both shards did part of the work.
        assert a.service.engine.devices
        assert b.service.engine.devices
        assert not set(a.service.engine.devices) & set(b.service.engine.devices)
    finally:
        for svc in (a, b, one):
            await svc.close()


async def test_malformed_messages_do_not_stop_evaluation(
    database_url: str, broker: Mosquitto, tmp_rules: Path
) -> None:
    svc = await start_service(database_url, broker.port, tmp_rules, "t-rules-bad")
    try:
        good = orjson.dumps(agv(T0, 1, battery=5))
        await publish(
            broker.port,
            [
                ("f5g/v1/bad/agv/a1/agv", b"{not json"),
                ("f5g/v1/bad/agv/a1/agv", orjson.dumps({**agv(T0, 1), "battery": 400})),
                ("f5g/v1/bad/agv/a1/nostream", good),
                ("f5g/v1/bad/agv/bad id!/agv", good),
                ("f5g/v1/bad/agv/a1/agv", b"\xff\xfe" * 100),
                ("f5g/v1/bad/agv/a2/agv", good),
            ],
        )

        async def opened() -> list[dict[str, Any]]:
            return await events_of(database_url, "bad")

        rows = await wait_for(opened)
        assert [(r["device_id"], r["rule"], r["transition"]) for r in rows] == [
            ("a2", "battery_low", "opened")
        ]
        assert svc.task.done() is False
    finally:
        await svc.close()


async def test_operator_acknowledge_and_clear(database_url: str) -> None:

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        now = datetime.now(UTC)
        row = await lifecycle.open_or_update(
            conn,
            project="ops",
            device="d1",
            rule="battery_low",
            severity="warning",
            message="m",
            count=1,
            value=15.0,
            evidence={"v": 1},
            at=now,
        )
        assert row["inserted"]
        again = await lifecycle.open_or_update(
            conn,
            project="ops",
            device="d1",
            rule="battery_low",
            severity="warning",
            message="m",
            count=1,
            value=14.0,
            evidence={"v": 2},
            at=now,
        )
        assert again["id"] == row["id"]
        assert not again["inserted"]
        assert again["count"] == 2
        acked = await lifecycle.acknowledge(conn, row["id"], "alice", now)
        assert acked["state"] == "acknowledged"
        assert acked["acknowledged_by"] == "alice"
        with pytest.raises(lifecycle.InvalidTransitionError):
            await lifecycle.acknowledge(conn, row["id"], "bob", now)
        cleared = await lifecycle.clear(conn, row["id"], "alice", now, note="fixed")
        assert cleared["state"] == "cleared"
        with pytest.raises(lifecycle.AlarmNotFoundError):
            await lifecycle.clear(conn, 10**12, "alice", now)
        events = await conn.fetch(
            "SELECT transition, actor FROM alarm_events WHERE alarm_id = $1",
            row["id"],
        )
        assert sorted((e["transition"], e["actor"]) for e in events) == [
            ("acknowledged", "alice"),
            ("cleared", "alice"),
            ("opened", None),
            ("updated", None),
        ]
    finally:
        await conn.close()


async def test_replay_matches_live_evaluation(new_database: Callable[[], str]) -> None:
    url = new_database()
    sc = next(s for s in scenarios(T0) if s.rule == "battery_low")
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        from datetime import UTC, datetime

        await conn.executemany(
            "INSERT INTO agv_status (ts, project_id, device_id, seq, x, y, heading, speed, battery,"
            " state, localization, received_at)"
            " VALUES ($1, 'rp', 'a1', $2, $3, $4, $5, $6, $7, $8, $9, now())",
            [
                (
                    datetime.fromtimestamp(r["ts"] / 1000, UTC),
                    r["seq"],
                    r["x"],
                    r["y"],
                    r["heading"],
                    r["speed"],
                    r["battery"],
                    r["state"],
                    r["localization"],
                )
                for r in sc.records
            ],
        )
    finally:
        await conn.close()
    ruleset = parse_rules(TEST_RULES, "t.yaml")
    seen: list[Any] = []
    start = datetime.fromtimestamp(T0 - 1, UTC)
    summary = await replay(url, ruleset, start, datetime.now(UTC), emit=seen.append)
    assert summary.records == len(sc.records)
    live = Engine(parse_rules(TEST_RULES, "t.yaml"))
    from tests.test_rules_scenarios import run_scenario

    expected = run_scenario(live, sc, "a1", project="rp")
    got = [t for t in seen if t.rule == "battery_low"]
    assert key_transitions(got) == key_transitions(expected) == sc.expect
