"""API abuse limits on the real app and database: rate per key, body size, no internals."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx

from services.api.auth.keys import LOOKUP_SQL, presented_token
from services.api.limits import TokenBuckets, caller
from services.core.settings import Settings, load_settings
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


def _random_token() -> str:
    return f"f5g_{secrets.token_hex(5)}_{secrets.token_urlsafe(32)}"


async def test_a_second_key_header_buys_no_fresh_bucket(database_url: str) -> None:
    """The limiter charges the key authentication checks, whatever other key header is sent.

    Before the fix a random `Authorization: Bearer` sent before a valid `X-API-Key` opened a
    fresh bucket on every request: 60 of 60 served at a burst of 10.
    """
    keys = await make_keys(database_url)
    settings = api_settings(database_url, rate_limit_per_s=0.01, rate_limit_burst=10)
    async with client(settings) as (_, c):
        codes: list[int] = []
        for i in range(60):
            forged = ("authorization", f"Bearer {_random_token()}")
            valid = ("x-api-key", keys.read_p1)
            order = [forged, valid] if i % 2 == 0 else [valid, forged]
            codes.append((await c.get("/api/v1/projects", headers=order)).status_code)
    served, limited = codes.count(200), codes.count(429)
    assert (served, limited) == (10, 50), codes


async def test_a_flood_of_made_up_keys_gets_429_and_bounded_lookups(database_url: str) -> None:
    """Random keys from one address: after the failure burst, 429 without a database lookup.

    Before the fix every one of 300 made-up keys was answered 401 after its own lookup.
    """
    keys = await make_keys(database_url)
    settings = api_settings(database_url, auth_failures_per_s=0.01, auth_failure_burst=10)
    async with client(settings) as (app, c):
        # A real client at the same address, proven before the flood, keeps working.
        assert (await c.get("/api/v1/projects", headers=auth(keys.read_p1))).status_code == 200
        pool = app.state.fast_pool
        real_fetch = pool.fetch
        lookups = 0

        async def counting_fetch(sql: str, *args: object) -> object:
            nonlocal lookups
            if sql == LOOKUP_SQL:
                lookups += 1
            return await real_fetch(sql, *args)

        pool.fetch = counting_fetch
        codes = [
            (await c.get("/api/v1/projects", headers=auth(_random_token()))).status_code
            for _ in range(300)
        ]
        assert (await c.get("/api/v1/projects", headers=auth(keys.read_p1))).status_code == 200
        last = await c.get("/api/v1/projects", headers={"X-API-Key": _random_token()})
    assert (codes.count(401), codes.count(429)) == (10, 290), codes
    assert lookups <= 11, lookups
    assert last.status_code == 429
    assert int(last.headers["retry-after"]) >= 1
    assert last.json()["error"]["code"] == "rate_limited"


async def test_a_repeated_unknown_key_is_looked_up_once_per_cache_period(
    database_url: str,
) -> None:
    await make_keys(database_url)
    settings = api_settings(database_url, key_cache_s=60, auth_failures_per_s=0)
    async with client(settings) as (app, c):
        pool = app.state.fast_pool
        real_fetch = pool.fetch
        lookups = 0

        async def counting_fetch(sql: str, *args: object) -> object:
            nonlocal lookups
            lookups += sql == LOOKUP_SQL
            return await real_fetch(sql, *args)

        pool.fetch = counting_fetch
        bad = _random_token()
        codes = [
            (await c.get("/api/v1/projects", headers=auth(bad))).status_code for _ in range(50)
        ]
    assert codes == [401] * 50
    assert lookups == 1


def test_one_function_picks_the_credential_for_auth_and_limits() -> None:
    h = [(b"authorization", b"Bearer b"), (b"x-api-key", b"k")]
    assert presented_token(h) == "k"
    assert presented_token(list(reversed(h))) == "k"
    assert presented_token([(b"x-api-key", b""), (b"authorization", b"Bearer b")]) == "b"
    assert presented_token([(b"authorization", b"Basic b")]) is None
    assert (
        presented_token([(b"authorization", b"Bearer b"), (b"authorization", b"Bearer c")]) == "b"
    )
    assert caller({"headers": h}) == caller({"headers": [(b"x-api-key", b"k")]})


async def test_keys_are_rate_limited_by_default(database_url: str) -> None:
    """Secure by default: with no rate setting at all one key gets 429 past the burst; only
    an explicit `rate_limit_per_s=0` turns the limit off."""
    keys = await make_keys(database_url)
    assert load_settings(database={"url": database_url}).api.rate_limit_per_s > 0

    async def fifty(settings: Settings) -> list[int]:
        async with client(settings) as (_, c):
            calls = (c.get("/api/v1/projects", headers=auth(keys.admin)) for _ in range(50))
            return [r.status_code for r in await asyncio.gather(*calls)]

    # 50 requests at once with a burst of 1: at the default rate of 100/s at most a few
    # tokens come back while they arrive, however slow the machine.
    limited = await fifty(api_settings(database_url, rate_limit_burst=1))
    assert limited.count(429) >= 25, limited
    unlimited = await fifty(api_settings(database_url, rate_limit_per_s=0, rate_limit_burst=1))
    assert unlimited == [200] * 50
