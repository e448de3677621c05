"""`/api/v1/retention`: the policies, what they hold, and a pass on demand (admin)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from services.api.audit import record as audit
from services.api.audit.record import acting
from services.api.auth.guard import Admin, Reader
from services.api.auth.keys import ApiKey
from services.api.deps import Conn, TxConn
from services.api.errors import ApiError, documented, not_found
from services.api.retention import maintain

router = APIRouter(prefix="/api/v1/retention", tags=["retention"])

Target = Literal[
    "inspections",
    "agv_status",
    "link_kpis",
    "telemetry",
    "alarm_events",
    "dead_letters",
    "rollup_1m",
    "rollup_1h",
]
TargetPath = Annotated[Target, Path(description="A raw store, or rollup_1m / rollup_1h.")]


class PolicySet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_days: float = Field(
        gt=0, le=36500, description="Days kept; older chunks (raw) or buckets (rollups) go."
    )


def _all_projects(key: ApiKey) -> None:
    """Retention drops every project's data: only a key for every project sets it."""
    if key.projects is not None:
        raise ApiError(
            403,
            "forbidden",
            "retention applies to every project: needs an admin key for every project",
        )


@router.get("", summary="Policies, bytes on disk and next drop per store (read).")
async def get_retention(conn: Conn, key: Reader) -> dict[str, Any]:
    return {"targets": await maintain.status(conn)}


@router.put(
    "/policies/{target}",
    summary="Set how long a store is kept (admin for every project).",
    responses=documented(403),
)
async def set_policy(
    request: Request, target: TargetPath, body: PolicySet, conn: TxConn, key: Admin
) -> dict[str, Any]:
    _all_projects(key)
    if body.keep_days * 24 < 1:
        raise ApiError(422, "invalid", "keep_days must keep at least one hour")
    keep = timedelta(days=body.keep_days)
    before = (
        await conn.execute(
            sa.text("SELECT keep FROM retention_policies WHERE target = :t FOR UPDATE"),
            {"t": target},
        )
    ).scalar()
    actor = acting(request, key)
    await conn.execute(
        sa.text(
            "INSERT INTO retention_policies (target, keep, updated_by) VALUES (:t, :k, :a) "
            "ON CONFLICT (target) DO UPDATE SET keep = excluded.keep, updated_at = now(), "
            "updated_by = excluded.updated_by"
        ),
        {"t": target, "k": keep, "a": actor.name},
    )
    await audit.record(
        conn,
        actor,
        "retention.set",
        "retention",
        target,
        before=None if before is None else {"keep_s": before.total_seconds()},
        after={"keep_s": keep.total_seconds()},
    )
    await conn.commit()
    return {"target": target, "keep_s": keep.total_seconds()}


@router.delete("/policies/{target}", summary="Keep a store for ever (admin for every project).")
async def clear_policy(
    request: Request, target: TargetPath, conn: TxConn, key: Admin
) -> dict[str, Any]:
    _all_projects(key)
    before = (
        await conn.execute(
            sa.text("DELETE FROM retention_policies WHERE target = :t RETURNING keep"),
            {"t": target},
        )
    ).scalar()
    if before is None:
        raise not_found(f"retention policy {target!r}")
    await audit.record(
        conn,
        acting(request, key),
        "retention.clear",
        "retention",
        target,
        before={"keep_s": before.total_seconds()},
    )
    await conn.commit()
    return {"target": target, "keep_s": None}


@router.post("/run", summary="Apply the policies now (admin for every project).")
async def run_now(request: Request, conn: TxConn, key: Admin) -> dict[str, Any]:
    _all_projects(key)
    outcomes = await maintain.run_once(conn)
    result = [
        {
            "target": o.target,
            "cutoff": o.cutoff,
            "dropped": o.dropped,
            "held_back_by": o.held_back_by,
        }
        for o in outcomes
    ]
    await audit.record(
        conn, acting(request, key), "retention.run", "retention", "*", after={"outcomes": result}
    )
    await conn.commit()
    return {"outcomes": result}
