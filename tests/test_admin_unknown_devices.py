"""`F5G_INGEST__UNKNOWN_DEVICES=dead_letter`: real ingest, real broker, real database.

Messages of devices no admin registered (or retired) become dead letters with reason
`unknown_device`, project and device; registered devices land as before; a registration
or retirement takes effect within the refresh interval. Nothing is lost: every message is
a row or a dead letter.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from f5gdev.devstack.servers import Mosquitto
from services.core.settings import load_settings
from services.ingest.known import REFRESH_S
from tests.test_ingest_helpers import (
    inspection,
    publish,
    query,
    running,
    scalar,
    topic,
    wait_count,
    wait_until,
)

N = 50


def _settings(url: str, port: int, **ingest: Any) -> Any:
    tag = uuid.uuid4().hex[:8]
    return load_settings(
        database={"url": url},
        mqtt={"host": "127.0.0.1", "port": port},
        ingest={"metrics_port": 0, "client_id": f"ingest-{tag}", "share_group": f"g-{tag}",
                "batch_max_delay_ms": 10, **ingest},
    )  # fmt: skip


async def _set(url: str, device: str, status: str) -> None:
    await query(url, "SELECT device_set('p1', $1, 'camera', NULL, NULL, $2)", device, status)


ROWS = "SELECT count(*) FROM inspections WHERE device_id = $1"
UNKNOWN = "SELECT count(*) FROM dead_letters WHERE reason = 'unknown_device' AND device_id = $1"


async def test_unregistered_devices_are_dead_lettered_until_registered(
    new_database: Callable[..., str], broker: Mosquitto
) -> None:
    url = new_database()
    await _set(url, "cam-ok", "registered")
    settings = _settings(url, broker.port, unknown_devices="dead_letter")
    async with running(settings):
        messages = [
            (topic("p1", "inspection", device), inspection(seq))
            for seq in range(N)
            for device in ("cam-ok", "cam-new")
        ]
        assert await publish(broker.port, messages) == 2 * N
        assert await wait_count(url, ROWS.replace("$1", "'cam-ok'"), N) == N
        assert await wait_count(url, UNKNOWN.replace("$1", "'cam-new'"), N) == N
        assert await scalar(url, ROWS, "cam-new") == 0
        (letter,) = await query(
            url,
            "SELECT project_id, detail FROM dead_letters WHERE device_id = 'cam-new' LIMIT 1",
        )
        assert letter["project_id"] == "p1"
        assert "not registered" in letter["detail"]

        # Registered: accepted within the refresh interval. Retired: refused again.
        await _set(url, "cam-new", "registered")
        await _set(url, "cam-ok", "retired")
        seq = N

        async def switched() -> bool:
            nonlocal seq
            await publish(
                broker.port,
                [
                    (topic("p1", "inspection", "cam-new"), inspection(seq)),
                    (topic("p1", "inspection", "cam-ok"), inspection(seq)),
                ],
            )
            seq += 1
            new_rows = int(await scalar(url, ROWS, "cam-new"))
            old_letters = int(await scalar(url, UNKNOWN, "cam-ok"))
            return new_rows > 0 and old_letters > 0

        await wait_until(switched, REFRESH_S * 6, 0.5)
    # Every message accounted for: a row or a dead letter.
    total = await scalar(url, "SELECT count(*) FROM inspections")
    letters = await scalar(url, "SELECT count(*) FROM dead_letters")
    assert int(total) + int(letters) == 2 * seq


async def test_by_default_unknown_devices_are_stored_and_listed_unregistered(
    new_database: Callable[..., str], broker: Mosquitto
) -> None:
    url = new_database()
    async with running(_settings(url, broker.port)):
        messages = [(topic("p1", "inspection", "cam-any"), inspection(s)) for s in range(N)]
        assert await publish(broker.port, messages) == N
        assert await wait_count(url, ROWS.replace("$1", "'cam-any'"), N) == N
    (row,) = await query(url, "SELECT status FROM devices WHERE device_id = 'cam-any'")
    assert row["status"] == "unregistered"
    assert await scalar(url, "SELECT count(*) FROM dead_letters") == 0
