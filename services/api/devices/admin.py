"""Device administration (admin): register, update, retire, delete with its data.

Ingest still registers a device on its first message, as `unregistered`; an admin
registers it (kind, profiles, metadata: line, location, model, firmware, tags), or
registers a device before it ever publishes. Retiring keeps its history and revokes its
broker credentials; deleting removes its rows from every table and needs the device id
repeated in `confirm`. The API role changes the registry only through the owner's
functions `device_set` and `admin_purge` (0009_admin), which never touch ingest's columns.
Every act is in the audit trail, in the act's transaction.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.audit import record as audit
from services.api.audit.record import acting
from services.api.auth.guard import Admin
from services.api.auth.keys import ApiKey
from services.api.credentials.views import revoke_credentials
from services.api.deps import TxConn
from services.api.devices.models import Device
from services.api.errors import ApiError, documented, invalid, not_found
from services.core.contracts import ID_PATTERN, is_valid_id
from services.core.tables import devices

router = APIRouter(prefix="/api/v1/projects/{project_id}/devices", tags=["devices"])

Id = Annotated[str, Field(pattern=ID_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00]*$")]


class DeviceMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: Text | None = None
    location: Text | None = None
    model: Text | None = None
    firmware: Text | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=32)
    module_of: Id | None = Field(
        None,
        description="For a 5G module / CPE: the device (station, AGV) it is mounted on and "
        "whose traffic it carries; the floor map's coverage heatmap pairs an AGV with its "
        "module, and alarm root causes relate them (docs/plant.md).",
    )


class DeviceRegister(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device_id: Id
    kind: Id
    profiles: list[Id] = Field(
        default_factory=list,
        max_length=16,
        description="Rule sets / KPIs the device takes part in, e.g. [agv, link]; empty: "
        "the kind's default.",
    )
    metadata: DeviceMetadata = Field(default_factory=DeviceMetadata)


class DeviceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Id | None = None
    profiles: list[Id] | None = Field(None, max_length=16)
    metadata: DeviceMetadata | None = None


class DeviceDeleted(BaseModel):
    project_id: str
    device_id: str
    rows_deleted: int
    credentials_revoked: list[int]


_SET = sa.text(
    "SELECT * FROM device_set(:p, :d, :k, CAST(:profiles AS text[]), CAST(:meta AS jsonb), :s)"
)


async def _current(conn: AsyncConnection, project: str, device: str) -> dict[str, Any] | None:
    """The device's row, with its administration serialised for this transaction (the
    API role may not lock registry rows: it has no UPDATE on `devices`)."""
    await conn.execute(
        sa.text("SELECT pg_advisory_xact_lock(hashtext('factory5g.device'), hashtext(:k))"),
        {"k": f"{project}/{device}"},
    )
    row = (
        await conn.execute(
            sa.select(devices).where(devices.c.project_id == project, devices.c.device_id == device)
        )
    ).first()
    return None if row is None else dict(row._mapping)


def _manages(key: ApiKey, project: str) -> None:
    if not key.sees(project):
        raise not_found(f"project {project!r}")


def _registry(row: dict[str, Any]) -> dict[str, Any]:
    """The registry columns an audit row keeps."""
    return {k: row[k] for k in ("kind", "profiles", "metadata", "status")}


async def _set(
    conn: AsyncConnection,
    project: str,
    device: str,
    kind: str | None,
    profiles: list[str] | None,
    meta: dict[str, Any] | None,
    status: str,
) -> dict[str, Any]:
    row = (
        await conn.execute(
            _SET,
            {
                "p": project,
                "d": device,
                "k": kind,
                "profiles": profiles,
                "meta": None if meta is None else orjson.dumps(meta).decode(),
                "s": status,
            },
        )
    ).one()
    return dict(row._mapping)


@router.post(
    "",
    response_model=Device,
    status_code=201,
    responses=documented(409),
    summary="Register a device, new or auto-registered by ingest (admin).",
)
async def register(
    request: Request, project_id: str, body: DeviceRegister, conn: TxConn, key: Admin
) -> dict[str, Any]:
    _manages(key, project_id)
    if not is_valid_id(project_id):
        raise invalid(f"project id {project_id!r} is not a valid id")
    before = await _current(conn, project_id, body.device_id)
    if before is not None and before["status"] == "registered":
        raise ApiError(
            409, "conflict", f"device {project_id}/{body.device_id} is registered already"
        )
    meta = body.metadata.model_dump(exclude_none=True)
    after = await _set(
        conn, project_id, body.device_id, body.kind, body.profiles, meta, "registered"
    )
    await audit.record(
        conn,
        acting(request, key),
        "device.register",
        "device",
        f"{project_id}/{body.device_id}",
        project=project_id,
        before=None if before is None else _registry(before),
        after=_registry(after),
    )
    await conn.commit()
    return after


@router.patch("/{device_id}", response_model=Device, summary="Update a registered device (admin).")
async def update(
    request: Request,
    project_id: str,
    device_id: str,
    body: DeviceUpdate,
    conn: TxConn,
    key: Admin,
) -> dict[str, Any]:
    _manages(key, project_id)
    before = await _current(conn, project_id, device_id)
    if before is None:
        raise not_found(f"device {project_id}/{device_id}")
    if before["status"] != "registered":
        raise ApiError(
            409, "conflict", f"device {project_id}/{device_id} is {before['status']}: register it"
        )
    meta = None if body.metadata is None else body.metadata.model_dump(exclude_none=True)
    after = await _set(conn, project_id, device_id, body.kind, body.profiles, meta, "registered")
    await audit.record(
        conn,
        acting(request, key),
        "device.update",
        "device",
        f"{project_id}/{device_id}",
        project=project_id,
        before=_registry(before),
        after=_registry(after),
    )
    await conn.commit()
    return after


@router.post(
    "/{device_id}/retire",
    response_model=Device,
    responses=documented(409),
    summary="Retire: history kept, its broker credentials revoked (admin).",
)
async def retire(
    request: Request, project_id: str, device_id: str, conn: TxConn, key: Admin
) -> dict[str, Any]:
    _manages(key, project_id)
    before = await _current(conn, project_id, device_id)
    if before is None:
        raise not_found(f"device {project_id}/{device_id}")
    if before["status"] == "retired":
        raise ApiError(409, "conflict", f"device {project_id}/{device_id} is retired already")
    after = await _set(conn, project_id, device_id, None, None, None, "retired")
    revoked = await revoke_credentials(request, conn, key, project_id, device_id)
    await audit.record(
        conn,
        acting(request, key),
        "device.retire",
        "device",
        f"{project_id}/{device_id}",
        project=project_id,
        before=_registry(before),
        after={**_registry(after), "credentials_revoked": revoked},
    )
    await conn.commit()
    return after


@router.delete(
    "/{device_id}",
    response_model=DeviceDeleted,
    responses=documented(422),
    summary="Delete a device with all its data; `confirm` must repeat the device id (admin).",
)
async def delete(
    request: Request,
    project_id: str,
    device_id: str,
    conn: TxConn,
    key: Admin,
    confirm: Annotated[
        str | None, Query(max_length=64, description="The device id again: deletes its data.")
    ] = None,
) -> dict[str, Any]:
    _manages(key, project_id)
    if confirm != device_id:
        raise invalid(
            "confirm must repeat the device id: deleting a device deletes all its data "
            "(retire it to keep its history)"
        )
    before = await _current(conn, project_id, device_id)
    if before is None:
        raise not_found(f"device {project_id}/{device_id}")
    revoked = await revoke_credentials(request, conn, key, project_id, device_id)
    deleted = (
        await conn.execute(sa.text("SELECT admin_purge(:p, :d)"), {"p": project_id, "d": device_id})
    ).scalar_one()
    await audit.record(
        conn,
        acting(request, key),
        "device.delete",
        "device",
        f"{project_id}/{device_id}",
        project=project_id,
        before=_registry(before),
        after={"rows_deleted": int(deleted), "credentials_revoked": revoked},
    )
    await conn.commit()
    return {
        "project_id": project_id,
        "device_id": device_id,
        "rows_deleted": int(deleted),
        "credentials_revoked": revoked,
    }
