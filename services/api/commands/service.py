"""Queue a command: every check the request must pass, then one row, one event, a NOTIFY.

The API never talks to the device itself. It checks the request against the project's
allow-list (nothing is sendable by default), the device's state (offline: 409 unless the
request asks to wait until its deadline) and the device's rate limit (429), then inserts
the command `queued` with its event, and notifies the commander in the same transaction:
PostgreSQL delivers the NOTIFY at commit, so the commander never sees a command that is not
stored, and a commander that was away finds it by its poll.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.commands.models import CommandRequest
from services.api.errors import ApiError, invalid, not_found
from services.core.settings import CommandsSettings
from services.core.tables import (
    command_allow,
    command_events,
    command_targets,
    commands,
    devices,
)
from services.protocols.commands import SPB_WRITE, spb_check, vda_check

CHANNEL: Final = "f5g_commands"

_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
_RATE = sa.text(
    "SELECT count(*), min(created_at) FROM commands "
    "WHERE project_id = :p AND device_id = :d AND created_at > now() - make_interval(secs => :w)"
)
_NOTIFY = sa.text("SELECT pg_notify(:channel, :id)")


async def queue_command(
    conn: AsyncConnection,
    cfg: CommandsSettings,
    actor: str,
    project: str,
    device: str,
    req: CommandRequest,
) -> dict[str, Any]:
    """Insert the command `queued` (the caller commits); ApiError for each refusal."""
    dev = (
        await conn.execute(
            sa.select(devices.c.kind, devices.c.online).where(
                devices.c.project_id == project, devices.c.device_id == device
            )
        )
    ).first()
    if dev is None:
        raise not_found(f"device {device!r}")
    allowed = (
        await conn.execute(
            sa.select(sa.literal(1)).where(
                command_allow.c.project_id == project,
                command_allow.c.kind == dev.kind,
                command_allow.c.name == req.name,
            )
        )
    ).first()
    if allowed is None:
        raise ApiError(
            403,
            "not_allowed",
            f"command {req.name!r} is not on the allow-list of project {project!r} for "
            f"devices of kind {dev.kind!r}; an admin adds it with PUT /api/v1/projects/"
            f"{project}/command-allowlist/{dev.kind}/{req.name}",
        )
    target = (
        await conn.execute(
            sa.select(command_targets.c.protocol, command_targets.c.address).where(
                command_targets.c.project_id == project, command_targets.c.device_id == device
            )
        )
    ).first()
    protocol = target.protocol if target is not None else "native"
    if target is not None and target.protocol == "vda5050":
        problem = vda_check(req.name, req.params)
        if problem is not None:
            raise invalid(f"device {device!r} speaks VDA 5050: {problem}")
    if target is not None and target.protocol == "sparkplug":
        if req.name != SPB_WRITE:
            raise invalid(
                f"device {device!r} speaks Sparkplug B: the only command is {SPB_WRITE!r} "
                '(params {"metrics": {"<name>": <value>}})'
            )
        births = {k: (v[0], v[1]) for k, v in target.address.get("metrics", {}).items()}
        problem = spb_check(births, req.params)
        if problem is not None:
            raise invalid(f"device {device!r} (Sparkplug B): {problem}")
    timeout = req.timeout_s if req.timeout_s is not None else cfg.default_timeout_s
    if timeout > cfg.max_timeout_s:
        raise invalid(f"timeout_s: at most {cfg.max_timeout_s:g} seconds")
    if not dev.online and not req.queue_until_deadline:
        raise ApiError(
            409,
            "device_offline",
            f"device {device!r} is offline; send again with queue_until_deadline: true to "
            "keep the command queued until its deadline",
        )
    # One device's commands are counted under a lock of that device, so two concurrent
    # requests cannot both pass the limit; other devices are not held up.
    await conn.execute(_LOCK, {"k": f"cmd/{project}/{device}"})
    count, oldest = (
        await conn.execute(_RATE, {"p": project, "d": device, "w": cfg.rate_window_s})
    ).one()
    if count >= cfg.rate_per_device:
        now = datetime.now(UTC)
        wait = cfg.rate_window_s
        if oldest is not None:
            wait = (oldest + timedelta(seconds=cfg.rate_window_s) - now).total_seconds()
        retry = max(1, math.ceil(wait))
        raise ApiError(
            429,
            "rate_limited",
            f"device {device!r} received {count} commands in the last "
            f"{cfg.rate_window_s:g} s (limit {cfg.rate_per_device}); retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
    command_id = uuid.uuid4()
    row = (
        (
            await conn.execute(
                sa.insert(commands)
                .values(
                    id=command_id,
                    project_id=project,
                    device_id=device,
                    kind=dev.kind,
                    name=req.name,
                    protocol=protocol,
                    params=req.params,
                    state="queued",
                    actor=actor,
                    deadline=sa.func.now() + timedelta(seconds=timeout),
                )
                .returning(*commands.c)
            )
        )
        .one()
        ._mapping
    )
    await conn.execute(
        sa.insert(command_events).values(
            command_id=command_id,
            project_id=project,
            device_id=device,
            state="queued",
            actor=actor,
            detail={"name": req.name, "params": req.params},
        )
    )
    await conn.execute(_NOTIFY, {"channel": CHANNEL, "id": str(command_id)})
    return dict(row)


async def command_detail(
    conn: AsyncConnection, project: str, command_id: uuid.UUID
) -> dict[str, Any] | None:
    row = (
        await conn.execute(
            sa.select(commands).where(commands.c.id == command_id, commands.c.project_id == project)
        )
    ).first()
    if row is None:
        return None
    events = await conn.execute(
        sa.select(
            command_events.c.ts,
            command_events.c.state,
            command_events.c.actor,
            command_events.c.detail,
        )
        .where(command_events.c.command_id == command_id)
        .order_by(command_events.c.id)
        .limit(100)
    )
    return {**row._mapping, "history": [dict(e._mapping) for e in events]}
