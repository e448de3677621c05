"""An operator pauses a simulated VDA 5050 AGV from the device page and sees `completed`.

Real stack: Chromium, the API under uvicorn, the commander, the simulator's VDA 5050 fleet,
Mosquitto and PostgreSQL. The command goes through the confirmation step; a read-only key
sees the allowed commands' history but no button.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import uvicorn
from playwright.sync_api import sync_playwright

from f5gdev.dashboard.browser import CHROMIUM, WAIT_MS, launch, sign_in
from f5gdev.devstack.servers import Mosquitto
from services.api.app import create_app
from services.commands.service import Commander
from services.simulator.protocols import publish_vda5050_fleet
from tests.conftest import make_settings
from tests.test_api_support import Keys, make_keys
from tests.test_dashboard_support import Loop, browser_required, free_port

AGV = "SimRobotics.AGV-001"


@pytest.fixture(scope="module")
def own_broker(stack_tmp: Path) -> Iterator[Mosquitto]:
    """A broker of this module's own: the simulated fleet's retained VDA 5050 connection
    messages must not reach other modules' ingest subscriptions."""
    server = Mosquitto(stack_tmp / f"mosquitto-{uuid.uuid4().hex[:8]}", port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(new_database: Any, own_broker: Mosquitto) -> Iterator[tuple[str, Keys, Loop]]:
    broker = own_broker
    url = new_database()
    loop = Loop()
    keys = loop.run(make_keys(url))
    port = free_port()
    settings = make_settings(
        url,
        broker.port,
        api={"rollup_interval_s": 0, "key_cache_s": 0, "port": port},
        ingest={"vda5050_default_project": "p1"},
        commands={"metrics_port": 0, "client_id": f"dash-cmd-{port}", "poll_s": 0.5},
    )

    async def setup() -> None:
        import asyncpg

        from services.core.db import asyncpg_dsn

        conn = await asyncpg.connect(asyncpg_dsn(url))
        await conn.execute("INSERT INTO projects (id, name) VALUES ('p1', 'Plant 1')")
        await conn.execute(
            "INSERT INTO devices (project_id, device_id, kind, online) "
            "VALUES ('p1', $1, 'agv', true)",
            AGV,
        )
        await conn.execute(
            "INSERT INTO alarms (project_id, device_id, rule, severity, state, message, "
            "opened_at, updated_at) VALUES ('p1', $1, 'safety_stop', 'critical', 'open', "
            "'e-stop', now(), now())",
            AGV,
        )
        await conn.execute(
            "INSERT INTO command_allow (project_id, kind, name) VALUES "
            "('p1', 'agv', 'startPause'), ('p1', 'agv', 'stopPause')"
        )
        await conn.close()

    loop.run(setup())
    stop = asyncio.Event()
    commander = Commander(settings)

    clients: list[aiomqtt.Client] = []

    async def start() -> list[asyncio.Task[Any]]:
        client = aiomqtt.Client("127.0.0.1", broker.port)  # on the loop it runs on
        clients.append(client)
        await client.__aenter__()
        tasks = [
            asyncio.create_task(commander.run(stop)),
            asyncio.create_task(publish_vda5050_fleet(client, agvs=1, rate_hz=4, stop=stop)),
        ]
        await asyncio.wait_for(commander.connected.wait(), 30)
        return tasks

    tasks = loop.run(start())
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
        yield f"http://127.0.0.1:{port}", keys, loop
    finally:
        server.should_exit = True

        async def shutdown() -> None:
            stop.set()
            await asyncio.wait(tasks, timeout=30)
            for client in clients:
                await client.__aexit__(None, None, None)

        loop.run(shutdown())
        loop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if browser_required():
            pytest.fail(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
        pytest.skip(f"{CHROMIUM} is missing (CI would fail): run scripts/install-browser.sh")
    with sync_playwright() as pw:
        b = launch(pw)
        yield b
        b.close()


def test_operator_pauses_a_simulated_agv_and_sees_completed(
    stack: tuple[str, Keys, Loop], browser: Any
) -> None:
    url, keys, _loop = stack
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        sign_in(page, url, keys.operate_p1)
        # The alarm page offers the device's commands: they are on its page.
        page.goto(f"{url}/#/p/p1")
        page.locator("li.alarm .device-commands").first.click(timeout=WAIT_MS)
        page.wait_for_url(f"**/#/p/p1/d/{AGV}", timeout=WAIT_MS)
        button = page.locator('button.command[data-command="startPause"]')
        button.wait_for(timeout=WAIT_MS)
        assert page.locator('button.command[data-command="stopPause"]').count() == 1
        button.click()
        page.locator(".confirm").wait_for(timeout=WAIT_MS)  # nothing is sent before this
        assert page.locator(".command-history tr[data-command-id]").count() == 0
        t0 = time.monotonic()
        page.click(".confirm-yes")
        page.wait_for_selector(
            '.command-history tr[data-state="completed"]', timeout=max(WAIT_MS, 20_000)
        )
        elapsed = time.monotonic() - t0
        row = page.locator(".command-history tr[data-command-id]").first.inner_text()
        assert "startPause" in row
        assert "operator-p1" in row
        print(f"startPause completed on the page {elapsed:.2f} s after the confirmation")
        assert errors == []
    finally:
        ctx.close()
    # A read-only key sees the history, and no button.
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    try:
        sign_in(page, url, keys.read_p1)
        page.goto(f"{url}/#/p/p1/d/{AGV}")
        page.wait_for_selector('.command-history tr[data-state="completed"]', timeout=WAIT_MS)
        assert page.locator("button.command").count() == 0
    finally:
        ctx.close()
