"""5G communication service availability: the scorecard, and each flow's settings (admin)."""

from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from sqlalchemy.dialects.postgresql import insert

from services.api.audit import record as audit
from services.api.audit.record import acting
from services.api.auth.guard import Admin, Reader
from services.api.availability.models import (
    FlowSettings,
    FlowSettingsIn,
    FlowSettingsList,
    Scorecard,
)
from services.api.availability.service import scorecard
from services.api.deps import Conn, TxConn
from services.api.errors import invalid, not_found
from services.api.params import TimeRange, time_range
from services.api.scope import visible_project
from services.core.settings import AvailabilitySettings
from services.core.tables import availability_flows

router = APIRouter(prefix="/api/v1/projects", tags=["availability"])


def _defaults(request: Request) -> AvailabilitySettings:
    settings: AvailabilitySettings = request.app.state.settings.availability
    return settings


@router.get(
    "/{project_id}/service-availability",
    response_model=Scorecard,
    summary="5G communication service availability per flow and for the project "
    "(3GPP TS 22.261 / 22.104), with latency percentiles and signal bands against targets.",
)
async def get_service_availability(
    request: Request,
    project_id: str,
    conn: Conn,
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
) -> Scorecard:
    await visible_project(conn, key, project_id)
    return await scorecard(conn, project_id, rng.start, rng.end, _defaults(request))


@router.get(
    "/{project_id}/service-availability/flows",
    response_model=FlowSettingsList,
    summary="Transfer interval and survival time per device profile (* = project default).",
)
async def list_flows(request: Request, project_id: str, conn: Conn, key: Reader) -> dict[str, Any]:
    await visible_project(conn, key, project_id)
    d = _defaults(request)
    rows = await conn.execute(
        sa.select(availability_flows)
        .where(availability_flows.c.project_id == project_id)
        .order_by(availability_flows.c.profile)
    )
    return {
        "defaults": {
            "profile": "*",
            "transfer_interval_s": d.transfer_interval_s,
            "survival_time_s": d.survival_time_s,
        },
        "items": [dict(r._mapping) for r in rows],
    }


@router.put(
    "/{project_id}/service-availability/flows",
    response_model=FlowSettings,
    summary="Set the transfer interval and survival time of a device profile or of the "
    "project (*) (admin).",
)
async def put_flow(
    request: Request, project_id: str, body: FlowSettingsIn, conn: TxConn, key: Admin
) -> dict[str, Any]:
    if not key.sees(project_id):
        raise not_found(f"project {project_id!r}")
    await visible_project(conn, key, project_id)
    floor = _defaults(request).gap_floor_s
    if body.transfer_interval_s + body.survival_time_s < floor:
        raise invalid(
            f"survival_time_s: transfer_interval_s + survival_time_s must be at least "
            f"{floor:g} s (availability.gap_floor_s), the shortest silence kept"
        )
    t = availability_flows
    before = (
        await conn.execute(
            sa.select(t.c.transfer_interval_s, t.c.survival_time_s)
            .where(t.c.project_id == project_id, t.c.profile == body.profile)
            .with_for_update()
        )
    ).first()
    ins = insert(t).values(project_id=project_id, **body.model_dump())
    stmt = ins.on_conflict_do_update(
        index_elements=[t.c.project_id, t.c.profile],
        set_={
            "transfer_interval_s": ins.excluded.transfer_interval_s,
            "survival_time_s": ins.excluded.survival_time_s,
            "updated_at": sa.func.now(),
        },
    ).returning(t.c.profile, t.c.transfer_interval_s, t.c.survival_time_s, t.c.updated_at)
    row = (await conn.execute(stmt)).one()
    out = dict(row._mapping)
    await audit.record(
        conn,
        acting(request, key),
        "availability.flow.set",
        "availability_flow",
        f"{project_id}/{body.profile}",
        project=project_id,
        before=None if before is None else dict(before._mapping),
        after={k: out[k] for k in ("transfer_interval_s", "survival_time_s")},
    )
    await conn.commit()
    return out
