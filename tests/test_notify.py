"""The notifier end to end: real PostgreSQL, real HTTP receivers on loopback, real processes.

What is counted is what a receiver accepted per idempotency key: every transition of every
alarm must reach every matching route exactly once, through two notifiers at the same
time, a receiver outage and a notifier killed mid-send.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from f5gdev.devstack.servers import Mosquitto, Postgres
from services.core.settings import Settings
from services.protocols import alarm_lifecycle as lifecycle
from services.rules import store
from services.rules.engine import CLEARED, OPENED, UPDATED, Transition
from services.security import db_roles
from tests.conftest import make_settings
from tests.notify_support import (
    NotifierProcess,
    Receiver,
    add_route,
    connect,
    notifier,
    notify_env,
    open_alarm,
)
from tests.test_ingest_helpers import wait_until
from tests.test_rules_scenarios import agv
from tests.test_rules_service import publish, start_service


async def wait_for(check: Callable[[], Awaitable[bool]], within: float) -> None:
    """Wait up to `within` s; the caller's assertion then states what was lost."""
    with contextlib.suppress(AssertionError):
        await wait_until(check, within)


# Seconds-scale values so the fault tests run in seconds; production defaults are larger.
FAST = {
    "poll_interval_s": 0.5,
    "retry_base_s": 0.2,
    "retry_max_s": 2.0,
    "send_timeout_s": 2.0,
    "lease_s": 4.0,
    "escalation_interval_s": 0.3,
    "metrics_port": 0,
    # The receivers listen on loopback: the opt-out the local stack also sets.
    "allow_private_targets": ["127.0.0.0/8"],
}


def fast_settings(database_url: str, **notify: object) -> Settings:
    return make_settings(database_url, 1883, notify={**FAST, **notify})


def project() -> str:
    return f"n{uuid.uuid4().hex[:8]}"


def tr(kind: str, project_id: str, device: str, at: float, severity: str = "major") -> Transition:
    return Transition(
        kind,
        project_id,
        "agv",
        device,
        "safety_stop",
        "state",
        severity,
        at,
        at,
        1.0,
        1,
        f"{device} {kind}",
        {"device": device},
    )


async def outbox_kinds(conn: asyncpg.Connection, project_id: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT a.device_id AS device, o.kind FROM notify_outbox o "
        "JOIN alarms a ON a.id = o.alarm_id WHERE o.project_id = $1 ORDER BY o.id",
        project_id,
    )
    return [(r["device"], r["kind"]) for r in rows]


async def test_trigger_writes_the_outbox_in_the_transitions_transaction(
    database_url: str,
) -> None:
    """Both writers (the rules store's bulk and single statements, an operator's
    acknowledge) get an outbox row per notified transition, none for `updated`, and none
    when the transition's transaction rolls back."""
    p = project()
    conn = await connect(database_url)
    try:
        t0 = time.time() - 30
        await store.apply(conn, [tr(OPENED, p, f"d{i}", t0) for i in range(6)])  # bulk path
        await store.apply(
            conn,
            [
                tr(UPDATED, p, "d0", t0 + 1),
                tr("escalated", p, "d1", t0 + 2, "critical"),
                tr(CLEARED, p, "d2", t0 + 3),
            ],
        )
        alarm = await conn.fetchval(
            "SELECT id FROM alarms WHERE project_id = $1 AND device_id = 'd3'", p
        )
        await lifecycle.acknowledge(conn, alarm, "op", datetime.now(UTC))
        tx = conn.transaction()
        await tx.start()
        await open_alarm(conn, p, "rolled-back")
        await tx.rollback()
        kinds = await outbox_kinds(conn, p)
        assert sorted(kinds) == sorted(
            [(f"d{i}", "opened") for i in range(6)]
            + [("d1", "escalated"), ("d2", "cleared"), ("d3", "acknowledged")]
        )
        snap = await conn.fetchrow(
            "SELECT payload FROM notify_outbox WHERE project_id = $1 AND kind = 'escalated'", p
        )
        assert '"severity": "critical"' in snap["payload"]
    finally:
        await conn.close()


