"""Registered devices, for `ingest.unknown_devices = dead_letter`.

The pipeline asks for every message whether its device is registered; that must cost a
set lookup, not a query. The set is loaded before ingest subscribes and refreshed every
`REFRESH_S` in the background, so a device an admin registers is accepted within that
time, and a retired one refused. A failed refresh keeps the last set (and says so): a
database hiccup must not turn every device unknown.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import asyncpg

from services.core.db import asyncpg_dsn

log = logging.getLogger(__name__)

REFRESH_S: Final = 5.0
_SQL: Final = "SELECT project_id, device_id FROM devices WHERE status = 'registered'"


class KnownDevices:
    def __init__(self, url: str, connect_timeout_s: float, refresh_s: float = REFRESH_S) -> None:
        self.url = url
        self.connect_timeout_s = connect_timeout_s
        self.refresh_s = refresh_s
        self._known: frozenset[tuple[str, str]] = frozenset()
        self.loaded = asyncio.Event()

    def __call__(self, project: str, device: str) -> bool:
        return (project, device) in self._known

    async def load(self) -> None:
        conn = await asyncpg.connect(asyncpg_dsn(self.url), timeout=self.connect_timeout_s)
        try:
            rows = await conn.fetch(_SQL)
        finally:
            await conn.close()
        self._known = frozenset((r["project_id"], r["device_id"]) for r in rows)
        self.loaded.set()

    async def keep_loaded(self) -> None:
        """Refresh until cancelled; the first load is retried until it succeeds."""
        while True:
            try:
                await self.load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the last set; say why
                log.warning("registered devices not refreshed: %s", exc.__class__.__name__)
            await asyncio.sleep(self.refresh_s if self.loaded.is_set() else 1.0)
