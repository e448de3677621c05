"""The OEE page in real headless Chromium against the real stack (seeded machine states,
the seeded three-shift plan): tiles, per-machine and per-line tables, the per-shift trend,
both languages, and an admin's plan edit refused with the field named, then saved."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from f5gdev.dashboard.browser import CHROMIUM, launch, sign_in, wait_charts
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
    ctx = browser.new_context(viewport={"width": 1920, "height": 1080})
    p = ctx.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    p.errors = errors
    yield p
    ctx.close()


def test_oee_page_shows_machines_lines_and_the_shift_trend(stack: Stack, page: Any) -> None:
    machines = stack.sql(
        "SELECT DISTINCT device_id FROM telemetry WHERE project_id = 'p1' AND metric = 'state'"
    )
    assert machines  # the seed gives machines states
    sign_in(page, stack.url, stack.keys.read_p1)
    page.goto(f"{stack.url}/#/p/p1")
    page.click("#oee-link")
    page.wait_for_selector("body[data-page=oee] #oee-machines table")
    wait_charts(page, ["oee_trend"])
    rows = page.locator("#oee-machines tbody tr").evaluate_all("els => els.map(e => e.dataset.key)")
    assert sorted(rows) == sorted(m["device_id"] for m in machines)
    assert "%" in page.locator('.tile[data-kpi="oee_availability"]').inner_text()
    assert page.locator("#oee-lines tbody tr").count() >= 1
    assert page.locator("#oee-save").count() == 0  # a read key cannot edit the plan
    page.click("#lang")
    page.wait_for_selector("text=时间开动率")
    wait_charts(page, ["oee_trend"])
    page.click("#lang")
    assert page.errors == []


def test_an_admin_edits_the_plan_and_a_bad_one_names_the_field(stack: Stack, page: Any) -> None:
    sign_in(page, stack.url, stack.keys.admin)
    page.goto(f"{stack.url}/#/p/p2/oee")
    page.wait_for_selector("#oee-save")
    area = page.locator('textarea[name="oee_settings"]')
    good = area.input_value()
    area.fill(good.replace('"06:00"', '"6:00"', 1))
    page.click("#oee-save")
    page.wait_for_selector('#oee-settings [role="alert"]:has-text("shifts.0.start")')
    area.fill(good.replace('"Asia/Shanghai"', '"Europe/Berlin"'))
    page.click("#oee-save")
    page.wait_for_selector("#oee-settings >> text=Europe/Berlin")
    saved = stack.sql("SELECT settings->>'timezone' AS tz FROM oee_settings WHERE project_id='p2'")
    assert saved[0]["tz"] == "Europe/Berlin"
    # The browser logs the refused PUT itself ("... status of 422"); nothing else.
    assert [e for e in page.errors if "422" not in e] == []
