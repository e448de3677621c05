"""Commands to devices: queue one (operate scope), read one or a device's history, and
manage the per-project allow-list of command names per device kind (admin scope)."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from services.api.auth.guard import Admin, Operator, Reader
from services.api.commands.models import (
    AllowedCommand,
    AllowList,
    Command,
    CommandDetail,
    CommandPage,
    CommandRequest,
)
from services.api.commands.service import command_detail, queue_command
from services.api.deps import Conn, TxConn
from services.api.errors import documented, not_found
from services.api.scope import visible_project
from services.core.contracts import ID_PATTERN
from services.core.tables import command_allow, commands
from services.protocols.commands import announce_topic, announcement

log = logging.getLogger("factory5g.api.commands")

router = APIRouter(prefix="/api/v1/projects/{project}", tags=["commands"])
_COMMAND_FIELDS = tuple(Command.model_fields)

ProjectId = Annotated[str, Path(pattern=ID_PATTERN)]
DeviceId = Annotated[str, Path(pattern=ID_PATTERN)]
Name = Annotated[str, Path(pattern=ID_PATTERN)]


@router.post(
    "/devices/{device}/commands",
    response_model=Command,
    status_code=202,
    responses=documented(409),
    summary="Queue a command to a device (operate scope); its outcome follows in its state.",
)
async def send_command(
    request: Request,
    project: ProjectId,
    device: DeviceId,
    body: CommandRequest,
    key: Operator,
) -> Any:
    cfg = request.app.state.settings.commands
    row = await queue_command(request.app.state.fast_pool, cfg, key, project, device, body)
    root = request.app.state.settings.mqtt.topic_root
    topic = announce_topic(root, project, row["kind"], device, str(row["id"]))
    request.app.state.alarm_hub.announce(
        topic, announcement(row, "queued", row["created_at"], key.name)
    )
    # The row is written as the response model would write it (`Command`'s fields, UTC
    # times with "Z"; tests/test_commands.py compares the two), without validating it
    # again: the database produced it.
    try:
        content = orjson.dumps({k: row[k] for k in _COMMAND_FIELDS}, option=orjson.OPT_UTC_Z)
    except orjson.JSONEncodeError:  # something orjson cannot write: the model's way
        return row
    return Response(content, status_code=202, media_type="application/json")


@router.get(
    "/commands/{command_id}",
    response_model=CommandDetail,
    summary="One command with its history (every transition, with its actor).",
)
async def get_command(
    project: ProjectId, command_id: uuid.UUID, conn: Conn, key: Reader
) -> dict[str, Any]:
    await visible_project(conn, key, project)
    out = await command_detail(conn, project, command_id)
    if out is None:
        raise not_found(f"command {command_id}")
    return out


@router.get(
    "/devices/{device}/commands",
    response_model=CommandPage,
    summary="A device's commands, newest first.",
)
async def device_commands(
    project: ProjectId,
    device: DeviceId,
    conn: Conn,
    key: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    await visible_project(conn, key, project)
    rows = await conn.execute(
        sa.select(commands)
        .where(commands.c.project_id == project, commands.c.device_id == device)
        .order_by(commands.c.created_at.desc(), commands.c.id)
        .limit(limit)
    )
    return {"items": [dict(r._mapping) for r in rows]}


@router.get(
    "/command-allowlist",
    response_model=AllowList,
    summary="Command names that may be sent, per device kind (nothing by default).",
)
async def get_allowlist(project: ProjectId, conn: Conn, key: Reader) -> dict[str, Any]:
    await visible_project(conn, key, project)
    rows = await conn.execute(
        sa.select(
            command_allow.c.kind,
            command_allow.c.name,
            command_allow.c.created_at,
            command_allow.c.created_by,
        )
        .where(command_allow.c.project_id == project)
        .order_by(command_allow.c.kind, command_allow.c.name)
    )
    return {"items": [dict(r._mapping) for r in rows]}


@router.put(
    "/command-allowlist/{kind}/{name}",
    response_model=AllowedCommand,
    summary="Allow a command name for a device kind of the project (admin scope).",
)
async def allow_command(
    project: ProjectId, kind: Name, name: Name, conn: TxConn, key: Admin
) -> dict[str, Any]:
    await visible_project(conn, key, project)
    stmt = sa.text(
        "INSERT INTO command_allow (project_id, kind, name, created_by) "
        "VALUES (:p, :k, :n, :by) ON CONFLICT (project_id, kind, name) "
        "DO UPDATE SET kind = excluded.kind RETURNING kind, name, created_at, created_by"
    )
    row = (await conn.execute(stmt, {"p": project, "k": kind, "n": name, "by": key.name})).one()
    await conn.commit()
    return dict(row._mapping)


@router.delete(
    "/command-allowlist/{kind}/{name}",
    status_code=204,
    summary="Take a command name off the allow-list (admin scope).",
)
async def disallow_command(
    project: ProjectId, kind: Name, name: Name, conn: TxConn, key: Admin
) -> Response:
    await visible_project(conn, key, project)
    result = await conn.execute(
        sa.delete(command_allow).where(
            command_allow.c.project_id == project,
            command_allow.c.kind == kind,
            command_allow.c.name == name,
        )
    )
    await conn.commit()
    if result.rowcount == 0:
        raise not_found(f"allowed command {kind}/{name}")
    return Response(status_code=204)
