"""`GET /api/v1/rules/effective`: the rules a device gets, each setting with the layer it
came from, answered by the real rules service through the database (the API may not import
its parser), scoped per project; without a rules service a clear 503."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from f5gdev.devstack.servers import Mosquitto, Postgres
from services.core import db
from services.security import db_roles
from tests.test_api_support import api_settings, auth, client, make_keys
from tests.test_ingest_helpers import scalar
from tests.test_rules_scenarios import TEST_RULES
from tests.test_rules_service import start_service


def _rules(project: str) -> str:
    return TEST_RULES + (
        "projects:\n"
        f"  {project}:\n"
        "    kinds:\n"
        "      agv:\n"
        "        battery_low: {raise: 25, clear: 35}\n"
        "    devices:\n"
        "      agv-7:\n"
        "        battery_low: {raise: 30}\n"
    )


def _position(text: str, line: str, key: str) -> tuple[int, int]:
    (number,) = [i for i, t in enumerate(text.splitlines(), 1) if t.strip() == line]
    t = text.splitlines()[number - 1]
    return number, t.index(f"{key}: ") + len(key) + 3


def _setting(body: dict[str, Any], rule: str, key: str) -> dict[str, Any]:
    (found,) = [r for r in body["rules"] if r["rule"] == rule]
    (setting,) = [s for s in found["settings"] if s["key"] == key]
    return dict(setting)


async def test_effective_rules_name_the_layer_of_every_value(
    new_database: Callable[..., str], broker: Mosquitto, tmp_path: Path
) -> None:
    url = new_database()
    k = await make_keys(url)
    project = "p1"
    text = _rules(project)
    client_id = f"rules-{uuid.uuid4().hex[:6]}"
    running = await start_service(url, broker.port, tmp_path, client_id, rules=text)
    rules_file = str(tmp_path / f"{client_id}.yaml")
    try:
        async with client(api_settings(url)) as (_, c):
            # An AGV with a 5G module, registered with both profiles.
            r = await c.post(
                f"/api/v1/projects/{project}/devices",
                json={"device_id": "agv-7", "kind": "agv", "profiles": ["agv", "cpe"]},
                headers=auth(k.admin),
            )
            assert r.status_code == 201, r.text
            started = time.monotonic()
            r = await c.get(
                "/api/v1/rules/effective",
                params={"project": project, "device": "agv-7"},
                headers=auth(k.read_p1),
            )
            assert r.status_code == 200, r.text
            assert time.monotonic() - started < 10
            body = r.json()
            assert (body["registered"], body["basis"], body["kinds"]) == (
                True,
                "profiles",
                ["agv", "cpe"],
            )
            assert (body["version"], body["source"]) == (None, rules_file)
            brought = {r["rule"]: r["kind"] for r in body["rules"]}
            assert brought["battery_low"] == "agv"
            assert brought["rsrp_low"] == "cpe"
            line, col = _position(text, "battery_low: {raise: 30}", "raise")
            assert _setting(body, "battery_low", "raise") == {
                "key": "raise",
                "value": 30.0,
                "layer": f"projects.{project}.devices.agv-7",
                "source": f"{rules_file}:{line}:{col}",
            }
            line, col = _position(text, "battery_low: {raise: 25, clear: 35}", "clear")
            assert _setting(body, "battery_low", "clear") == {
                "key": "clear",
                "value": 35.0,
                "layer": f"projects.{project}.kinds.agv",
                "source": f"{rules_file}:{line}:{col}",
            }
            assert _setting(body, "battery_low", "severity")["layer"] == "builtin"
            assert _setting(body, "stalled", "raise")["layer"] == "defaults.agv"

            # A device not seen yet: its kind from the query; the device layer is its own.
            r = await c.get(
                "/api/v1/rules/effective",
                params={"project": project, "device": "agv-9", "kind": "agv"},
                headers=auth(k.admin),
            )
            assert r.status_code == 200, r.text
            assert (r.json()["registered"], r.json()["basis"]) == (False, "query")
            assert _setting(r.json(), "battery_low", "raise")["value"] == 25.0
            assert "rsrp_low" not in {x["rule"] for x in r.json()["rules"]}
            r = await c.get(
                "/api/v1/rules/effective",
                params={"project": project, "device": "agv-9"},
                headers=auth(k.admin),
            )
            assert r.status_code == 404
            assert "name its kind or profile" in r.json()["error"]["message"]
            r = await c.get(
                "/api/v1/rules/effective",
                params={"project": project, "device": "agv-9", "profile": "bad/id"},
                headers=auth(k.admin),
            )
            assert r.status_code == 422
            # Per project: a key of another project sees nothing.
            r = await c.get(
                "/api/v1/rules/effective",
                params={"project": project, "device": "agv-7"},
                headers=auth(k.read_p2),
            )
            assert r.status_code == 404

            # A version submitted through the API: its values and lines are named.
            new = text.replace("battery_low: {raise: 30}", "battery_low: {raise: 28}")
            r = await c.put("/api/v1/rules", json={"yaml": new}, headers=auth(k.admin))
            assert r.status_code == 200, r.text
            version = r.json()["id"]

            async def answered() -> dict[str, Any]:
                r = await c.get(
                    "/api/v1/rules/effective",
                    params={"project": project, "device": "agv-7"},
                    headers=auth(k.admin),
                )
                assert r.status_code == 200, r.text
                return dict(r.json())

            deadline = time.monotonic() + 15
            body = await answered()
            while body["version"] != version and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                body = await answered()
            assert body["version"] == version
            line, col = _position(new, "battery_low: {raise: 28}", "raise")
            assert _setting(body, "battery_low", "raise") == {
                "key": "raise",
                "value": 28.0,
                "layer": f"projects.{project}.devices.agv-7",
                "source": f"rules v{version}:{line}:{col}",
            }
        # Every request was collected: nothing is left behind.
        assert await scalar(url, "SELECT count(*) FROM rule_effective_requests") == 0
    finally:
        running.stop.set()
        await asyncio.wait_for(running.task, 30)


async def test_without_a_rules_service_the_answer_is_a_clear_503(
    new_database: Callable[..., str],
) -> None:
    url = new_database()
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        started = time.monotonic()
        r = await c.get(
            "/api/v1/rules/effective",
            params={"project": "p1", "device": "agv-1", "kind": "agv"},
            headers=auth(k.read_p1),
        )
        assert r.status_code == 503, r.text
        assert "no rules service is connected" in r.json()["error"]["message"]
        assert time.monotonic() - started < 5  # nobody to wait for
    assert await scalar(url, "SELECT count(*) FROM rule_effective_requests") == 0


async def test_only_the_rules_service_answers_a_request(
    pg: Postgres, new_database: Callable[..., str]
) -> None:
    """The API role asks and collects but cannot forge an answer; the rules role answers
    but cannot ask in another's name or change what was asked."""
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
        asked = await api.fetchval(
            "INSERT INTO rule_effective_requests (project_id, device_id, kinds) "
            "VALUES ('p1', 'd1', '{agv}') RETURNING id"
        )
        refused = 0
        for conn, sql in (
            (api, "UPDATE rule_effective_requests SET status = 'done', result = '{}'"),
            (rules, "UPDATE rule_effective_requests SET project_id = 'p2'"),
            (rules, "UPDATE rule_effective_requests SET kinds = '{cpe}'"),
            (
                rules,
                "INSERT INTO rule_effective_requests (project_id, device_id, kinds) "
                "VALUES ('p', 'd', '{agv}')",
            ),
        ):
            try:
                await conn.execute(sql)
            except asyncpg.InsufficientPrivilegeError:
                refused += 1
        assert refused == 4
        await rules.execute(
            "UPDATE rule_effective_requests SET status = 'done', result = '{}', "
            "decided_at = now() WHERE id = $1",
            asked,
        )
        assert (
            await api.fetchval(
                "DELETE FROM rule_effective_requests WHERE id = $1 RETURNING status", asked
            )
            == "done"
        )
    finally:
        await api.close()
        await rules.close()
