"""Summaries the dashboard needs in one request each, which the resource routes lack.

The portfolio shows every project's device and alarm counts at once (one grouped query
instead of paging all devices and alarms of every project); the project page charts defect
rate and throughput per inspection station; the device page lists the device's dead letters.
"""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from services.api.auth.guard import Reader
from services.api.deps import Conn
from services.api.errors import invalid
from services.api.params import TimeRange, time_range
from services.api.scope import visible_project
from services.api.series.views import bucket_for

router = APIRouter(prefix="/api/v1", tags=["dashboard"])
MAX_STATION_POINTS = 2000


class ProjectSummary(BaseModel):
    project_id: str
    devices_online: int
    devices_offline: int
    devices_by_kind: dict[str, int]
    active_alarms_by_severity: dict[str, int]


class Portfolio(BaseModel):
    items: list[ProjectSummary]


_PORTFOLIO = sa.text(
    """
    WITH p AS (
        SELECT id FROM projects UNION SELECT DISTINCT project_id FROM devices
    ), d AS (
        SELECT project_id, kind, count(*) FILTER (WHERE online) AS up,
               count(*) FILTER (WHERE NOT online) AS down
        FROM devices GROUP BY 1, 2
    ), a AS (
        SELECT project_id, severity, count(*) AS n FROM alarms
        WHERE state IN ('open', 'acknowledged') GROUP BY 1, 2
    )
    SELECT p.id,
        COALESCE((SELECT sum(up) FROM d WHERE d.project_id = p.id), 0) AS up,
        COALESCE((SELECT sum(down) FROM d WHERE d.project_id = p.id), 0) AS down,
        COALESCE((SELECT jsonb_object_agg(kind, up + down) FROM d WHERE d.project_id = p.id),
                 '{}'::jsonb) AS kinds,
        COALESCE((SELECT jsonb_object_agg(severity, n) FROM a WHERE a.project_id = p.id),
                 '{}'::jsonb) AS alarms
    FROM p WHERE CAST(:projects AS text[]) IS NULL OR p.id = ANY(CAST(:projects AS text[]))
    ORDER BY p.id
    """
)


@router.get(
    "/dashboard/portfolio",
    response_model=Portfolio,
    summary="Device counts and active alarms of every visible project.",
)
async def portfolio(conn: Conn, key: Reader) -> dict[str, Any]:
    rows = await conn.execute(_PORTFOLIO, {"projects": key.visible()})
    return {
        "items": [
            {
                "project_id": r.id,
                "devices_online": int(r.up),
                "devices_offline": int(r.down),
                "devices_by_kind": {k: int(v) for k, v in r.kinds.items()},
                "active_alarms_by_severity": {k: int(v) for k, v in r.alarms.items()},
            }
            for r in rows
        ]
    }


class StationPoint(BaseModel):
    t: str
    inspections: int
    failed: int


class Station(BaseModel):
    device_id: str
    points: list[StationPoint]


class Stations(BaseModel):
    project_id: str
    bucket_s: int
    stations: list[Station]


_STATIONS = sa.text(
    """
    SELECT device_id, time_bucket(make_interval(secs => :bucket), ts) AS bt,
           count(*) AS n, count(*) FILTER (WHERE NOT passed) AS failed
    FROM inspections
    WHERE project_id = :p AND ts >= :start AND ts < :end
    GROUP BY 1, 2 ORDER BY 1, 2
    """
)


@router.get(
    "/projects/{project_id}/dashboard/stations",
    response_model=Stations,
    summary="Inspections and failures per station and bucket (throughput, defect rate).",
)
async def stations(
    project_id: str,
    request: Request,
    conn: Conn,
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
    points: Annotated[int, Query(ge=1, le=MAX_STATION_POINTS)] = 120,
) -> dict[str, Any]:
    await visible_project(conn, key, project_id)
    bucket = bucket_for(rng.seconds, points)
    rows = await conn.execute(
        _STATIONS, {"p": project_id, "bucket": bucket, "start": rng.start, "end": rng.end}
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(r.device_id, []).append(
            {"t": r.bt.isoformat(), "inspections": int(r.n), "failed": int(r.failed)}
        )
    return {
        "project_id": project_id,
        "bucket_s": bucket,
        "stations": [{"device_id": d, "points": p} for d, p in out.items()],
    }


class DeadLetter(BaseModel):
    received_at: str
    topic: str
    reason: str
    detail: str
    payload_size: int
    payload_head: str | None


class DeadLetters(BaseModel):
    items: list[DeadLetter]


_DEAD = sa.text(
    """
    SELECT received_at, topic, reason, detail, payload_size, payload FROM dead_letters
    WHERE project_id = :p AND device_id = :d AND received_at >= :start AND received_at < :end
    ORDER BY received_at DESC LIMIT :limit
    """
)


@router.get(
    "/projects/{project_id}/devices/{device_id}/dead-letters",
    response_model=DeadLetters,
    summary="Rejected messages of a device (registered or not), newest first.",
)
async def dead_letters(
    project_id: str,
    device_id: str,
    conn: Conn,
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    await visible_project(conn, key, project_id)
    if len(device_id) > 64:
        raise invalid("device id is too long")
    rows = await conn.execute(
        _DEAD,
        {"p": project_id, "d": device_id, "start": rng.start, "end": rng.end, "limit": limit},
    )
    return {
        "items": [
            {
                "received_at": r.received_at.isoformat(),
                "topic": r.topic,
                "reason": r.reason,
                "detail": r.detail,
                "payload_size": int(r.payload_size),
                "payload_head": None
                if r.payload is None
                else bytes(r.payload[:200]).decode("utf-8", "replace"),
            }
            for r in rows
        ]
    }


class Me(BaseModel):
    name: str
    scope: str
    projects: list[str] | None
    can_operate: bool


@router.get("/dashboard/me", response_model=Me, summary="The calling key: what the page may offer.")
async def me(key: Reader) -> dict[str, Any]:
    return {
        "name": key.name,
        "scope": key.scope,
        "projects": key.visible(),
        "can_operate": key.allows("operate"),
    }
