"""The floor map in real Chromium while a real ingest service writes: an AGV's marker
moves when its next position is ingested (through the live stream's ticks, no reload), and
the 5G coverage heatmap draws its cells, in English and Chinese."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import paho.mqtt.publish as mqtt_publish
import pytest

from f5gdev.dashboard.browser import sign_in
from services.ingest.service import IngestService
from tests.test_dashboard_live_values import browser, ingest, wait_for  # noqa: F401
from tests.test_dashboard_support import Stack, stack_fixture  # noqa: F401

DEVICE = "agv-floor-1"
MARKER = f'g.agv[data-device="{DEVICE}"]'


def _agv(seq: int, x: float, y: float, ts: int) -> dict[str, Any]:
    return {"ts": ts, "seq": seq, "x": x, "y": y, "heading": 0.0, "speed": 1.2, "battery": 77.0,
            "state": "moving", "localization": 0.98, "map_id": "hall-1"}  # fmt: skip


def _link(seq: int, rsrp: float, ts: int) -> dict[str, Any]:
    return {"ts": ts, "seq": seq, "rsrp": rsrp, "sinr": 9.0, "latency_ms": 8.0}


def publish(stack: Stack, *messages: tuple[str, dict[str, Any]]) -> None:
    mqtt_publish.multiple(
        [(f"f5g/v1/p1/agv/{DEVICE}/{s}", orjson.dumps(body), 1, False) for s, body in messages],
        hostname="127.0.0.1",
        port=stack.mqtt_port,
    )


def stored(stack: Stack, table: str, seq: int) -> bool:
    sql = f"SELECT 1 FROM {table} WHERE project_id = 'p1' AND device_id = $1 AND seq = $2"
    return bool(stack.sql(sql, DEVICE, seq))


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1600, "height": 1000})
    p = ctx.new_page()
    p.errors = []
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    yield p
    ctx.close()


def test_floor_map_moves_agvs_live_and_draws_the_heatmap(
    stack: Stack,
    ingest: IngestService,  # noqa: F811
    page: Any,
) -> None:
    del ingest
    now = int(time.time() * 1000)
    publish(
        stack,
        ("agv", _agv(1, 10.0, 10.0, now - 4000)),
        ("link", _link(1, -118.0, now - 4000)),
        ("agv", _agv(2, 12.0, 10.0, now - 2000)),
        ("link", _link(2, -92.0, now - 2000)),
    )
    wait_for("the first positions stored", lambda: stored(stack, "agv_status", 2))
    wait_for("the link records stored", lambda: stored(stack, "link_kpis", 2))

    sign_in(page, stack.url, stack.keys.read_p1)
    page.goto(f"{stack.url}/#/p/p1/floor")
    page.wait_for_selector(MARKER, timeout=30_000)
    assert page.locator("#floor-svg").get_attribute("data-map") == "hall-1"
    assert page.locator(MARKER).get_attribute("data-x") == "12"
    assert page.locator(f'polyline.trail[data-device="{DEVICE}"]').count() == 1
    page.evaluate("window.__sameDocument = true")

    # The next position is ingested: the marker moves on the next live tick, no reload.
    publish(stack, ("agv", _agv(3, 20.0, 14.0, int(time.time() * 1000))))
    wait_for("the new position stored", lambda: stored(stack, "agv_status", 3))
    wait_for(
        "the marker at the new position",
        lambda: page.locator(MARKER).get_attribute("data-x") == "20",
        timeout_s=45,
    )
    assert page.locator(MARKER).get_attribute("data-y") == "14"
    assert page.evaluate("window.__sameDocument === true")

    # The heatmap layer: cells of the module's RSRP where the AGV was.
    page.check("#floor-heat")
    page.wait_for_selector("#floor-heatmap rect.heat-cell", timeout=30_000)
    means = sorted(
        float(v)
        for v in page.locator("#floor-heatmap rect.heat-cell").evaluate_all(
            "els => els.map(e => e.dataset.mean)"
        )
    )
    # (10, 10) with -118 dBm and (12, 10) with -92 dBm, 2 s apart: in one 5 s bucket they
    # make one cell at their mean position with the mean -105; in two, a cell each.
    assert means in ([-105.0], [-118.0, -92.0])
    assert page.errors == []


def test_floor_map_speaks_chinese(stack: Stack, page: Any) -> None:
    sign_in(page, stack.url, stack.keys.read_p1, lang="zh")
    page.goto(f"{stack.url}/#/p/p1/floor")
    page.wait_for_selector("#floor-svg", timeout=30_000)
    assert "车间地图" in page.locator("h1.page-title").inner_text()
    assert "5G 覆盖热力图" in page.locator(".floor-controls").inner_text()
    assert page.errors == []
