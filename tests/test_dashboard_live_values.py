"""The device page's "Last values" in real Chromium while a real ingest service writes:
after a valid record that leaves out an optional field, and after a record ingest
dead-letters, the live table shows exactly what a reload shows (issue 15 item 3).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import sync_playwright

from f5gdev.dashboard.browser import CHROMIUM, launch, sign_in, wait_charts
from services.ingest.service import IngestService
from tests.conftest import make_settings
from tests.test_dashboard_support import Stack, browser_required, stack_fixture  # noqa: F401


@pytest.fixture(scope="module")
def ingest(stack: Stack) -> Iterator[IngestService]:
    """A real ingest service on the stack's broker and database."""
    # A group and session of its own: on the session's broker, sessions other modules'
    # ingest services left behind in the default group would take a share of the messages.
    name = f"live-values-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        stack.db_url,
        stack.mqtt_port,
        ingest={"metrics_port": 0, "client_id": name, "share_group": name,
                "batch_max_delay_ms": 20},
    )  # fmt: skip
    service = IngestService(settings)
    stop = asyncio.Event()
    running = stack.loop.spawn(service.run_until(stop))

    async def connected() -> None:
        async with asyncio.timeout(30):
            while not service.consumer.connected:
                if running.done():
                    running.result()
                await asyncio.sleep(0.05)

    stack.loop.run(connected())
    yield service
    stack.loop.loop.call_soon_threadsafe(stop.set)
    running.result(60)


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


def wait_for(what: str, found: Callable[[], object], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not found():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def inspection(seq: int, part: str, result: str, **kw: Any) -> dict[str, Any]:
    rec = {"ts": int(time.time() * 1000), "seq": seq, "station": "st-1", "part_id": part,
           "result": result, "defects": [], "confidence": 0.97, "inference_ms": 31.5}  # fmt: skip
    return rec | kw


def test_live_last_values_show_exactly_what_a_reload_shows(
    stack: Stack, ingest: IngestService, browser: Any
) -> None:
    del ingest
    dev = stack.sql(
        "SELECT device_id FROM devices WHERE project_id = 'p1' AND kind = 'station' ORDER BY 1"
    )[0]["device_id"]
    root = f"f5g/v1/p1/station/{dev}"

    def publish(*messages: tuple[str, dict[str, Any]]) -> None:
        mqtt_publish.multiple(
            [(f"{root}/{stream}", orjson.dumps(body), 1, False) for stream, body in messages],
            hostname="127.0.0.1",
            port=stack.mqtt_port,
        )

    def stored(table: str, seq: int) -> bool:
        sql = f"SELECT 1 FROM {table} WHERE project_id = 'p1' AND device_id = $1 AND seq = $2"
        return bool(stack.sql(sql, dev, seq))

    # A stored row that has a model, as the page will first show it.
    publish(("inspection", inspection(900_001, "GOOD-1", "pass", model="m-1.0")))
    wait_for("the first record stored", lambda: stored("inspections", 900_001))

    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    box = page.locator(".device-page .holder").first

    def open_page(reload: bool = True) -> str:
        """The page as a reload shows it (a `goto` to the same URL would not reload)."""
        if reload:
            page.reload()
        else:
            page.goto(f"{stack.url}/#/p/p1/d/{dev}")
        wait_charts(page, ["inspection.confidence"])
        page.wait_for_selector("body[data-live='1']")
        return str(box.inner_text())

    def live_streams() -> list[str]:
        """The stream of each record the live feed delivered to the box, in arrival order."""
        return str(box.evaluate("e => e.dataset.liveStreams || ''")).split()

    mismatches: list[tuple[str, str, str]] = []
    try:
        sign_in(page, stack.url, stack.keys.read_p1)
        assert "GOOD-1" in open_page(reload=False)

        # 1. A valid `fail` record without the optional `model`.
        publish(("inspection", inspection(900_002, "BAD-2", "fail")))
        wait_for("the record on the page", lambda: "BAD-2" in box.inner_text())
        live = str(box.inner_text())
        wait_for("the record stored", lambda: stored("inspections", 900_002))
        reloaded = open_page()
        assert "BAD-2" in reloaded
        if live != reloaded:
            mismatches.append(("valid record without model", live, reloaded))

        # 2. A record ingest dead-letters (confidence 1.7), then a valid link record: they
        # arrive in this order, so once the second shows, the first has been handled.
        before = len(live_streams())
        publish(
            ("inspection", inspection(900_003, "REJECTED-3", "pass", confidence=1.7)),
            ("link", {"ts": int(time.time() * 1000), "seq": 900_004, "rsrp": -88.0,
                      "sinr": 17.0, "latency_ms": 12.5}),
        )  # fmt: skip
        # Waiting for the link record's live event, not for its text: the page's periodic
        # refresh can show the stored row first. Ingest handles the two in order, so once the
        # link record's event is here, the rejected one would have come before it.
        wait_for("the link record forwarded", lambda: "link" in live_streams()[before:])
        wait_for("the link record on the page", lambda: "latency_ms" in box.inner_text())
        live = str(box.inner_text())
        forwarded = live_streams()[before:]
        wait_for("the link record stored", lambda: stored("link_kpis", 900_004))
        wait_for(
            "the dead letter",
            lambda: stack.sql(
                "SELECT 1 FROM dead_letters WHERE device_id = $1 AND reason = 'schema'", dev
            ),
        )
        reloaded = open_page()
        if live != reloaded:
            mismatches.append(("dead-lettered record", live, reloaded))
        assert "REJECTED-3" not in reloaded
    finally:
        ctx.close()
    assert mismatches == [], mismatches
    assert forwarded == ["link"]  # the link record only
    assert errors == []