async def test_each_transition_reaches_each_route_once_with_two_notifiers(
    database_url: str,
) -> None:
    """40 alarms opened, acknowledged and cleared (120 transitions), two routes, two
    notifiers working the same outbox: 240 deliveries, each key accepted exactly once."""
    p = project()
    a, b = Receiver(), Receiver()
    await a.start()
    await b.start()
    conn = await connect(database_url)
    try:
        await add_route(conn, p, a.url, "ops")
        await add_route(conn, p, b.url, "it", language="zh")
        settings = fast_settings(database_url)
        async with notifier(settings), notifier(settings):
            ids = [await open_alarm(conn, p, f"agv-{i}") for i in range(40)]
            for alarm in ids:
                await lifecycle.acknowledge(conn, alarm, "op", datetime.now(UTC))
            for alarm in ids:
                await lifecycle.clear(conn, alarm, "op", datetime.now(UTC))

            async def done() -> bool:
                return len(a.accepted) >= 120 and len(b.accepted) >= 120

            await wait_for(done, 60)
        lost = 240 - len(a.accepted) - len(b.accepted)
        assert (lost, a.duplicates(), b.duplicates()) == (0, 0, 0)
        assert {body["language"] for body in b.bodies} == {"zh"}
        kinds = sorted(body["kind"] for body in a.bodies)
        assert kinds == sorted(["opened", "acknowledged", "cleared"] * 40)
        states = await conn.fetch(
            "SELECT state, count(*) AS n FROM notify_deliveries WHERE project_id = $1 "
            "GROUP BY state",
            p,
        )
        assert {r["state"]: r["n"] for r in states} == {"sent": 240}
        # The router completed and stored each transition's snapshot.
        complete = await conn.fetchval(
            "SELECT count(*) FROM notify_outbox WHERE project_id = $1 "
            "AND payload->>'device' LIKE 'agv-%' AND payload->>'rule' = 'safety_stop'",
            p,
        )
        assert complete == 120
        assert {b["alarm"]["device"] for b in a.bodies} == {f"agv-{i}" for i in range(40)}
    finally:
        await conn.close()
        await a.stop()
        await b.stop()


OUTAGE_S = float(os.environ.get("F5G_TEST_NOTIFY_OUTAGE_S", "6"))


async def test_receiver_down_then_back_delivers_each_key_once(database_url: str) -> None:
    """The receiver is down (connection refused, then 503) while 30 alarms open; once it is
    back every notification arrives, once per idempotency key. The outage lasts
    F5G_TEST_NOTIFY_OUTAGE_S seconds (6 here; 60 in the slow variant)."""
    await _outage(database_url, OUTAGE_S)


@pytest.mark.slow
async def test_receiver_down_60s_then_back(database_url: str) -> None:
    await _outage(database_url, 60.0)


async def _outage(database_url: str, outage_s: float) -> None:
    p = project()
    rx = Receiver()
    conn = await connect(database_url)
    try:
        await add_route(conn, p, rx.url, "ops")
        async with notifier(fast_settings(database_url)) as service:
            for i in range(30):
                await open_alarm(conn, p, f"agv-{i}")
            await asyncio.sleep(outage_s / 2)  # the outage itself, refused connections
            rx.mode = "error"
            await rx.start()
            await asyncio.sleep(outage_s / 2)  # then 503s
            refused = service.metrics.registry.get_sample_value(
                "factory5g_notify_deliveries_total", {"channel": "webhook", "outcome": "failed"}
            )
            assert refused  # the outage was real: attempts failed and were retried
            rx.mode = "ok"

            async def done() -> bool:
                return len(rx.accepted) >= 30

            await wait_for(done, 30)
        assert (30 - len(rx.accepted), rx.duplicates()) == (0, 0)
        attempts = await conn.fetchval(
            "SELECT sum(attempts) FROM notify_deliveries WHERE project_id = $1", p
        )
        assert attempts > 30
    finally:
        await conn.close()
        await rx.stop()


async def test_notifier_killed_mid_send_loses_nothing(database_url: str, tmp_path: Path) -> None:
    """The receiver holds every request open; the notifier process is killed with SIGKILL
    while 20 sends are in flight. A new notifier takes the deliveries over once their lease
    ends and every one arrives."""
    p = project()
    rx = Receiver()
    rx.mode = "hold"
    await rx.start()
    conn = await connect(database_url)
    settings = fast_settings(database_url, send_timeout_s=120.0, lease_s=121.0, concurrency=50)
    first = NotifierProcess(notify_env(settings), tmp_path / "first.log")
    second = NotifierProcess(notify_env(fast_settings(database_url)), tmp_path / "second.log")
    try:
        await add_route(conn, p, rx.url, "ops", timeout_s=120.0)
        first.start()
        for i in range(20):
            await open_alarm(conn, p, f"agv-{i}")

        async def held() -> bool:
            return rx.holding >= 20

        await wait_until(held, 60)
        first.kill9()
        await rx.stop()
        rx.mode = "ok"
        await rx.start()
        sending = await conn.fetchval(
            "SELECT count(*) FROM notify_deliveries WHERE project_id = $1 AND state = 'sending'",
            p,
        )
        assert sending == 20  # the dead notifier's claims
        await conn.execute(  # the lease (121 s) need not be waited out in the test
            "UPDATE notify_deliveries SET lease_until = now() WHERE project_id = $1", p
        )
        second.start()

        async def done() -> bool:
            return len(rx.accepted) >= 20

        await wait_for(done, 60)
        assert (20 - len(rx.accepted), rx.duplicates()) == (0, 0)
        attempts = await conn.fetchval(
            "SELECT min(attempts) FROM notify_deliveries WHERE project_id = $1", p
        )
        assert attempts == 2  # claimed by the dead notifier, then by the new one
        assert second.terminate() == 0
    finally:
        first.stop_quietly()
        second.stop_quietly()
        await conn.close()
        await rx.stop()


