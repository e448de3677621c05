"""KPIs of one project over a time range."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.api.auth.guard import Reader
from services.api.kpis.service import QUERIES_PER_SUMMARY, project_kpis
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
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
) -> dict[str, Any]:
    engine = request.app.state.read_engine
    # No connection is held while the summary takes its own: a request holding one and
    # waiting for more could starve the pool under load.
    async with engine.connect() as conn:
        await visible_project(conn, key, project_id)
    async with _slots(request):
        return await project_kpis(engine, project_id, rng)


def _slots(request: Request) -> asyncio.Semaphore:
    """KPI summaries in flight, bounded so their concurrent queries always fit the pool."""
    slots: asyncio.Semaphore | None = getattr(request.app.state, "kpi_slots", None)
    if slots is None:
        pool_total = 2 * request.app.state.settings.database.pool_max  # size + overflow
        slots = asyncio.Semaphore(max(1, pool_total // QUERIES_PER_SUMMARY - 1))
        request.app.state.kpi_slots = slots
    return slots
