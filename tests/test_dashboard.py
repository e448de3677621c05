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
from zoneinfo import ZoneInfo

import httpx
import orjson
import paho.mqtt.publish as mqtt_publish
import pytest
from playwright.sync_api import sync_playwright

from f5gdev.dashboard.browser import (
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
    # A locator, not the element handle: the feed may redraw the alarm's row between finding
    # and clicking it, and a redraw detached the handle mid-click under load.
    page.locator(f"#alarm-feed li[data-alarm-id='{alarm_id}'] button.ack").click()
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
    # One point per 5 minutes of seeded data: 6 h ~ 72 points, 24 h at 10-minute buckets ~ 144
    # (145 or 144 by where the buckets fall, so not more than twice 72 or 73: 1.5 times).
    deadline = time.monotonic() + 30  # generous: CI machines may be busy
    while int(page.get_attribute('[data-chart="latency"]', "data-points") or 0) <= 1.5 * six_h:
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


# Pixels of the first three series colours (charts.js PALETTE) inside a chart's plot area,
# i.e. what a person sees of the data: the legend (top), the axes and their labels are left out.
_SERIES_PIXELS = """(name) => {
  const canvas = document.querySelector(`[data-chart="${name}"] canvas`);
  const dpr = canvas.width / canvas.clientWidth;
  const x0 = Math.round(60 * dpr), x1 = Math.round(canvas.width - 16 * dpr);
  const y0 = Math.round(40 * dpr), y1 = Math.round(canvas.height - 40 * dpr);
  const px = canvas.getContext('2d').getImageData(x0, y0, x1 - x0, y1 - y0).data;
  const colours = [[0x4f, 0xc3, 0xf7], [0xff, 0xb7, 0x4d], [0x81, 0xc7, 0x84]];
  let n = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] < 40) continue;
    if (colours.some(([r, g, b]) => Math.abs(px[i] - r) < 40 && Math.abs(px[i + 1] - g) < 40
        && Math.abs(px[i + 2] - b) < 40)) n++;
  }
  return n;
}"""

# The time span (ms) the x axis of a chart shows between the plot area's edges (charts.js grid:
# 56 px left, 20 px right), read back through ECharts' public convertFromPixel.
_AXIS_SPAN = """(name) => {
  const el = document.querySelector(`[data-chart="${name}"] .chart`);
  const chart = echarts.getInstanceByDom(el);
  const a = chart.convertFromPixel({ xAxisIndex: 0 }, 56);
  const b = chart.convertFromPixel({ xAxisIndex: 0 }, el.clientWidth - 20);
  return [a, b];
}"""


def _range_page(
    browser: Any, range_key: str, timezone: str = "UTC", size: tuple[int, int] = (1920, 1080)
) -> Any:
    ctx = browser.new_context(viewport={"width": size[0], "height": size[1]}, timezone_id=timezone)
    ctx.add_init_script(f"localStorage.setItem('f5g.range', {range_key!r})")
    p = ctx.new_page()
    p.console = Console(p)
    return p


def _add_device(stack: Stack, device: str, kind: str) -> None:
    stack.sql(
        "INSERT INTO devices (project_id, device_id, kind) VALUES ('p1', $1, $2)"
        " ON CONFLICT DO NOTHING",
        device,
        kind,
    )


def test_device_page_shows_record_times_in_local_time(stack: Stack, browser: Any) -> None:
    dev = "agv-time-1"
    _add_device(stack, dev, "agv")
    ts = stack.sql(
        "INSERT INTO agv_status (ts, project_id, device_id, seq, x, y, heading, speed, battery,"
        " state, localization, received_at) VALUES (date_trunc('second', now()) - interval"
        " '7 minutes', 'p1', $1, 1, 0, 0, 0, 1, 55, 'moving', 0.9, now()) RETURNING ts",
        dev,
    )[0]["ts"]
    page = _range_page(browser, "h1", timezone="Asia/Shanghai")
    try:
        sign_in(page, stack.url, stack.keys.read_p1)
        page.goto(f"{stack.url}/#/p/p1/d/{dev}")
        cell = page.locator(".device-page table tr", has=page.locator("th", has_text="ts"))
        cell.first.wait_for(timeout=20_000)
        shown = cell.first.locator("td").last.inner_text()
        local = ts.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%d/%m/%Y, %H:%M:%S")
        assert shown == local, f"ts shown as {shown!r}, local time is {local!r}"
        assert page.console.errors == []
    finally:
        page.context.close()


def test_a_single_reading_is_visible_on_its_chart(stack: Stack, browser: Any) -> None:
    dev = "agv-sparse-1"
    _add_device(stack, dev, "agv")
    stack.sql(
        "INSERT INTO agv_status (ts, project_id, device_id, seq, x, y, heading, speed, battery,"
        " state, localization, received_at) VALUES (now() - interval '20 minutes', 'p1', $1, 1,"
        " 0, 0, 0, 1, 42, 'moving', 0.9, now())",
        dev,
    )
    page = _range_page(browser, "h1")
    try:
        sign_in(page, stack.url, stack.keys.read_p1)
        page.goto(f"{stack.url}/#/p/p1/d/{dev}")
        wait_charts(page, ["agv.battery"])
        assert page.get_attribute('[data-chart="agv.battery"]', "data-points") == "1"
        seen = page.evaluate(_SERIES_PIXELS, "agv.battery")
        assert seen >= 12, f"one reading drew {seen} pixels"
        assert page.console.errors == []
    finally:
        page.context.close()


def test_readings_between_gaps_are_visible(stack: Stack, browser: Any) -> None:
    """loss_pct is optional: reported in every fourth message only, so each of its buckets
    is a single point between empty ones."""
    dev = "link-sparse-1"
    _add_device(stack, dev, "link")
    stack.sql(
        "INSERT INTO link_kpis (ts, project_id, device_id, seq, rsrp, sinr, latency_ms, loss_pct,"
        " received_at) SELECT now() - make_interval(secs => 15 * i), 'p1', $1, i, -90, 15, 12,"
        " CASE WHEN i % 4 = 0 THEN 0.5 END, now() FROM generate_series(4, 160) AS i",
        dev,
    )
    page = _range_page(browser, "h1")
    try:
        sign_in(page, stack.url, stack.keys.read_p1)
        page.goto(f"{stack.url}/#/p/p1/d/{dev}")
        wait_charts(page, ["link.loss_pct", "link.latency_ms"])
        dense = page.evaluate(_SERIES_PIXELS, "link.latency_ms")
        sparse = page.evaluate(_SERIES_PIXELS, "link.loss_pct")
        assert dense > 200, f"the dense series drew {dense} pixels"
        assert sparse >= 12 * 30, f"40 isolated readings drew {sparse} pixels"
        assert page.console.errors == []
    finally:
        page.context.close()


@pytest.mark.parametrize("where", ["project", "device", "one-reading device"])
@pytest.mark.parametrize("size", [(1920, 1080), (1366, 768)])
def test_a_24_hour_range_draws_a_24_hour_axis(
    stack: Stack, browser: Any, where: str, size: tuple[int, int]
) -> None:
    """Lines span the range exactly; bars may overhang it by half a bucket (15 min) each side
    so that the first and last bar are whole."""
    page = _range_page(browser, "h24", size=size)
    try:
        sign_in(page, stack.url, stack.keys.read_p1)
        t0 = time.time() * 1000
        if where == "project":
            page.goto(f"{stack.url}/#/p/p1")
            charts = {"latency": 0, "battery": 0, "defect_rate": 0, "throughput": 450_000}
        elif where == "device":
            page.goto(f"{stack.url}/#/p/p1/d/{stack.agv_device}")
            charts = {"agv.battery": 0, "agv.speed": 0}
        else:
            _add_device(stack, "agv-once-1", "agv")
            stack.sql(
                "INSERT INTO agv_status (ts, project_id, device_id, seq, x, y, heading, speed,"
                " battery, state, localization, received_at) SELECT greatest(now() - interval"
                " '5 hours', max(watermark) + interval '1 second'), 'p1', 'agv-once-1', 1, 0, 0,"
                " 0, 1, 42, 'moving', 0.9, now() FROM rollup_watermarks ON CONFLICT DO NOTHING"
            )  # after the rollups' watermark: a late reading would only be in the raw table
            page.goto(f"{stack.url}/#/p/p1/d/agv-once-1")
            charts = {"agv.battery": 0}
        wait_charts(page, list(charts))
        t1 = time.time() * 1000
        day = 86_400_000
        for name, overhang in charts.items():
            a, b = page.evaluate(_AXIS_SPAN, name)
            assert abs((b - a) - day - 2 * overhang) < 60_000, (
                f"{name}: axis spans {(b - a) / 3.6e6:.2f} h"
            )
            assert t0 - 60_000 <= b - overhang <= t1 + 60_000, (
                f"{name}: axis ends {(t1 - b + overhang) / 6e4:.0f} min before now"
            )
        assert page.console.errors == []
    finally:
        page.context.close()


def _until(check: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout  # generous: CI machines may be busy
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_portfolio_search_and_status_filter(stack: Stack, page: Any) -> None:
    stack.sql(
        "INSERT INTO projects (id, name, city, status) VALUES ('p-old', 'Old press line',"
        " 'Ningbo', 'archived') ON CONFLICT (id) DO UPDATE SET status = 'archived'"
    )
    sign_in(page, stack.url, stack.keys.admin)
    wait_charts(page, ["devices"])

    def shown() -> list[str]:
        cards = page.locator(".project-card")
        return sorted(cards.evaluate_all("els => els.map(e => e.dataset.project)"))

    # Active projects by default, each with its status; the archived one stays out.
    assert "p-old" not in shown(), "an archived project is listed by default"
    assert {"p1", "p2"} <= set(shown())
    assert page.input_value("#project-status") == "active"
    assert page.inner_text('.project-card[data-project="p1"] .status') == "active"
    page.select_option("#project-status", "archived")
    _until(lambda: shown() == ["p-old"], "the archived filter shows the archived project only")
    assert page.inner_text('.project-card[data-project="p-old"] .status') == "archived"
    assert page.get_attribute('[data-chart="devices"]', "data-points") == "1"
    page.select_option("#project-status", "all")
    _until(lambda: {"p1", "p2", "p-old"} <= set(shown()), "all statuses show all projects")
    # Search: name, city or id, case-insensitive, together with the status filter.
    page.fill("#project-search", "OLD PRESS")
    _until(lambda: shown() == ["p-old"], "searching a name")
    page.fill("#project-search", "p2")
    _until(lambda: shown() == ["p2"], "searching an id")
    page.select_option("#project-status", "archived")
    page.wait_for_selector(".holder .state.empty >> text=No project matches")
    page.fill("#project-search", "")
    _until(lambda: shown() == ["p-old"], "clearing the search")
    # The status choice is kept; the page speaks Chinese too.
    page.click("#lang")
    page.wait_for_selector('.project-card[data-project="p-old"] .status >> text=已归档')
    assert page.input_value("#project-status") == "archived"
    assert page.get_attribute("#project-search", "placeholder") == "搜索项目"
    page.click("#lang")
    assert page.console.errors == []
