"""Liveness, readiness and metrics: no key needed, so probes and Prometheus just work.

Readiness (database reachable, schema at the code's migration heads) is checked by a
background task every few seconds and served from memory, so a probe storm never queues
database work and the event loop never blocks on a synchronous driver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from services.api.responses import JSONResponse
from services.core.db import SERVER_SQL, PrimaryWatch

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
READY_INTERVAL_S = 5.0


class Readiness:
    def __init__(
        self,
        engine: AsyncEngine,
        chain: list[str],
        on_failover: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.chain = chain  # the migrations, oldest first; the last is the head
        # The server the last check reached: a failover shows as another one. SQLAlchemy
        # invalidates the whole pool on the first disconnect error, and with a multi-host
        # URL the new connections reach the new primary.
        self.primary = PrimaryWatch()
        self.on_failover = on_failover
        self.ok = False
        self.detail: dict[str, Any] = {"database": "not checked yet"}
        self.checked_at = 0.0

    async def check(self) -> None:
        try:
            async with asyncio.timeout(5):
                async with self.engine.connect() as conn:
                    server = (await conn.execute(sa.text(SERVER_SQL))).scalar_one()
                    rows = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
                    current = {str(r[0]) for r in rows}
            if self.primary.seen(str(server)):
                self.on_failover()
        except Exception as exc:  # any failure means "not ready"; say which
            self.ok = False
            self.detail = {"database": f"unreachable: {type(exc).__name__}: {exc}"[:300]}
        else:
            # Everything after the newest revision the database records is missing (a
            # database recording no revision of the chain misses all of them).
            newest = max((self.chain.index(r) for r in current if r in self.chain), default=-1)
            missing = self.chain[newest + 1 :]
            self.ok = not missing
            self.detail = {
                "database": "ok",
                "migrations": "current" if self.ok else f"missing {', '.join(missing)}",
                "database_primary": self.primary.snapshot(),
            }
        self.checked_at = time.time()

    async def loop(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(READY_INTERVAL_S)


@router.get("/healthz", summary="Liveness: the process and its event loop answer.")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


@router.get(
    "/readyz",
    summary="Readiness: database reachable and migrations current (checked every 5 s).",
    responses={503: {"description": "Not ready; the body says why."}},
)
async def readyz(request: Request) -> Response:
    ready: Readiness = request.app.state.readiness
    body = {"ok": ready.ok, **ready.detail, "checked_at": ready.checked_at}
    return JSONResponse(body, 200 if ready.ok else 503)


@router.get("/metrics", summary="Prometheus metrics.", response_class=Response)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
