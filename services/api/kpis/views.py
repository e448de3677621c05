"""KPIs of one project over a time range."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.api.auth.guard import Reader
from services.api.kpis.service import QUERIES_PER_SUMMARY, project_kpis
from services.api.params import TimeRange, time_range
from services.api.scope import visible_project
from services.api.texts import Lang
from services.protocols.texts import kpi_labels

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
    reading: Lang,
) -> dict[str, Any]:
    engine = request.app.state.read_engine
    # No connection is held while the summary takes its own: a request holding one and
    # waiting for more could starve the pool under load.
    async with engine.connect() as conn:
        await visible_project(conn, key, project_id)
    async with _slots(request):
        out = await project_kpis(engine, project_id, rng)
    # Each KPI's name as the programme's documents write it, keyed by its path here.
    out["labels"] = kpi_labels(_paths(out), reading.lang)
    return out


def _paths(summary: dict[str, Any]) -> list[str]:
    """`group.kpi` (and `link.latency_ms.p95`) for every KPI of the summary."""
    out: list[str] = []
    for group, kpis in summary.items():
        if not isinstance(kpis, dict):
            continue
        for name, value in kpis.items():
            if isinstance(value, dict) and group == "link" and name == "latency_ms":
                out.extend(f"{group}.{name}.{q}" for q in value)
            else:
                out.append(f"{group}.{name}")
    return out


def _slots(request: Request) -> asyncio.Semaphore:
    """KPI summaries in flight, bounded so their concurrent queries always fit the pool."""
    slots: asyncio.Semaphore | None = getattr(request.app.state, "kpi_slots", None)
    if slots is None:
        pool_total = 2 * request.app.state.settings.database.pool_max  # size + overflow
        slots = asyncio.Semaphore(max(1, pool_total // QUERIES_PER_SUMMARY - 1))
        request.app.state.kpi_slots = slots
    return slots
