"""Queue a command: every check the request must pass, then one row and its event.

The API never talks to the device itself. It checks the request against the project's
allow-list (nothing is sendable by default), the device's state (offline: 409 unless the
request asks to wait until its deadline) and the device's rate limit (429), then inserts
the command `queued` with its event. The commander learns of it from the `queued`
announcement the route publishes after the commit, or from its poll.

Why no NOTIFY: PostgreSQL serialises the commits of every transaction that notified (a
global lock on the notification queue, held through the commit's WAL flush), so commands
could be queued only one flush at a time: 30 a second on the benchmark machine, against
500 wanted (loadtests/commands_bench.py, request -> queued p50 106 s with NOTIFY).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.auth.keys import ApiKey
from services.api.commands.models import CommandRequest
from services.api.errors import ApiError, invalid, not_found
from services.api.fastpool import FastPool
from services.core.settings import CommandsSettings
from services.core.tables import command_events, commands
from services.protocols.commands import SPB_WRITE, spb_check, vda_check

# One read for every check: the device, how to reach it, whether the name is allowed;
# and, in the same round trip, the device's lock ($4), which the transaction holds until
# the insert commits, so two concurrent requests cannot both pass the rate limit. (The
# lock was a statement of its own: one round trip in five of this route.) The lock is
# taken whenever the device exists, and the insert's count runs in a later statement, with
# a snapshot taken after the lock was granted: what matters is the order of statements.
_CHECK = """
WITH lock AS (SELECT pg_advisory_xact_lock(hashtextextended($4, 0)))
SELECT d.kind, d.online, t.protocol, t.address,
       EXISTS (SELECT 1 FROM command_allow a
               WHERE a.project_id = d.project_id AND a.kind = d.kind AND a.name = $3) AS allowed
FROM lock CROSS JOIN devices d
LEFT JOIN command_targets t ON t.project_id = d.project_id AND t.device_id = d.device_id
WHERE d.project_id = $1 AND d.device_id = $2
"""
# The rate count and the insert, in one statement after the device's lock: both inserts
# happen only when the device is under its limit.
_QUEUE = """
WITH recent AS (
    SELECT count(*) AS n, min(created_at) AS oldest FROM commands
    WHERE project_id = $2 AND device_id = $3
      AND created_at > now() - make_interval(secs => $10)
), ins AS (
    INSERT INTO commands (id, project_id, device_id, kind, name, protocol, params, state,
                          actor, deadline)
    SELECT $1, $2, $3, $4, $5, $6, $7::jsonb, 'queued', $8,
           now() + make_interval(secs => $9)
    FROM recent WHERE recent.n < $11
    RETURNING *
), ev AS (
    INSERT INTO command_events (command_id, project_id, device_id, ts, state, actor, detail)
    SELECT id, project_id, device_id, created_at, 'queued', actor,
           jsonb_build_object('name', name, 'params', params)
    FROM ins
)
SELECT (SELECT n FROM recent) AS n, (SELECT oldest FROM recent) AS oldest, ins.*
FROM (SELECT 1) one LEFT JOIN ins ON true
"""
# Device kinds the Sparkplug B adapter registers (services/protocols/adapters/sparkplug.py).
SPARKPLUG_KINDS: Final = frozenset({"spb-node", "spb-device"})
_PROJECT = (
    "SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1) "
    "OR EXISTS (SELECT 1 FROM devices WHERE project_id = $1)"
)


# Everything for a native command in one round trip (migration 0016_commands_fast): the
# function reads the device, locks it, counts and inserts only when every check passes;
# otherwise it returns what it read, id null, and `queue_command` gives the refusal.
_QUEUE_NATIVE = """
SELECT * FROM command_queue_native($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12)
"""
_READ_ONLY = ("allowed", "online", "n", "oldest")
_BIRTH_KINDS: Final = sorted(SPARKPLUG_KINDS)


async def queue_command(
    pool: FastPool,
    cfg: CommandsSettings,
    key: ApiKey,
    project: str,
    device: str,
    req: CommandRequest,
) -> dict[str, Any]:
    """Check and insert the command `queued` with its event, commit; ApiError for each
    refusal, in this order: unknown project or device (404), a Sparkplug B device whose
    birth is unknown (409), parameters its protocol refuses (422), a name not on the
    allow-list (403), a timeout above the maximum (422), an offline device (409), the
    device's rate limit (429).

    A native device's command is one statement, `command_queue_native` (one round trip
    where a transaction took four: this is the route the commands benchmark drives at 500
    requests/s). A device with a Sparkplug B or VDA 5050 address gets its parameters checked
    in Python against that address first, in a transaction of its own (`_queue_checked`)."""
    if not key.sees(project):
        raise not_found(f"project {project!r}")
    timeout = req.timeout_s if req.timeout_s is not None else cfg.default_timeout_s
    pool_ = await pool.pool()
    row = await pool_.fetchrow(
        _QUEUE_NATIVE,
        uuid.uuid4(),
        project,
        device,
        req.name,
        req.params,
        key.name,
        float(timeout),
        float(cfg.rate_window_s),
        cfg.rate_per_device,
        req.queue_until_deadline,
        timeout <= cfg.max_timeout_s,
        _BIRTH_KINDS,
    )
    if row is None:
        await _not_found(pool_, project, device)
    if row["id"] is not None:
        return {k: v for k, v in row.items() if k not in _READ_ONLY}
    if row["protocol"] != "native":
        return await _queue_checked(pool_, cfg, key, project, device, req)
    # Nothing was queued: the first check that failed, in the order of the docstring.
    _refuse_device(row["protocol"], row["kind"], None, row["allowed"], row["online"], project,
                   device, req, timeout, cfg)  # fmt: skip
    raise _rate_limited(row["n"], row["oldest"], device, cfg)


async def _not_found(pool: Any, project: str, device: str) -> NoReturn:
    if not await pool.fetchval(_PROJECT, project):
        raise not_found(f"project {project!r}")
    raise not_found(f"device {device!r}")


def _refuse_device(
    protocol: str,
    kind: str,
    address: dict[str, Any] | None,
    allowed: bool,
    online: bool,
    project: str,
    device: str,
    req: CommandRequest,
    timeout: float,
    cfg: CommandsSettings,
) -> None:
    """Raise the first refusal the device's state gives, if any."""
    if protocol == "native" and kind in SPARKPLUG_KINDS:
        raise ApiError(
            409,
            "birth_unknown",
            f"device {device!r} speaks Sparkplug B and its birth certificate is not known "
            "yet (the commander asks the node for one when it sees its data); try again",
        )
    _check_protocol(protocol, address, device, req)
    if not allowed:
        raise ApiError(
            403,
            "not_allowed",
            f"command {req.name!r} is not on the allow-list of project {project!r} for "
            f"devices of kind {kind!r}; an admin adds it with PUT /api/v1/projects/"
            f"{project}/command-allowlist/{kind}/{req.name}",
        )
    if timeout > cfg.max_timeout_s:
        raise invalid(f"timeout_s: at most {cfg.max_timeout_s:g} seconds")
    if not online and not req.queue_until_deadline:
        raise ApiError(
            409,
            "device_offline",
            f"device {device!r} is offline; send again with queue_until_deadline: true "
            "to keep the command queued until its deadline",
        )


