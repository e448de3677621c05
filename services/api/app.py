"""The API application: routers, error shape, metrics, background tasks, static dashboard.

`create_app(settings)` builds a self-contained app (own engine, key cache, readiness
checker), so tests can run several against different databases in one process. Background
work (readiness checks, rollup passes) starts and stops with the app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.staticfiles import StaticFiles

from services.api import errors
from services.api.alarms.views import router as alarms_router
from services.api.audit.record import RequestId
from services.api.audit.views import router as audit_router
from services.api.auth import keys
from services.api.auth.guard import KeyCache
from services.api.auth.views import router as keys_router
from services.api.availability.views import router as availability_router
from services.api.commands.views import router as commands_router
from services.api.credentials.views import router as credentials_router
from services.api.dashboard.headers import DashboardHeaders
from services.api.dashboard.hub import AlarmHub
from services.api.dashboard.live import router as live_router
from services.api.dashboard.views import router as dashboard_router
from services.api.devices.admin import router as devices_admin_router
from services.api.devices.views import router as devices_router
from services.api.fastpool import FastPool
from services.api.floor.views import router as floor_router
from services.api.health.views import Readiness
from services.api.health.views import router as health_router
from services.api.ingest.views import router as ingest_router
from services.api.kpis.views import router as kpis_router
from services.api.limits import RequestLimits
from services.api.notify.views import alarm_router as notify_alarm_router
from services.api.notify.views import router as notify_router
from services.api.observe import ApiMetrics, MetricsMiddleware
from services.api.oee.views import router as oee_router
from services.api.projects.views import router as projects_router
from services.api.report import ledger
from services.api.report.views import router as report_router
from services.api.responses import JSONResponse
from services.api.retention import maintain as retention
from services.api.retention.views import router as retention_router
from services.api.rollups import maintain
from services.api.rulesets.views import router as rulesets_router
from services.api.sanitize import RejectNul
from services.api.series.views import router as series_router
from services.core import db
from services.core.metrics import service_registry
from services.core.settings import Settings

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"


def make_engine(settings: Settings) -> AsyncEngine:
    d = settings.database
    return create_async_engine(
        db.async_url(d.url),
        pool_size=d.pool_max,
        max_overflow=d.pool_max,
        pool_pre_ping=False,
        json_deserializer=orjson.loads,
        json_serializer=lambda v: orjson.dumps(v).decode(),
        connect_args={"timeout": d.connect_timeout_s},
    )


async def _rollup_loop(engine: AsyncEngine, interval_s: float, gap_floor_s: float) -> None:
    while True:
        try:
            await maintain.catch_up(engine, max_runs=50, gap_floor_s=gap_floor_s)
            await ledger.catch_up(engine, max_runs=50)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed pass is retried next interval; say why
            log.exception("rollup pass failed")
        await asyncio.sleep(interval_s)


async def _retention_loop(engine: AsyncEngine, interval_s: float) -> None:
    while True:
        try:
            await retention.run(engine)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed pass is retried next interval; say why
            log.exception("retention pass failed")
        await asyncio.sleep(interval_s)


async def _ensure_bootstrap_key(engine: AsyncEngine, settings: Settings) -> None:
    """A new deployment needs one admin key to create the others (the chart supplies it)."""
    token = settings.api.bootstrap_key
    if token is None:
        return
    try:
        async with engine.begin() as conn:
            if await keys.ensure(conn, token.get_secret_value(), name="bootstrap", scope="admin"):
                log.info("stored the bootstrap admin key")
    except sa.exc.DBAPIError as exc:  # e.g. not migrated yet: /readyz says so too
        log.error("bootstrap key not stored: %s", exc.__class__.__name__)


async def _log_license(engine: AsyncEngine) -> None:
    """Rollups are always our own; the license is logged so operators know why."""
    with contextlib.suppress(Exception):
        async with engine.connect() as conn:
            lic = (await conn.execute(sa.text("SHOW timescaledb.license"))).scalar()
        log.info("TimescaleDB license %s: serving long ranges from factory5g rollups", lic)


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        app.state.engine = engine
        app.state.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        app.state.fast_pool = FastPool(settings)
        app.state.alarm_hub = AlarmHub(settings, app.state.metrics)
        app.state.readiness = Readiness(
            engine, db.revision_chain(), app.state.metrics.database_failovers.inc
        )
        await app.state.readiness.check()
        await _ensure_bootstrap_key(engine, settings)
        tasks = [asyncio.create_task(app.state.readiness.loop())]
        if settings.api.rollup_interval_s > 0:
            tasks.append(
                asyncio.create_task(
                    _rollup_loop(
                        engine,
                        settings.api.rollup_interval_s,
                        settings.availability.gap_floor_s,
                    )
                )
            )
        if settings.api.retention_interval_s > 0:
            tasks.append(
                asyncio.create_task(_retention_loop(engine, settings.api.retention_interval_s))
            )
        await _log_license(engine)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await app.state.alarm_hub.close()
            await app.state.fast_pool.close()
            await engine.dispose()

    app = FastAPI(
        title="factory5g API",
        version="1",
        summary="Projects, devices, series, KPIs, alarms and ingest health of factory5g.",
        default_response_class=JSONResponse,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics = ApiMetrics(service_registry())
    app.state.key_cache = KeyCache(
        settings.api.key_cache_s,
        settings.api.auth_failures_per_s,
        settings.api.auth_failure_burst,
    )
    errors.install(app)
    app.include_router(health_router)
    # Routes are matched in order, router by router: the commands router comes first
    # because its POST is the one route driven at hundreds of requests a second (the
    # commands benchmark), and trying nine routers before it was a tenth of the API's CPU
    # per command. No other router has a path its routes could match.
    for router in (
        commands_router,
        projects_router,
        devices_router,
        series_router,
        kpis_router,
        floor_router,
        oee_router,
        alarms_router,
        notify_alarm_router,
        notify_router,
        ingest_router,
        dashboard_router,
        live_router,
        audit_router,
        keys_router,
        credentials_router,
        devices_admin_router,
        retention_router,
        rulesets_router,
        availability_router,
        report_router,
    ):
        app.include_router(router, responses=errors.documented(401, 403, 404, 422, 429))
    app.add_middleware(RejectNul)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(DashboardHeaders)
    app.add_middleware(RequestId)
    app.add_middleware(
        RequestLimits,
        rate_per_s=settings.api.rate_limit_per_s,
        burst=settings.api.rate_limit_burst,
        max_body_bytes=settings.api.max_body_bytes,
    )
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = errors.describe_refusals(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
