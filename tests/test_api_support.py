"""Shared pieces of the API tests: a seeded database, keys of each kind, a client.

The client drives the real ASGI app (lifespan included) over httpx against a real,
migrated and seeded TimescaleDB; nothing is mocked. Seeded history is small (a few
thousand rows) so every API test module can afford its own database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI

from f5gdev.seed.generate import SeedPlan, default_end, seed
from services.api.app import create_app, make_engine
from services.api.auth import keys
from services.api.rollups import maintain
from services.core.settings import Settings
from tests.conftest import make_settings

# Two projects, each with two devices of every kind, two days at one row per 5 minutes.
PLAN_DEVICES = 16
PLAN_DAYS = 2.0
PLAN_ROWS = 288


def api_settings(url: str, **api: Any) -> Settings:
    return make_settings(url, 1883, api={"rollup_interval_s": 0, "key_cache_s": 0, **api})


@dataclass
class Keys:
    admin: str
    read_p1: str
    operate_p1: str
    read_p2: str
    admin_p2: str


async def seed_small(url: str, end: datetime | None = None, rollups: bool = True) -> SeedPlan:
    plan = SeedPlan(2, PLAN_DEVICES, PLAN_DAYS, PLAN_ROWS, end or default_end())
    await seed(url, plan)
    if rollups:
        engine = make_engine(api_settings(url))
        try:
            await maintain.catch_up(engine)
        finally:
            await engine.dispose()
    return plan


async def make_keys(url: str) -> Keys:
    engine = make_engine(api_settings(url))
    try:
        async with engine.begin() as conn:
            made = [
                (await keys.create(conn, name, scope, projects))[0]
                for name, scope, projects in (
                    ("admin", "admin", None),
                    ("reader-p1", "read", ["p1"]),
                    ("operator-p1", "operate", ["p1"]),
                    ("reader-p2", "read", ["p2"]),
                    ("admin-p2", "admin", ["p2"]),
                )
            ]
    finally:
        await engine.dispose()
    return Keys(*made)


@asynccontextmanager
async def client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
            yield app, c


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def insert_alarms(url: str, rows: list[dict[str, Any]]) -> list[int]:
    """Alarms (and their 'opened' event) as the rules service would write them."""
    import sqlalchemy as sa

    from services.core.tables import alarm_events, alarms

    engine = make_engine(api_settings(url))
    ids: list[int] = []
    try:
        async with engine.begin() as conn:
            for row in rows:
                values = {"state": "open", "message": "", "severity": "major", **row}
                values.setdefault("updated_at", values["opened_at"])
                alarm_id = (
                    await conn.execute(alarms.insert().values(**values).returning(alarms.c.id))
                ).scalar_one()
                await conn.execute(
                    alarm_events.insert().values(
                        ts=values["opened_at"],
                        alarm_id=alarm_id,
                        project_id=values["project_id"],
                        transition="opened",
                        severity=values["severity"],
                        actor="rules",
                    )
                )
                ids.append(int(alarm_id))
            await conn.execute(sa.text("SELECT 1"))
    finally:
        await engine.dispose()
    return ids


async def insert_dead_letters(url: str, rows: list[tuple[str | None, str]]) -> None:
    """(project, reason) dead letters received now."""
    import sqlalchemy as sa

    engine = make_engine(api_settings(url))
    try:
        async with engine.begin() as conn:
            for project, reason in rows:
                await conn.execute(
                    sa.text(
                        "INSERT INTO dead_letters (received_at, topic, reason, detail, project_id, "
                        "payload_size) VALUES (now(), 't', :r, 'd', :p, 1)"
                    ),
                    {"r": reason, "p": project},
                )
    finally:
        await engine.dispose()