async def test_escalation_after_n_seconds_stops_on_acknowledge(database_url: str) -> None:
    """A policy hands an unacknowledged alarm to the on-call route after 1 s and reminds the
    ops route every 1 s (at most 5 times); after the acknowledgement nothing more arrives."""
    p = project()
    ops, oncall = Receiver(), Receiver()
    await ops.start()
    await oncall.start()
    conn = await connect(database_url)
    try:
        await add_route(conn, p, ops.url, "ops")
        oncall_route = await add_route(conn, p, oncall.url, "oncall", escalation_only=True)
        await conn.execute(
            "INSERT INTO notify_policies (project_id, name, steps, reminder_interval_s, "
            "reminder_max) VALUES ($1, 'night', $2::jsonb, 1, 5)",
            p,
            f'[{{"after_s": 1, "route_id": {oncall_route}}}]',
        )
        async with notifier(fast_settings(database_url)):
            alarm = await open_alarm(conn, p, "agv-1", "critical")

            async def escalated() -> bool:
                return len(oncall.accepted) >= 1 and len(ops.accepted) >= 2

            await wait_until(escalated, 30)
            await lifecycle.acknowledge(conn, alarm, "op", datetime.now(UTC))

            async def acknowledged() -> bool:
                return any(b["kind"] == "acknowledged" for b in ops.bodies)

            await wait_until(acknowledged, 30)
            after_ack = len(ops.accepted), len(oncall.accepted)
            # Reminders were due every second: three more seconds would have brought three.
            await asyncio.sleep(3)
            assert (len(ops.accepted), len(oncall.accepted)) == after_ack
        assert [b["kind"] for b in oncall.bodies] == ["escalation"]
        assert oncall.bodies[0]["alarm"]["escalation_level"] == 1
        kinds = [b["kind"] for b in ops.bodies]
        assert kinds[0] == "opened"
        assert kinds[-1] == "acknowledged"
        assert 1 <= kinds.count("reminder") <= 5
        assert (ops.duplicates(), oncall.duplicates()) == (0, 0)
    finally:
        await conn.close()
        await ops.stop()
        await oncall.stop()


async def test_flapping_inside_the_hysteresis_band_notifies_once(
    database_url: str, broker: Mosquitto, tmp_path: Path
) -> None:
    """The real rules service on the real broker: an AGV battery flaps 40 times across the
    raise threshold (20 %) without reaching the clear threshold (30 %), then recovers. The
    alarm is opened once, updated and cleared once: the route gets exactly two
    notifications, none for the updates."""
    p = project()
    rx = Receiver()
    await rx.start()
    conn = await connect(database_url)
    rules = await start_service(database_url, broker.port, tmp_path, f"flap-{p}")
    try:
        await add_route(conn, p, rx.url, "ops")
        async with notifier(fast_settings(database_url)):
            t0 = time.time() - 300
            levels = [80.0] + [19.0 if i % 2 == 0 else 25.0 for i in range(40)] + [35.0]
            topic = f"f5g/v1/{p}/agv/agv-1/agv"
            await publish(
                broker.port,
                [(topic, orjson.dumps(agv(t0 + i, i, battery=b))) for i, b in enumerate(levels)],
            )

            async def cleared() -> bool:
                return any(b["kind"] == "cleared" for b in rx.bodies)

            await wait_for(cleared, 60)
            events = await conn.fetch(
                "SELECT transition, count(*) AS n FROM alarm_events WHERE project_id = $1 "
                "GROUP BY transition",
                p,
            )
            counted = {r["transition"]: r["n"] for r in events}
            await asyncio.sleep(1.0)  # a late extra notification would arrive within this
        assert counted.get("updated", 0) > 0  # the flapping did reach the database
        assert (counted["opened"], counted["cleared"]) == (1, 1)
        assert sorted(b["kind"] for b in rx.bodies) == ["cleared", "opened"]
        assert rx.duplicates() == 0
    finally:
        await rules.close()
        await conn.close()
        await rx.stop()


