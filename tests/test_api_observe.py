"""Metrics (exact names, route templates as labels) and ingest health from the data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.test_api_support import (
    Keys,
    api_settings,
    auth,
    client,
    insert_dead_letters,
    make_keys,
    seed_small,
)


@pytest.fixture(scope="module")
async def env(new_database: Callable[..., str]) -> AsyncIterator[tuple[httpx.AsyncClient, Keys]]:
    url = new_database()
    await seed_small(url)
    await insert_dead_letters(url, [("p1", "schema"), ("p1", "schema"), ("p1", "oversize")])
    k = await make_keys(url)
    async with client(api_settings(url)) as (_, c):
        yield c, k


def _samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    ]


async def test_request_metrics_use_route_templates(env: tuple[httpx.AsyncClient, Keys]) -> None:
    c, k = env
    devices = (await c.get("/api/v1/devices?project=p1", headers=auth(k.admin))).json()["items"]
    for d in devices[:3]:
        await c.get(f"/api/v1/projects/p1/devices/{d['device_id']}", headers=auth(k.admin))
    await c.get("/api/v1/projects/p1/devices/ghost-device", headers=auth(k.admin))
    await c.get("/no/such/path/at-all")
    text = (await c.get("/metrics")).text
    counts = _samples(text, "factory5g_api_requests_total")
    routes = {labels["route"] for labels, _ in counts}
    assert "/api/v1/projects/{project_id}/devices/{device_id}" in routes
    assert not any("ghost" in r or devices[0]["device_id"] in r for r in routes)
    assert "unmatched" in routes or "/" in routes
    statuses = {
        labels["status"]
        for labels, _ in counts
        if labels["route"] == "/api/v1/projects/{project_id}/devices/{device_id}"
    }
    assert {"200", "404"} <= statuses
    buckets = _samples(text, "factory5g_api_request_seconds_bucket")
    assert buckets
    assert set(buckets[0][0]) == {"route", "method", "le"}


async def test_ingest_health_reports_streams_dead_letters_and_rollups(
    env: tuple[httpx.AsyncClient, Keys],
) -> None:
    c, k = env
    r = await c.get("/api/v1/ingest/health", headers=auth(k.read_p1))
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body["streams"]) == {"inspection", "agv", "link", "telemetry"}
    for stream in body["streams"].values():
        assert stream["newest"] is not None
        assert stream["freshness_s"] >= 0
    assert body["dead_letters"]["by_reason"] == {"schema": 2, "oversize": 1}
    assert body["rollups"]["agv/1m"]["lag_s"] < 600
    r = await c.get("/api/v1/ingest/health?project=p2", headers=auth(k.read_p1))
    assert r.status_code == 404
