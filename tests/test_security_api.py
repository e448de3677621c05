"""API abuse limits on the real app and database: rate per key, body size, no internals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from services.api.limits import TokenBuckets
from tests.test_api_support import api_settings, auth, client, make_keys


def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2.0, burst=3, clock=lambda: now[0])
    assert [buckets.take(b"k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take(b"k") == 0.5  # one token needs half a second at 2/s
    assert buckets.take(b"other") == 0.0  # each key has its own bucket
    now[0] += 0.5
    assert buckets.take(b"k") == 0.0


async def test_rate_limit_is_per_key_with_retry_after(database_url: str) -> None:
    keys = await make_keys(database_url)
    settings = api_settings(database_url, rate_limit_per_s=1.0, rate_limit_burst=5)
    async with client(settings) as (_, c):
        codes = [
            (await c.get("/api/v1/projects", headers=auth(keys.admin))).status_code
            for _ in range(7)
        ]
        assert codes[:5] == [200] * 5
        limited = await c.get("/api/v1/projects", headers=auth(keys.admin))
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["code"] == "rate_limited"
        # Another key is not affected, nor are health checks.
        other = await c.get("/api/v1/projects", headers=auth(keys.read_p1))
        assert other.status_code == 200
        assert (await c.get("/healthz")).status_code == 200


async def test_oversized_bodies_are_refused_before_the_route(database_url: str) -> None:
    keys = await make_keys(database_url)
    settings = api_settings(database_url, max_body_bytes=4096)
    async with client(settings) as (_, c):
        big = b'{"id": "px", "name": "' + b"x" * 10_000 + b'"}'
        announced = await c.post(
            "/api/v1/projects",
            content=big,
            headers={**auth(keys.admin), "content-type": "application/json"},
        )
        assert announced.status_code == 413
        assert announced.json()["error"]["code"] == "payload_too_large"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 1000

        streamed = await c.post(
            "/api/v1/projects",
            content=chunks(),
            headers={**auth(keys.admin), "content-type": "application/json"},
        )
        assert streamed.status_code == 413
        small = await c.post(
            "/api/v1/projects",
            json={"id": "px", "name": "ok"},
            headers=auth(keys.admin),
        )
        assert small.status_code in (200, 201), small.text


async def test_errors_carry_no_internals(database_url: str) -> None:
    keys = await make_keys(database_url)
    async with client(api_settings(database_url)) as (_, c):
        responses: list[httpx.Response] = [
            await c.post("/api/v1/projects", content=b"{not json", headers={
                **auth(keys.admin), "content-type": "application/json"}),
            await c.get("/api/v1/projects/%00", headers=auth(keys.admin)),
            await c.get("/api/v1/projects", headers=auth("f5g_bogus")),
            await c.get("/api/v1/devices?limit=-1", headers=auth(keys.admin)),
        ]  # fmt: skip
    for r in responses:
        assert 400 <= r.status_code < 500, r.text
        text = r.text
        assert "Traceback" not in text
        assert 'File "' not in text
        assert "sqlalchemy" not in text.lower()
        assert "asyncpg" not in text.lower()
