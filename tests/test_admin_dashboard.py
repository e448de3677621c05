"""The administration page in real headless Chromium against the real stack: an admin
registers a waiting device, creates an API key (token shown once and working), sees both
acts in the audit trail, in English and Chinese; a read key gets no page."""

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

from f5gdev.dashboard.browser import CHROMIUM, launch, sign_in
from tests.test_dashboard_support import Stack, browser_required, stack_fixture  # noqa: F401
from tests.test_rules_scenarios import TEST_RULES, agv


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


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    p = ctx.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.errors = errors
    yield p
    ctx.close()


def test_an_admin_registers_a_device_and_creates_a_key_from_the_page(
    stack: Stack, page: Any
) -> None:
    stack.sql(
        "INSERT INTO devices (project_id, device_id, kind) VALUES ('p1', 'cam-waiting', 'camera')"
    )
    sign_in(page, stack.url, stack.keys.admin)
    page.click("#admin-link")
    row = page.locator('[data-admin=devices] tr[data-device="cam-waiting"]')
    row.wait_for()
    row.locator("input[name=profiles]").fill("vision, link")
    row.locator("input[name=line]").fill("L7")
    row.locator("button.register").click()
    row.wait_for(state="detached")
    (dev,) = stack.sql(
        "SELECT status, profiles, metadata FROM devices WHERE device_id = 'cam-waiting'"
    )
    assert (dev["status"], dev["profiles"]) == ("registered", ["vision", "link"])
    assert '"line": "L7"' in dev["metadata"]

    page.fill("input[name=key_name]", "line-display")
    page.select_option("select[name=key_scope]", "read")
    page.click("[data-admin=keys] button[type=submit]")
    token = page.locator("[data-admin=keys] .secret-value").inner_text(timeout=10_000)
    assert token.startswith("f5g_")
    r = httpx.get(f"{stack.url}/api/v1/projects", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    page.locator(f'[data-admin=keys] tr[data-prefix="{token.split("_")[1]}"]').wait_for()

    page.reload()
    page.locator('[data-admin=audit] tr[data-action="device.register"]').wait_for()
    page.locator('[data-admin=audit] tr[data-action="key.create"]').first.wait_for()
    page.locator("[data-admin=retention] tr[data-store=telemetry]").wait_for()
    page.click("#lang")
    page.wait_for_selector("text=待登记设备")
    page.wait_for_selector("text=审计记录")
    page.click("#lang")
    assert page.errors == []


def test_a_read_key_gets_no_administration(stack: Stack, page: Any) -> None:
    sign_in(page, stack.url, stack.keys.read_p1)
    assert page.locator("#admin-link").is_hidden()
    page.goto(f"{stack.url}/#/admin")
    page.wait_for_selector("body[data-page=admin] .state.error")
    assert page.errors == []


def test_an_admin_registers_a_device_changes_a_threshold_and_the_next_alarm_follows(
    stack: Stack, page: Any
) -> None:
    """The issue's browser check: register a device, backtest a higher battery threshold,
    save it (a broken document first: the parser's message is shown), and the next
    reading is judged by the new threshold."""
    device = f"agv-dod-{int(time.time())}"
    topic = f"f5g/v1/p1/agv/{device}/agv"
    stack.sql("INSERT INTO devices (project_id, device_id, kind) VALUES ('p1', $1, 'agv')", device)
    sign_in(page, stack.url, stack.keys.admin)
    page.click("#admin-link")
    row = page.locator(f'[data-admin=devices] tr[data-device="{device}"]')
    row.locator("input[name=profiles]").fill("agv, link")
    row.locator("button.register").click()
    row.wait_for(state="detached")

    # 40 % under the file's threshold (20 %): no alarm.
    mqtt_publish.single(
        topic, orjson.dumps([agv(time.time(), 1, battery=40.0)]), qos=1,
        hostname="127.0.0.1", port=stack.mqtt_port,
    )  # fmt: skip
    editor = page.locator("[data-admin=rules] textarea[name=rules_yaml]")
    editor.fill(TEST_RULES.replace("battery_low: {}", "battery_low: {raise: high}"))
    page.click("[data-admin=rules] button[type=submit]")
    error = page.locator("[data-admin=rules] .rules-error")
    error.wait_for(timeout=20_000)
    assert "rules v1:14:26: defaults.agv.battery_low.raise" in error.inner_text()
    editor.fill(TEST_RULES.replace("battery_low: {}", "battery_low: {raise: 50, clear: 60}"))
    # Backtest before saving: over the seeded week, the new threshold would raise
    # battery_low more often than the running rules (the seeded batteries dip below 50 %).
    page.click("[data-admin=rules] button.backtest")
    result = page.locator("[data-admin=rules] .backtest-result[data-status=done]")
    result.wait_for(timeout=60_000)
    cells = result.locator("tr[data-rule=battery_low] td")
    now_opened, new_opened = int(cells.nth(1).inner_text()), int(cells.nth(2).inner_text())
    assert new_opened > now_opened
    page.click("[data-admin=rules] button[type=submit]")
    page.locator("[data-admin=rules] .rules-outcome [data-status=active]").wait_for(timeout=20_000)
    (version,) = stack.sql("SELECT decided_at FROM rule_versions WHERE status = 'active'")

    mqtt_publish.single(
        topic, orjson.dumps([agv(time.time(), 2, battery=40.0)]), qos=1,
        hostname="127.0.0.1", port=stack.mqtt_port,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    opened: list[Any] = []
    while not opened and time.monotonic() < deadline:
        opened = stack.sql(
            "SELECT e.ts FROM alarm_events e JOIN alarms a ON a.id = e.alarm_id "
            "WHERE a.device_id = $1 AND a.rule = 'battery_low' AND e.transition = 'opened'",
            device,
        )
        time.sleep(0.2)
    assert len(opened) == 1
    assert opened[0]["ts"] >= version["decided_at"].replace(microsecond=0)
    (dev,) = stack.sql("SELECT status, profiles FROM devices WHERE device_id = $1", device)
    assert (dev["status"], dev["profiles"]) == ("registered", ["agv", "link"])

    # The effective rules of the device: the new threshold, the layer and line it came from.
    (active,) = stack.sql("SELECT id FROM rule_versions WHERE status = 'active'")
    page.fill("input[name=eff_project]", "p1")
    page.fill("input[name=eff_device]", device)
    page.click("[data-admin=effective] button[type=submit]")
    cell = page.locator('[data-admin=effective] tr[data-rule=battery_low][data-key="raise"]')
    cell.wait_for(timeout=20_000)
    line = TEST_RULES.splitlines().index("    battery_low: {}") + 1
    assert cell.locator(".eff-value").inner_text() == "50"
    assert cell.locator(".eff-layer").inner_text() == "defaults.agv"
    assert cell.locator(".eff-source").inner_text() == f"rules v{active['id']}:{line}:26"
    severity = page.locator('[data-admin=effective] tr[data-rule=battery_low][data-key="severity"]')
    assert severity.locator(".eff-layer").inner_text() == "builtin"
    page.click("#lang")  # the page is drawn again, in Chinese
    page.wait_for_selector("text=设备的生效规则")
    page.fill("input[name=eff_project]", "p1")
    page.fill("input[name=eff_device]", device)
    page.click("[data-admin=effective] button[type=submit]")
    page.wait_for_selector("[data-admin=effective] th:has-text('来源层')")
    page.wait_for_selector("[data-admin=effective] td:has-text('内置默认值')")
    page.click("#lang")
    # The browser logs the refused document's 422 itself; nothing else went wrong.
    assert [e for e in page.errors if "status of 422" not in e] == []
