"""Devices: a filtered, cursor-paged list, and one device with its latest values."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from services.api.auth.guard import Reader
from services.api.deps import Conn
from services.api.devices.models import DeviceDetail, DevicePage
from services.api.errors import not_found
from services.api.params import CursorParam, Limit, decode_cursor, encode_cursor
from services.api.responses import JSONResponse
from services.api.scope import project_filter
from services.core.tables import devices

router = APIRouter(prefix="/api/v1", tags=["devices"])
_COLS = (
    devices.c.project_id,
    devices.c.device_id,
    devices.c.kind,
    devices.c.first_seen,
    devices.c.last_seen,
    devices.c.online,
    devices.c.metadata,
    devices.c.status,
    devices.c.profiles,
    devices.c.registered_at,
    devices.c.retired_at,
)
_LIST_COLS = ", ".join(c.name for c in _COLS)
_LAST_TABLES = {"inspection": "inspections", "agv": "agv_status", "link": "link_kpis"}
_HIDDEN = {"project_id", "device_id", "received_at"}
# How far before last_seen the latest values are looked for (bounds the index scan).
_LAST_WINDOW = timedelta(days=1)


@router.get(
    "/devices",
    response_model=DevicePage,
    summary="Devices of the visible projects, by project then device id.",
)
async def list_devices(
    request: Request,
    key: Reader,
    project: Annotated[str | None, Query(max_length=64)] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    online: bool | None = None,
    status: Annotated[
        Literal["unregistered", "registered", "retired"] | None,
        Query(description="Registry status; `unregistered`: seen by ingest, not yet registered."),
    ] = None,
    limit: Limit = 100,
    cursor: CursorParam = None,
) -> Response:
    # The hottest route (dashboards poll it): plain asyncpg (see fastpool) and a response
    # returned ready-made instead of re-validated through the response model.
    after = decode_cursor(cursor, (str, str))
    visible = project_filter(key, project)
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if visible is not None:
        where.append(f"project_id = ANY({arg(visible)}::text[])")
    if kind is not None:
        where.append(f"kind = {arg(kind)}")
    if online is not None:
        where.append(f"online = {arg(online)}")
    if status is not None:
        where.append(f"status = {arg(status)}")
    if after is not None:
        where.append(f"(project_id, device_id) > ({arg(after[0])}, {arg(after[1])})")
    sql = (
        f"SELECT {_LIST_COLS} FROM devices"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY project_id, device_id LIMIT {arg(limit + 1)}"
    )
    rows = await request.app.state.fast_pool.fetch(sql, *args)
    items = [dict(r) for r in rows[:limit]]
    nxt = (
        encode_cursor([items[-1]["project_id"], items[-1]["device_id"]])
        if len(rows) > limit
        else None
    )
    return JSONResponse({"items": items, "next_cursor": nxt})


@router.get(
    "/projects/{project_id}/devices/{device_id}",
    response_model=DeviceDetail,
    summary="One device with its latest record per stream.",
)
async def get_device(project_id: str, device_id: str, conn: Conn, key: Reader) -> dict[str, Any]:
    if not key.sees(project_id):
        raise not_found(f"device {project_id}/{device_id}")
    row = (
        await conn.execute(
            sa.select(*_COLS).where(
                devices.c.project_id == project_id, devices.c.device_id == device_id
            )
        )
    ).first()
    if row is None:
        raise not_found(f"device {project_id}/{device_id}")
    out = row._asdict()
    since = out["last_seen"] - _LAST_WINDOW
    params = {"p": project_id, "d": device_id, "since": since}
    last: dict[str, dict[str, Any]] = {}
    for stream, table in _LAST_TABLES.items():
        rec = (
            await conn.execute(
                sa.text(
                    f"SELECT * FROM {table} WHERE project_id = :p AND device_id = :d "
                    "AND ts >= :since ORDER BY ts DESC LIMIT 1"
                ),
                params,
            )
        ).first()
        if rec is not None:
            last[stream] = {k: v for k, v in rec._asdict().items() if k not in _HIDDEN}
    metrics = (
        await conn.execute(
            sa.text(
                "SELECT DISTINCT ON (metric) metric, value, ts FROM telemetry "
                "WHERE project_id = :p AND device_id = :d AND ts >= :since "
                "ORDER BY metric, ts DESC"
            ),
            params,
        )
    ).all()
    if metrics:
        last["telemetry"] = {m.metric: {"value": m.value, "ts": m.ts} for m in metrics}
    out["last"] = last
    return out
