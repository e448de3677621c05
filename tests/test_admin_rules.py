"""Rule documents through the API, decided and applied by the real rules service.

A document the rule parser refuses is answered 422 with the parser's own message (file
`rules vN`, line, column, key); a valid one becomes active in the running rules service
within seconds, without a restart, and the next alarm follows its threshold. Every version
keeps who, when and the diff; every submission is audited."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import asyncpg
import orjson

from f5gdev.devstack.servers import Mosquitto, Postgres
from services.core import db
from services.security import db_roles
from tests.test_api_support import api_settings, auth, client, make_keys
from tests.test_ingest_helpers import query
from tests.test_rules_scenarios import TEST_RULES, agv, insp, link
from tests.test_rules_service import events_of, keys, publish, start_service, wait_for

NEW_THRESHOLD = TEST_RULES.replace("battery_low: {}", "battery_low: {raise: 50, clear: 60}")
BROKEN = TEST_RULES.replace("battery_low: {}", "battery_low: {raise: high}")


async def test_a_rule_change_is_validated_versioned_and_followed_by_the_next_alarm(
    new_database: Callable[..., str], broker: Mosquitto, tmp_path: Path
) -> None:
    assert NEW_THRESHOLD != TEST_RULES
    url = new_database()
    k = await make_keys(url)
    project, device = f"hall-{uuid.uuid4().hex[:6]}", "agv-1"
    topic = f"f5g/v1/{project}/agv/{device}/agv"
    running = await start_service(url, broker.port, tmp_path, f"rules-{uuid.uuid4().hex[:6]}")
    try:
        async with client(api_settings(url)) as (_, c):
            # Battery 40 %: under the file's threshold (20 %) nothing is raised.
            await publish(broker.port, [(topic, orjson.dumps([agv(time.time(), 1, battery=40.0)]))])

            # Backtest first: an hour of history in which the battery sits at 40 % three
            # times for ten minutes, at 70 % in between.
            await query(
                url,
                "INSERT INTO agv_status (ts, project_id, device_id, seq, x, y, heading, speed, "
                "battery, state, localization, received_at) "
                "SELECT now() - make_interval(mins => 60 - i), $1, 'agv-bt', i, i, 0, 0, 1, "
                "CASE WHEN (i / 10) % 2 = 0 THEN 40 ELSE 70 END, 'moving', 0.95, now() "
                "FROM generate_series(0, 59) AS i",
                project,
            )
            r = await c.post(
                "/api/v1/rules/backtest",
                json={"yaml": NEW_THRESHOLD, "project": project, "days": 1},
                headers=auth(k.admin),
            )
            assert r.status_code == 200, r.text
            result = r.json()["result"]
            assert result["current"]["records"] == result["candidate"]["records"] >= 60
            assert "battery_low" not in result["current"]["rules"]
            got = result["candidate"]["rules"]["battery_low"]
            assert (got["opened"], got["cleared"], got["flaps"]) == (3, 3, 2)
            r = await c.post(
                "/api/v1/rules/backtest",
                json={"yaml": BROKEN, "project": project},
                headers=auth(k.admin),
            )
            assert r.status_code == 422
            assert "battery_low.raise" in r.json()["error"]["message"]

            r = await c.put("/api/v1/rules", json={"yaml": BROKEN}, headers=auth(k.admin))
            assert r.status_code == 422, r.text
            message = r.json()["error"]["message"]
            line = BROKEN.splitlines().index("    battery_low: {raise: high}") + 1
            assert message.startswith(f"rules v1:{line}:"), message
            assert "defaults.agv.battery_low.raise" in message
            assert "high" in message

            started = time.monotonic()
            r = await c.put("/api/v1/rules", json={"yaml": NEW_THRESHOLD}, headers=auth(k.admin))
            assert r.status_code == 200, r.text
            applied_in = time.monotonic() - started
            version = r.json()
            assert (version["id"], version["status"], version["created_by"]) == (
                2,
                "active",
                "admin",
            )
            assert "+    battery_low: {raise: 50, clear: 60}" in version["diff"]
            assert applied_in < 10
            decided = datetime.fromisoformat(version["decided_at"])

            # The next reading follows the new threshold: 40 % is now low.
            await publish(broker.port, [(topic, orjson.dumps([agv(time.time(), 2, battery=40.0)]))])

            async def opened() -> list[dict[str, object]]:
                rows = await events_of(url, project, device)
                return [
                    e for e in rows if e["rule"] == "battery_low" and e["transition"] == "opened"
                ]

            events = await wait_for(opened, 15)
            assert len(events) == 1, events
            assert events[0]["ts"] >= decided.replace(microsecond=0)

            r = await c.get("/api/v1/rules", headers=auth(k.admin))
            body = r.json()
            assert body["active"]["id"] == 2
            assert [(v["id"], v["status"]) for v in body["versions"]] == [
                (2, "active"),
                (1, "rejected"),
            ]
            r = await c.get("/api/v1/rules/versions/1", headers=auth(k.read_p1))
            assert r.json()["error"] == message
            r = await c.get(
                "/api/v1/audit", params={"action": "rules.submit"}, headers=auth(k.admin)
            )
            assert [i["target_id"] for i in r.json()["items"]] == ["2", "1"]
            # Only an admin for every project submits rules.
            for token in (k.admin_p2, k.operate_p1):
                r = await c.put("/api/v1/rules", json={"yaml": TEST_RULES}, headers=auth(token))
                assert r.status_code == 403
    finally:
        running.stop.set()
        await asyncio.wait_for(running.task, 30)


def test_the_api_and_the_rules_service_agree_on_the_name() -> None:
    from services.api.rulesets import views
    from services.rules import service

    assert views.RULES_APPLICATION_NAME == service.RULES_APPLICATION_NAME


async def test_without_a_rules_service_a_submission_stays_pending(
    new_database: Callable[..., str],
) -> None:
    url = new_database()
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        r = await c.put(
            "/api/v1/rules",
            params={"wait_s": 0.5},
            json={"yaml": TEST_RULES},
            headers=auth(k.admin),
        )
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending"


async def test_only_the_rules_service_decides_a_version(
    pg: Postgres, new_database: Callable[..., str]
) -> None:
    """The API role may submit but never mark a version active (which would skip the
    parser); the rules role decides but cannot rewrite what was submitted."""
    owner = new_database()
    dbname = owner.rsplit("/", 1)[1]
    urls = {}
    for group in (db_roles.API, db_roles.RULES):
        user = f"t_{group[10:]}_{uuid.uuid4().hex[:6]}"
        pg.psql(db_roles.login_user_sql(user, group, "pw-" + user))
        urls[group] = f"postgresql://{user}:pw-{user}@127.0.0.1:{pg.port}/{dbname}"
    api = await asyncpg.connect(db.asyncpg_dsn(urls[db_roles.API]))
    rules = await asyncpg.connect(db.asyncpg_dsn(urls[db_roles.RULES]))
    try:
        version = await api.fetchval(
            "INSERT INTO rule_versions (created_by, yaml) VALUES ('a', 'version: 1') RETURNING id"
        )
        job = await api.fetchval(
            "INSERT INTO rule_backtests (created_by, yaml, range_start, range_end) "
            "VALUES ('a', 'version: 1', now() - interval '1 day', now()) RETURNING id"
        )
        refused = 0
        for conn, sql in (
            (api, "UPDATE rule_versions SET status = 'active'"),
            (api, "UPDATE rule_backtests SET status = 'done'"),
            (api, "DELETE FROM rule_versions"),
            (rules, "UPDATE rule_versions SET yaml = 'x'"),
            (rules, "UPDATE rule_versions SET created_by = 'x'"),
            (rules, "INSERT INTO rule_versions (created_by, yaml) VALUES ('r', 'x')"),
            (rules, "UPDATE rule_backtests SET yaml = 'x'"),
        ):
            try:
                await conn.execute(sql)
            except asyncpg.InsufficientPrivilegeError:
                refused += 1
        assert refused == 7
        await rules.execute(
            "UPDATE rule_versions SET status = 'active', decided_at = now() WHERE id = $1",
            version,
        )
        claimed = await rules.fetchrow(
            "UPDATE rule_backtests SET status = 'running' WHERE id = $1 AND status = 'pending' "
            "RETURNING id, yaml, project_id, range_start, range_end",
            job,
        )
        assert claimed is not None
    finally:
        await api.close()
        await rules.close()


async def test_profiles_choose_the_rule_sets_a_device_takes_part_in(
    new_database: Callable[..., str], broker: Mosquitto, tmp_path: Path
) -> None:
    """A vision station provisioned as `camera` gets no vision rules by its kind; registered
    with the profile `vision` it does. An AGV with a 5G module (profiles agv and cpe) gets
    the link rules on its link stream besides its AGV rules."""
    url = new_database()
    project = f"hall-{uuid.uuid4().hex[:6]}"
    for device, kind, profiles in (
        ("cam-7", "camera", ["vision"]),
        ("agv-5g", "agv", ["agv", "cpe"]),
    ):
        await query(
            url,
            "SELECT device_set($1, $2, $3, $4::text[], NULL, 'registered')",
            project,
            device,
            kind,
            profiles,
        )
    running = await start_service(url, broker.port, tmp_path, f"rules-{uuid.uuid4().hex[:6]}")
    try:

        async def loaded() -> bool:
            return len(running.service.engine.profiles) == 2

        assert await wait_for(loaded, 15)
        now = time.time()
        fails = [insp(now + i * 0.01, i, result="fail") for i in range(12)]
        # The same failing parts from an unregistered camera first, then the registered one.
        for device in ("cam-8", "cam-7"):
            await publish(
                broker.port,
                [(f"f5g/v1/{project}/camera/{device}/inspection", orjson.dumps(fails))],
            )
        weak = [link(now - 30 + i, i, rsrp=-120.0) for i in range(30)]
        await publish(broker.port, [(f"f5g/v1/{project}/agv/agv-5g/link", orjson.dumps(weak))])

        async def raised() -> set[tuple[str, str]]:
            rows = await events_of(url, project)
            got = {
                (str(e["device_id"]), str(e["rule"])) for e in rows if e["transition"] == "opened"
            }
            return got if {("cam-7", "consecutive_fails"), ("agv-5g", "rsrp_low")} <= got else set()

        got = await wait_for(raised, 20)
        assert ("cam-7", "consecutive_fails") in got
        assert ("agv-5g", "rsrp_low") in got
        assert not any(device == "cam-8" for device, _ in got)
    finally:
        running.stop.set()
        await asyncio.wait_for(running.task, 30)


MACHINE = (
    "  machine:\n"
    "    spindle_hot: {type: threshold_above, metric: spindle_temp, raise: 80, clear: 75,\n"
    "                  unit: ' °C', escalate: {at: 90}}\n"
    "    coolant_low: {type: threshold_below, metric: coolant_l, raise: 5, severity: warning}\n"
)


async def test_generic_threshold_rules_on_any_metric_through_the_api(
    new_database: Callable[..., str], broker: Mosquitto, tmp_path: Path
) -> None:
    """A spindle temperature over 80 °C raises, over 90 °C escalates, and clears only
    under 75 °C (hysteresis); a coolant level under 5 l raises. A threshold rule without
    its metric is refused with the parser's message."""
    url = new_database()
    k = await make_keys(url)
    project = f"shop-{uuid.uuid4().hex[:6]}"
    running = await start_service(url, broker.port, tmp_path, f"rules-{uuid.uuid4().hex[:6]}")
    try:
        async with client(api_settings(url)) as (_, c):
            broken = (
                TEST_RULES + "  machine:\n    spindle_hot: {type: threshold_above, raise: 80}\n"
            )
            r = await c.put("/api/v1/rules", json={"yaml": broken}, headers=auth(k.admin))
            assert r.status_code == 422
            refused = r.json()["error"]["message"]
            assert refused.startswith("rules v1:27:"), refused
            assert "spindle_hot.metric: is required" in refused
            r = await c.put(
                "/api/v1/rules", json={"yaml": TEST_RULES + MACHINE}, headers=auth(k.admin)
            )
            assert r.status_code == 200, r.text
        now = time.time()
        temps = [70.0, 82.0, 91.0, 78.0, 74.0]
        records = [
            {
                "ts": int((now + i) * 1000),
                "seq": i,
                "metrics": {"spindle_temp": v, "coolant_l": 9.0},
            }
            for i, v in enumerate(temps)
        ]
        records.append({"ts": int((now + 6) * 1000), "seq": 6, "metrics": {"coolant_l": 3.5}})
        topic = f"f5g/v1/{project}/machine/mill-1/telemetry"
        await publish(broker.port, [(topic, orjson.dumps(r)) for r in records])

        async def done() -> list[dict[str, object]]:
            rows = await events_of(url, project, "mill-1")
            return (
                rows
                if any(e["rule"] == "coolant_low" for e in rows)
                and any(e["transition"] == "cleared" for e in rows)
                else []
            )

        rows = await wait_for(done, 20)
        spindle = [e for e in rows if e["rule"] == "spindle_hot"]
        assert keys(spindle) == ["opened:major", "escalated:critical", "cleared"]
        assert keys([e for e in rows if e["rule"] == "coolant_low"]) == ["opened:warning"]
        (alarm,) = await query(
            url,
            "SELECT message FROM alarms WHERE rule = 'coolant_low' AND project_id = $1",
            project,
        )
        assert alarm["message"] == "coolant_l 3.5 (<= 5)"
    finally:
        running.stop.set()
        await asyncio.wait_for(running.task, 30)
