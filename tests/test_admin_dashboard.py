"""The administration page in real headless Chromium against the real stack: an admin
registers a waiting device, creates an API key (token shown once and working), sees both
acts in the audit trail, in English and Chinese; a read key gets no page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright

from f5gdev.dashboard.browser import CHROMIUM, launch, sign_in
from tests.test_dashboard_support import Stack, browser_required, stack_fixture  # noqa: F401


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
