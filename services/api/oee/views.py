"""OEE routes: summary by machine, line or project, downtime Pareto, per-shift trend, and
the project's OEE settings (shifts, time zone, ideal cycle times, reason names)."""

from __future__ import annotations

from typing import Annotated, Literal

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request

from services.api.audit import record as audit
from services.api.audit.record import acting
from services.api.auth.guard import Admin, Reader
from services.api.deps import Conn, TxConn
from services.api.oee import service
from services.api.oee.models import OeePareto, OeeSettings, OeeSettingsOut, OeeSummary, OeeTrend
from services.api.params import TimeRange, time_range
from services.api.scope import visible_project

router = APIRouter(prefix="/api/v1/projects", tags=["oee"])
Range = Annotated[TimeRange, Depends(time_range)]


@router.get(
    "/{project_id}/oee",
    response_model=OeeSummary,
    summary="OEE (ISO 22400-2) per machine, line or project over a range (default: last 24 h).",
)
async def get_oee(
    project_id: str,
    conn: Conn,
    key: Reader,
    rng: Range,
    by: Annotated[
        Literal["machine", "line", "project"], Query(description="Grouping of the figures.")
    ] = "project",
) -> OeeSummary:
    await visible_project(conn, key, project_id)
    return await service.oee_summary(conn, project_id, rng.start, rng.end, by)


@router.get(
    "/{project_id}/oee/pareto",
    response_model=OeePareto,
    summary="Unplanned downtime inside the shifts by reason code, largest first.",
)
async def get_pareto(project_id: str, conn: Conn, key: Reader, rng: Range) -> OeePareto:
    await visible_project(conn, key, project_id)
    return await service.oee_pareto(conn, project_id, rng.start, rng.end)


@router.get(
    "/{project_id}/oee/trend",
    response_model=OeeTrend,
    summary="Project OEE per shift occurrence in the range.",
)
async def get_trend(project_id: str, conn: Conn, key: Reader, rng: Range) -> OeeTrend:
    await visible_project(conn, key, project_id)
    return await service.oee_trend(conn, project_id, rng.start, rng.end)


@router.get(
    "/{project_id}/oee/settings",
    response_model=OeeSettingsOut,
    summary="The project's shifts, time zone, ideal cycle times and reason names.",
)
async def get_settings(project_id: str, conn: Conn, key: Reader) -> OeeSettingsOut:
    await visible_project(conn, key, project_id)
    return await service.load_settings(conn, project_id)


@router.put(
    "/{project_id}/oee/settings",
    response_model=OeeSettingsOut,
    summary="Replace the project's OEE settings (admin; audited).",
)
async def put_settings(
    request: Request, project_id: str, body: OeeSettings, conn: TxConn, key: Admin
) -> OeeSettingsOut:
    await visible_project(conn, key, project_id)
    before = (
        await conn.execute(
            sa.text("SELECT settings FROM oee_settings WHERE project_id = :p FOR UPDATE"),
            {"p": project_id},
        )
    ).scalar()
    after = body.model_dump(mode="json")
    actor = acting(request, key)
    await conn.execute(
        sa.text(
            "INSERT INTO oee_settings (project_id, settings, updated_at, updated_by) "
            "VALUES (:p, CAST(:s AS jsonb), now(), :by) ON CONFLICT (project_id) DO UPDATE "
            "SET settings = EXCLUDED.settings, updated_at = now(), updated_by = EXCLUDED.updated_by"
        ),
        {"p": project_id, "s": orjson.dumps(after).decode(), "by": actor.name},
    )
    await audit.record(
        conn,
        actor,
        "oee.settings.update",
        "oee_settings",
        project_id,
        project=project_id,
        before=before,
        after=after,
    )
    await conn.commit()
    return await service.load_settings(conn, project_id)