async def test_quiet_hours_hold_non_critical_until_the_window_ends(database_url: str) -> None:
    """A route in its quiet window (Asia/Shanghai wall clock, around now): a major alarm's
    notification waits for the window's end; a critical one goes at once."""
    p = project()
    rx = Receiver()
    await rx.start()
    conn = await connect(database_url)
    try:
        tz = ZoneInfo("Asia/Shanghai")
        local = datetime.now(tz)
        start = (local - timedelta(hours=1)).time().replace(microsecond=0)
        end = (local + timedelta(hours=1)).time().replace(second=0, microsecond=0)
        await add_route(
            conn, p, rx.url, "night", quiet_start=start, quiet_end=end, quiet_tz="Asia/Shanghai"
        )
        async with notifier(fast_settings(database_url)):
            await open_alarm(conn, p, "agv-major", "major")
            await open_alarm(conn, p, "agv-critical", "critical")

            async def critical_sent() -> bool:
                return len(rx.accepted) >= 1

            await wait_for(critical_sent, 30)
            held = await conn.fetchrow(
                "SELECT d.state, d.next_attempt_at FROM notify_deliveries d "
                "JOIN alarms a ON a.id = d.alarm_id WHERE d.project_id = $1 "
                "AND a.device_id = 'agv-major'",
                p,
            )
        assert [b["alarm"]["device"] for b in rx.bodies] == ["agv-critical"]
        assert held["state"] == "queued"
        window_end = datetime.combine(local.date(), end, tz)
        if window_end < local:
            window_end += timedelta(days=1)
        assert abs((held["next_attempt_at"] - window_end).total_seconds()) < 1
    finally:
        await conn.close()
        await rx.stop()


async def test_the_notifier_runs_as_its_own_least_privilege_role(
    database_url: str, pg: Postgres
) -> None:
    """Routing, claiming, recording, escalation and the LISTEN wake-up all work as a login
    user of factory5g_notify, which may not touch alarms or channels itself."""
    p = project()
    user = f"t_notify_{uuid.uuid4().hex[:6]}"
    pg.psql(db_roles.login_user_sql(user, db_roles.NOTIFY, "pw-" + user))
    dbname = database_url.rsplit("/", 1)[1]
    role_url = f"postgresql://{user}:pw-{user}@127.0.0.1:{pg.port}/{dbname}"
    rx = Receiver()
    await rx.start()
    conn = await connect(database_url)
    try:
        route = await add_route(conn, p, rx.url, "ops")
        await conn.execute(
            "INSERT INTO notify_policies (project_id, name, steps) VALUES ($1, 'p', $2::jsonb)",
            p,
            f'[{{"after_s": 1, "route_id": {route}}}]',
        )
        async with notifier(fast_settings(role_url)) as service:
            await open_alarm(conn, p, "agv-role")

            async def both() -> bool:
                return len(rx.accepted) >= 2

            await wait_for(both, 30)
            assert service.listening
        assert sorted(b["kind"] for b in rx.bodies) == ["escalation", "opened"]
        role = await connect(role_url)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await role.execute("UPDATE alarms SET state = 'cleared'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await role.execute("UPDATE notify_channels SET enabled = false")
        finally:
            await role.close()
    finally:
        await conn.close()
        await rx.stop()


async def test_a_bad_stored_config_is_given_up_naming_the_key_not_the_secret(
    database_url: str,
) -> None:
    """A channel row written past the API (a webhook secret too short) is not retried; the
    delivery history names the key and never shows the secret."""
    p = project()
    conn = await connect(database_url)
    try:
        route = await add_route(conn, p, "http://127.0.0.1:9/hook", "bad")
        leaked = "short-secret"
        await conn.execute(
            "UPDATE notify_channels SET config = config || jsonb_build_object('secret', $1::text) "
            "WHERE id = (SELECT channel_id FROM notify_routes WHERE id = $2)",
            leaked,
            route,
        )
        async with notifier(fast_settings(database_url)):
            await open_alarm(conn, p, "agv-1")

            async def given_up() -> bool:
                state = await conn.fetchval(
                    "SELECT state FROM notify_deliveries WHERE route_id = $1", route
                )
                return bool(state == "gave_up")

            await wait_for(given_up, 30)
        row = await conn.fetchrow(
            "SELECT state, attempts, last_status, last_answer FROM notify_deliveries "
            "WHERE route_id = $1",
            route,
        )
        assert (row["state"], row["attempts"]) == ("gave_up", 1)
        assert row["last_status"] == "invalid channel config"
        assert "config.secret" in row["last_answer"]
        assert leaked not in row["last_answer"]
    finally:
        await conn.close()
