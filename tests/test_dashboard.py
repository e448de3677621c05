"""The dashboard in real headless Chromium against the real stack (seeded TimescaleDB,
Mosquitto, the rules service and the API on TCP): pages render their charts with data,
an alarm raised by the rules service appears live, operators acknowledge it from the page,
read-only keys get no button and a 403.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import sync_playwright

from services.api.dashboard.browser import (
    CHROMIUM,
    PROJECT_CHARTS,
    launch,
    screenshot_pages,
    sign_in,
    wait_charts,
)
from tests.test_dashboard_support import Stack, browser_required, stack_fixture  # noqa: F401
from tests.test_rules_scenarios import agv


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


class Console:
    """Errors the page logs (script errors, CSP violations, failed requests)."""

    def __init__(self, page: Any) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _console(self, msg: Any) -> None:
        if msg.type == "error":
            self.errors.append(msg.text)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    p = ctx.new_page()
    p.console = Console(p)
    yield p
    ctx.close()


def test_portfolio_lists_projects_with_devices_kpis_and_alarms(stack: Stack, page: Any) -> None:
    sign_in(page, stack.url, stack.keys.admin)
    wait_charts(page, ["devices"])
    cards = page.locator(".project-card")
    assert sorted(cards.evaluate_all("els => els.map(e => e.dataset.project)")) == ["p1", "p2"]
    p1 = page.locator('.project-card[data-project="p1"]').inner_text()
    row = stack.sql("SELECT scenario, city FROM projects WHERE id = 'p1'")[0]
    assert row["scenario"] in p1
    assert row["city"] in p1
    online = stack.sql("SELECT count(*) AS n FROM devices WHERE project_id = 'p1' AND online")
    assert f"{online[0]['n']} online" in p1
    assert "%" in p1  # today's defect rate / utilisation are numbers, not dashes
    assert page.console.errors == []


def test_project_page_charts_and_targets(stack: Stack, page: Any) -> None:
    sign_in(page, stack.url, stack.keys.read_p1)
    page.goto(f"{stack.url}/#/p/p1")
    wait_charts(page, [*PROJECT_CHARTS, "sinr"])
    stations = page.locator('[data-chart="defect_rate"]').get_attribute("data-points")
    assert stations is not None
    assert int(stations) > 10
    # Targets seeded: defect rate <= 50 % is met, latency p95 <= 0.001 ms is not.
    assert "met" in (page.locator('.tile[data-kpi="defect_rate"]').get_attribute("class") or "")
    assert "missed" in (
        page.locator('.tile[data-kpi="latency_p95_ms"]').get_attribute("class") or ""
    )
    page.click("#lang")
    page.wait_for_selector("text=各工位缺陷率")
    wait_charts(page, PROJECT_CHARTS)
    page.click("#lang")
    page.set_viewport_size({"width": 1366, "height": 768})  # a laptop: nothing spills sideways
    wait_charts(page, PROJECT_CHARTS)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.console.errors == []


def test_device_page_last_values_series_alarms_dead_letters(stack: Stack, page: Any) -> None:
    dev = stack.agv_device
    stack.sql(
        "INSERT INTO dead_letters (received_at, topic, reason, detail, project_id, device_id,"
        " payload, payload_size) VALUES (now(), $1, 'schema', 'battery: expected number',"
        " 'p1', $2, '{}', 2)",
        f"f5g/v1/p1/agv/{dev}/agv",
        dev,
    )
    sign_in(page, stack.url, stack.keys.read_p1)
    page.goto(f"{stack.url}/#/p/p1/d/{dev}")
    wait_charts(page, ["agv.battery", "agv.speed", "agv.localization"])
    assert "battery" in page.locator(".device-page table").first.inner_text()
    page.wait_for_selector("text=battery: expected number")
    assert page.console.errors == []


def test_device_page_shows_the_devices_messages_live(stack: Stack, page: Any) -> None:
    dev = stack.agv_device
    sign_in(page, stack.url, stack.keys.read_p1)
    page.goto(f"{stack.url}/#/p/p1/d/{dev}")
    wait_charts(page, ["agv.battery"])
    page.wait_for_selector("body[data-live='1']")
    t0 = time.monotonic()
    payload = orjson.dumps([agv(time.time(), 7, battery=61.25, speed=0.75)])
    mqtt_publish.single(
        f"f5g/v1/p1/agv/{dev}/agv", payload, qos=1, hostname="127.0.0.1", port=stack.mqtt_port
    )
    page.wait_for_selector(".device-page table >> text=61.25", timeout=5000)
    assert time.monotonic() - t0 < 2.0
    assert page.console.errors == []


def _publish_estop(stack: Stack, device: str) -> None:
    """One AGV record in e-stop: the rules service's safety_stop opens a critical alarm."""
    payload = orjson.dumps(agv(time.time(), 1, state="estop"))
    mqtt_publish.single(
        f"f5g/v1/p1/agv/{device}/agv", payload, qos=1, hostname="127.0.0.1", port=stack.mqtt_port
    )


