"""KPIs of one project over a time range."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.api.auth.guard import Reader
from services.api.deps import Conn
from services.api.kpis.service import project_kpis
from services.api.params import TimeRange, time_range
from services.api.scope import visible_project

router = APIRouter(prefix="/api/v1/projects", tags=["kpis"])


@router.get(
    "/{project_id}/kpis",
    summary="Quality, AGV, 5G link and alarm KPIs over a range (default: last 24 h).",
)
async def get_kpis(
    request: Request,
    project_id: str,
    conn: Conn,
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
) -> dict[str, Any]:
    await visible_project(conn, key, project_id)
    return await project_kpis(request.app.state.read_engine, project_id, rng)
