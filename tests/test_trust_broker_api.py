"""Issue 14 (5): operator acknowledge/clear through the API are announced on MQTT when the
API runs with its own broker account on the secured broker, and its connection survives.

Before, the `api` account was read-only: every announcement was refused and Mosquitto
2.0.11 closed the API's live connection after each refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import orjson
import pytest

from f5gdev.devstack.servers import Mosquitto, free_port
from services.security.broker_auth import BrokerAuth
from tests.conftest import make_settings
from tests.test_api_support import auth, client, insert_alarms, make_keys


@pytest.fixture
def secured(stack_tmp: Path) -> Iterator[tuple[Mosquitto, BrokerAuth]]:
    base = stack_tmp / f"mosquitto-api-{uuid.uuid4().hex[:8]}"
    accounts = BrokerAuth(base / "auth")
    accounts.ensure_files()
    server = Mosquitto(base, port=free_port(), auth_dir=accounts.directory)
    server.start()
    yield server, accounts
    server.stop()


async def test_operator_transitions_are_announced_with_the_api_account(
    new_database: Callable[..., str], secured: tuple[Mosquitto, BrokerAuth]
) -> None:
    server, accounts = secured
    url = new_database()
    await insert_alarms(
        url,
        [
            {
                "project_id": "p1",
                "device_id": f"agv-{i}",
                "rule": "estop",
                "opened_at": datetime.now(UTC),
            }
            for i in range(2)
        ],
    )
    k = await make_keys(url)
    api = accounts.service_credentials("api")
    rules = accounts.service_credentials("rules")
    settings = make_settings(
        url,
        server.port,
        api={"rollup_interval_s": 0, "key_cache_s": 0},
        mqtt={"username": api.username, "password": api.password},
    )
    seen: list[tuple[str, str]] = []
    async with (
        aiomqtt.Client(
            "127.0.0.1",
            server.port,
            username=rules.username,
            password=rules.password,
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as sub,
        client(settings) as (_, c),
    ):
        await sub.subscribe("f5g/v1/+/alarms/#", qos=1)
        items = (await c.get("/api/v1/alarms", headers=auth(k.read_p1))).json()["items"]
        op = auth(k.operate_p1)
        for item in items:
            for action in ("acknowledge", "clear"):
                r = await c.post(f"/api/v1/alarms/{item['id']}/{action}", headers=op)
                assert r.is_success, r.text
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(20):
                async for msg in sub.messages:
                    body = orjson.loads(msg.payload)  # type: ignore[arg-type]
                    seen.append((str(msg.topic), str(body["transition"])))
                    if len(seen) == 4:
                        break
    assert sorted(seen) == sorted(
        (f"f5g/v1/p1/alarms/unknown/agv-{i}/estop", t)
        for i in range(2)
        for t in ("acknowledged", "cleared")
    )
    broker_log = server.log_file.read_text(errors="replace")
    assert "Denied" not in broker_log
