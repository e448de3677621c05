"""The real stack behind the dashboard tests: a seeded database, the rules service and the
API served by uvicorn on a free port, both on one background event loop.

The browser (sync Playwright) drives the page from the test thread while the services run
in their own thread, exactly as separate processes would see each other: over TCP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
import uvicorn

from services.api.app import create_app
from services.core.db import asyncpg_dsn
from services.core.settings import Settings
from services.rules.service import RulesService
from tests.conftest import make_settings
from tests.test_api_support import Keys, make_keys, seed_small
from tests.test_rules_scenarios import TEST_RULES

T = TypeVar("T")
TARGETS = '{"defect_rate_max": 0.5, "latency_p95_ms_max": 0.001, "utilisation_min": 0.1}'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Loop:
    """An event loop in a daemon thread; coroutines are submitted from the test thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@dataclass
class Stack:
    url: str
    db_url: str
    mqtt_port: int
    keys: Keys
    settings: Settings
    loop: Loop
    agv_device: str

    def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async def go() -> list[asyncpg.Record]:
            conn = await asyncpg.connect(asyncpg_dsn(self.db_url))
            try:
                return list(await conn.fetch(query, *args))
            finally:
                await conn.close()

        return self.loop.run(go())


@pytest.fixture(scope="module", name="stack")
def stack_fixture(
    new_database: Any, broker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    db_url = new_database()
    loop = Loop()
    loop.run(seed_small(db_url))
    keys = loop.run(make_keys(db_url))
    rules_file = Path(tmp_path_factory.mktemp("dash")) / "rules.yaml"
    rules_file.write_text(TEST_RULES)
    port = free_port()
    settings = make_settings(
        db_url,
        broker.port,
        api={"rollup_interval_s": 0, "key_cache_s": 0, "port": port},
        rules={"rules_file": str(rules_file), "client_id": f"dash-rules-{port}"},
        # The notifications page's webhook receiver listens on loopback: the named opt-out,
        # as the local stack sets it (docs/notifications.md).
        notify={"allow_private_targets": ["127.0.0.0/8"]},
    )
    st = Stack(f"http://127.0.0.1:{port}", db_url, broker.port, keys, settings, loop, "")
    st.sql("UPDATE projects SET targets = $1::jsonb WHERE id = 'p1'", TARGETS)
    st.agv_device = st.sql(
        "SELECT device_id FROM devices WHERE project_id = 'p1' AND kind = 'agv' ORDER BY 1"
    )[0]["device_id"]

    rules = RulesService(settings)
    stop = asyncio.Event()

    async def start_rules() -> asyncio.Task[None]:
        task = asyncio.create_task(rules.run(stop))
        await asyncio.wait_for(rules.ready.wait(), 15)
        return task

    rules_task = loop.run(start_rules())
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = loop.spawn(server.serve())

    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or serving.done():
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    try:
        yield st
    finally:
        server.should_exit = True

        async def shutdown() -> None:
            stop.set()
            await asyncio.wait_for(rules_task, 30)

        loop.run(shutdown())
        for _ in range(100):
            if serving.done():
                break
            loop.run(asyncio.sleep(0.1))
        loop.close()


def browser_required() -> bool:
    """Under CI a missing browser fails the run; elsewhere the browser tests are skipped."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