def _rate_limited(
    count: int | None, oldest: datetime | None, device: str, cfg: CommandsSettings
) -> ApiError:
    now = datetime.now(UTC)
    wait = cfg.rate_window_s
    if oldest is not None:
        wait = (oldest + timedelta(seconds=cfg.rate_window_s) - now).total_seconds()
    retry = max(1, math.ceil(wait))
    return ApiError(
        429,
        "rate_limited",
        f"device {device!r} received {count} commands in the last "
        f"{cfg.rate_window_s:g} s (limit {cfg.rate_per_device}); retry in {retry} s",
        headers={"Retry-After": str(retry)},
    )


async def _queue_checked(
    pool: Any,
    cfg: CommandsSettings,
    key: ApiKey,
    project: str,
    device: str,
    req: CommandRequest,
) -> dict[str, Any]:
    """A device with an address (Sparkplug B, VDA 5050): one transaction of four round
    trips (begin, check with the device's lock, insert, commit)."""
    timeout = req.timeout_s if req.timeout_s is not None else cfg.default_timeout_s
    async with pool.acquire() as conn, conn.transaction():
        dev = await conn.fetchrow(_CHECK, project, device, req.name, f"cmd/{project}/{device}")
        if dev is None:
            await _not_found(conn, project, device)
        protocol = dev["protocol"] or "native"
        _refuse_device(protocol, dev["kind"], dev["address"], dev["allowed"], dev["online"],
                       project, device, req, timeout, cfg)  # fmt: skip
        # One device's commands are counted under the lock _CHECK took for that device;
        # other devices are not held up.
        row = await conn.fetchrow(
            _QUEUE,
            uuid.uuid4(),
            project,
            device,
            dev["kind"],
            req.name,
            protocol,
            req.params,
            key.name,
            float(timeout),
            float(cfg.rate_window_s),
            cfg.rate_per_device,
        )
    assert row is not None
    if row["id"] is None:
        raise _rate_limited(row["n"], row["oldest"], device, cfg)
    return {k: v for k, v in row.items() if k not in ("n", "oldest")}


def _check_protocol(
    protocol: str, address: dict[str, Any] | None, device: str, req: CommandRequest
) -> None:
    if protocol == "vda5050":
        problem = vda_check(req.name, req.params)
        if problem is not None:
            raise invalid(f"device {device!r} speaks VDA 5050: {problem}")
    if protocol == "sparkplug":
        if req.name != SPB_WRITE:
            raise invalid(
                f"device {device!r} speaks Sparkplug B: the only command is {SPB_WRITE!r} "
                '(params {"metrics": {"<name>": <value>}})'
            )
        births = {k: (v[0], v[1]) for k, v in (address or {}).get("metrics", {}).items()}
        problem = spb_check(births, req.params)
        if problem is not None:
            raise invalid(f"device {device!r} (Sparkplug B): {problem}")


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
