# The expected Chinese texts are written with their full-width brackets, as shown to readers.
# ruff: noqa: RUF001
"""The dashboard in Chinese, in real headless Chromium against the real stack: an alarm the
rules service raises from a device's record appears live with its message and rule name
in Chinese, stays so after a reload (read from the API), and the KPI tiles carry the names
the programme's documents use. In English the same alarm reads in English."""

from __future__ import annotations

import time
from typing import Any

import orjson
import paho.mqtt.publish as mqtt_publish

from f5gdev.dashboard.browser import sign_in
from tests.test_dashboard import browser, page  # noqa: F401
from tests.test_dashboard_support import Stack, stack_fixture  # noqa: F401
from tests.test_rules_scenarios import agv


def _low_battery(stack: Stack, device: str) -> None:
    """One AGV record at 15 % battery: the rules service's battery_low (raise 20 %) opens."""
    payload = orjson.dumps(agv(time.time(), 1, battery=15.0))
    mqtt_publish.single(
        f"f5g/v1/p1/agv/{device}/agv", payload, qos=1, hostname="127.0.0.1", port=stack.mqtt_port
    )


def _alarm_text(tab: Any, device: str) -> tuple[str, str]:
    row = tab.locator("#alarm-feed li[data-rule='battery_low']", has_text=device)
    # What is tested is the text, not how fast it comes: on a loaded machine (a CI run at
    # load average 10 missed 20 s) rules, hub and page may each wait out a reconnect.
    row.wait_for(timeout=60000)
    return row.locator(".what b").inner_text(), row.locator(".what .muted").inner_text()


def test_alarm_and_kpi_names_in_chinese_live_and_after_reload(
    stack: Stack,
    page: Any,  # noqa: F811
) -> None:
    sign_in(page, stack.url, stack.keys.read_p1, lang="zh")
    page.goto(f"{stack.url}/#/p/p1")
    page.wait_for_selector("body[data-live='1']")
    page.wait_for_selector('.tile[data-kpi="defect_rate"] b')
    assert page.inner_text('.tile[data-kpi="defect_rate"] .k') == "产品不良率"
    assert page.inner_text('.tile[data-kpi="first_pass_yield"] .k') == "一次合格率 (FPY)"
    assert page.inner_text('.tile[data-kpi="utilisation"] .k') == "AGV 利用率"
    _low_battery(stack, "agv-zh-1")
    assert _alarm_text(page, "agv-zh-1") == ("AGV 电量低", "电量 15 %（≤ 20 %）")
    page.reload()
    assert _alarm_text(page, "agv-zh-1") == ("AGV 电量低", "电量 15 %（≤ 20 %）")
    assert page.console.errors == []


def test_the_same_alarm_in_english(stack: Stack, page: Any) -> None:  # noqa: F811
    sign_in(page, stack.url, stack.keys.read_p1, lang="en")
    page.goto(f"{stack.url}/#/p/p1")
    page.wait_for_selector("body[data-live='1']")
    _low_battery(stack, "agv-en-1")
    assert _alarm_text(page, "agv-en-1") == ("AGV battery low", "battery 15 % (≤ 20 %)")
    assert page.inner_text('.tile[data-kpi="defect_rate"] .k') == "Product defect rate"
    assert page.console.errors == []
