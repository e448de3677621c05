"""Requests that find a key's cache entry missing or expired share one database lookup.

At 500 commands/s over 64 connections every request in flight when a key's entry
expired (each `api.key_cache_s`) read the key from the database itself: tens of lookups
at once, each holding a pooled connection the command inserts were waiting for. The
lookups are counted by PostgreSQL itself (index and sequential scans of `api_keys`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg

from services.core.db import asyncpg_dsn
from tests.test_api_support import api_settings, auth, client, make_keys

N = 40


async def _scans(url: str) -> int:
    """Scans of `api_keys` so far. The API's connections must be closed: a backend reports
    its counters when it exits (or after ten idle seconds)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        n = await conn.fetchval(
            "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE relname = 'api_keys'"
        )
        return int(n)
    finally:
        await conn.close()


async def _lookups(url: str, token: str, n: int) -> tuple[int, set[int]]:
    """Database lookups of `token` for `n` concurrent requests of a fresh API process,
    and the status codes they got."""
    before = await _scans(url)
    async with client(api_settings(url, key_cache_s=60)) as (_app, c):
        answers = await asyncio.gather(
            *(c.get("/api/v1/projects", headers=auth(token)) for _ in range(n))
        )
    # The exited backends' counters arrive shortly after they exit.
    deadline = asyncio.get_running_loop().time() + 30
    after = await _scans(url)
    while after == before and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        after = await _scans(url)
    await asyncio.sleep(1.0)  # a second exited backend's counters; not a figure
    return await _scans(url) - before, {r.status_code for r in answers}


async def test_concurrent_misses_of_one_key_are_one_lookup(
    new_database: Callable[..., str],
) -> None:
    url = new_database()
    keys = await make_keys(url)
    lookups, codes = await _lookups(url, keys.admin, N)
    assert codes == {200}
    assert lookups == 1, f"{lookups} lookups of one key for {N} concurrent requests"
    # An unknown key is looked up once too, and refused every time.
    lookups, codes = await _lookups(url, "f5g_abcdefghij_" + "x" * 40, 5)
    assert codes <= {401, 429}, codes
    assert lookups == 1, f"{lookups} lookups of one unknown key for 5 concurrent requests"