def test_live_alarm_appears_and_is_acknowledged_from_the_page(stack: Stack, page: Any) -> None:
    sign_in(page, stack.url, stack.keys.operate_p1)
    page.goto(f"{stack.url}/#/p/p1")
    wait_charts(page, ["latency"])
    page.wait_for_selector("body[data-live='1']")
    t0 = time.monotonic()
    _publish_estop(stack, "agv-live-1")
    item = page.wait_for_selector("#alarm-feed li[data-rule='safety_stop']", timeout=5000)
    elapsed = time.monotonic() - t0
    assert elapsed < 2.0, f"alarm took {elapsed:.2f} s to appear"
    alarm_id = item.get_attribute("data-alarm-id")
    item.query_selector("button.ack").click()
    page.wait_for_selector(f"#alarm-feed li[data-alarm-id='{alarm_id}'][data-state='acknowledged']")
    got = httpx.get(
        f"{stack.url}/api/v1/alarms/{alarm_id}",
        headers={"Authorization": f"Bearer {stack.keys.admin}"},
    ).json()
    assert got["state"] == "acknowledged"
    assert got["acknowledged_by"] == "operator-p1"
    page.click(f"#alarm-feed li[data-alarm-id='{alarm_id}'] button.clear")
    page.wait_for_selector(f"#alarm-feed li[data-alarm-id='{alarm_id}'][data-state='cleared']")
    got = httpx.get(
        f"{stack.url}/api/v1/alarms/{alarm_id}",
        headers={"Authorization": f"Bearer {stack.keys.admin}"},
    ).json()
    assert got["state"] == "cleared"
    assert [e["transition"] for e in got["history"]][-2:] == ["acknowledged", "cleared"]
    assert page.console.errors == []


def test_read_key_has_no_acknowledge_button_and_gets_403(stack: Stack, page: Any) -> None:
    _publish_estop(stack, "agv-live-2")
    sign_in(page, stack.url, stack.keys.read_p1)
    page.goto(f"{stack.url}/#/p/p1")
    item = page.wait_for_selector("#alarm-feed li[data-state='open']", timeout=10_000)
    assert page.locator("#alarm-feed button").count() == 0
    assert "read-only" in page.inner_text(".project-head")
    status = page.evaluate(
        """async (id) => (await fetch(`/api/v1/alarms/${id}/acknowledge`, {method: 'POST',
             headers: {Authorization: `Bearer ${localStorage.getItem('f5g.key')}`,
                       'Content-Type': 'application/json'}, body: '{}'})).status""",
        item.get_attribute("data-alarm-id"),
    )
    assert status == 403


def test_empty_and_error_states_are_shown(stack: Stack, page: Any) -> None:
    stack.sql(
        "INSERT INTO projects (id, name) VALUES ('p-empty', 'Empty line') ON CONFLICT DO NOTHING"
    )
    sign_in(page, stack.url, stack.keys.admin)
    page.goto(f"{stack.url}/#/p/p-empty")
    page.wait_for_selector('[data-chart="latency"][data-points="0"] .state.empty')
    page.wait_for_selector("#alarm-feed, .feed-panel .state.empty")
    page.goto(f"{stack.url}/#/p/p1/d/no-such-device")
    page.wait_for_selector(".state.error")


def test_time_range_picker_reloads_the_page_for_the_range(stack: Stack, page: Any) -> None:
    sign_in(page, stack.url, stack.keys.read_p1)
    page.goto(f"{stack.url}/#/p/p1")
    wait_charts(page, ["latency"])
    page.select_option("#range", "custom")
    page.fill("#from", "2020-01-01T00:00")
    page.fill("#to", "2020-01-02T00:00")  # long before the seeded data
    page.wait_for_selector('[data-chart="latency"][data-points="0"] .state.empty')
    assert page.inner_text('.tile[data-kpi="inspections"] b') == "0"
    page.select_option("#range", "h6")
    wait_charts(page, ["latency"])
    six_h = int(page.get_attribute('[data-chart="latency"]', "data-points") or 0)
    page.select_option("#range", "h24")
    # One point per 5 minutes of seeded data: 6 h ~ 72 points, 24 h at 6-minute buckets ~ 240.
    deadline = time.monotonic() + 30  # generous: CI machines may be busy
    while int(page.get_attribute('[data-chart="latency"]', "data-points") or 0) <= 2 * six_h:
        assert time.monotonic() < deadline, "the 24 h range did not load"
        page.wait_for_timeout(100)


def test_screenshots_of_the_three_pages(stack: Stack, browser: Any, tmp_path: Path) -> None:
    paths = screenshot_pages(browser, stack.url, stack.keys.admin, tmp_path, "p1", stack.agv_device)
    assert [p.name for p in paths] == [
        "dashboard-portfolio.png",
        "dashboard-project.png",
        "dashboard-device.png",
    ]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", p
        assert len(data) > 20_000, p
