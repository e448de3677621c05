"""A plain asyncpg pool for the few hottest read routes.

Through SQLAlchemy's async layer a request pays for a greenlet switch on checkout, query
and return, plus row processing; for a page of fifty devices that is a third of the
route's CPU. Routes polled by every dashboard use this pool directly (prepared statements,
records straight to JSON); everything else stays on SQLAlchemy. The pool opens lazily so
an app whose database is down still starts and reports not-ready.

No reset query on release. asyncpg's default sends one (`pg_advisory_unlock_all(); CLOSE
ALL; UNLISTEN *; RESET ALL`) every time a connection goes back: a round trip of its own
per request, which was a seventh of the API's CPU at 500 commands/s. Nothing on this pool
sets session state: its users run single statements or transactions, whose locks and
settings end with them; asyncpg still rolls back a transaction left open. A route that
needs LISTEN, SET or a session lock must not use this pool.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson

from services.core.db import asyncpg_dsn
from services.core.settings import Settings


async def _init(conn: Any) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _keep_session(conn: Any) -> None:
    """Release without a reset query (see the module's docstring)."""


class FastPool:
    def __init__(self, settings: Settings) -> None:
        self._dsn = asyncpg_dsn(settings.database.url)
        self._max = settings.database.pool_max
        self._timeout = settings.database.connect_timeout_s
        self._pool: Any = None
        self._lock = asyncio.Lock()

    async def pool(self) -> Any:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=self._max,
                        init=_init,
                        reset=_keep_session,
                        timeout=self._timeout,
                    )
        return self._pool

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        pool = await self.pool()
        async with pool.acquire() as conn:
            rows: list[Any] = await conn.fetch(sql, *args)
            return rows

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
