"""Notification configuration in the database: scoping, secret masking, test notices.

Scoping follows the rest of the API: an item of a project is visible to keys that see the
project; an item for every project (project_id NULL) is visible to every key but changed
only by a key for all projects. A route or policy may only point at channels and routes of
its own project or of every project.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.auth.keys import ApiKey
from services.api.errors import ApiError, invalid, not_found
from services.protocols.notify.channels import CHANNELS

SET = "set"
TABLES = {"channel": "notify_channels", "route": "notify_routes", "policy": "notify_policies"}


def mask(channel_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """A channel's settings as the API shows them: the type's secret fields (as its channel
    module declares them) as "set", URLs without their query (a receiver's URL may carry a
    token there). A type this build does not know shows every value as "set": what is a
    secret in it cannot be told."""
    entry = CHANNELS.get(channel_type)
    out: dict[str, Any] = {}
    for name, value in config.items():
        if value in (None, ""):
            out[name] = value
        elif entry is None or name in entry.secrets:
            out[name] = SET
        elif isinstance(value, str) and "://" in value and "?" in value:
            out[name] = value.split("?", 1)[0] + "?" + SET
        else:
            out[name] = value
    return out


def loads(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def visible_clause(key: ApiKey) -> tuple[str, dict[str, Any]]:
    if key.projects is None:
        return "TRUE", {}
    return "(project_id IS NULL OR project_id = ANY(:visible))", {"visible": sorted(key.projects)}


def check_manage(key: ApiKey, project_id: str | None) -> None:
    """403 unless the key may change items of `project_id`."""
    if project_id is None and key.projects is not None:
        raise ApiError(403, "forbidden", "only a key for every project manages shared items")
    if project_id is not None and not key.sees(project_id):
        raise ApiError(403, "forbidden", f"this key may not manage project {project_id!r}")


async def fetch_one(conn: AsyncConnection, what: str, item_id: int, key: ApiKey) -> dict[str, Any]:
    if not 0 < item_id <= 2**63 - 1:
        raise not_found(f"{what} {item_id}")
    clause, params = visible_clause(key)
    row = (
        await conn.execute(
            sa.text(f"SELECT * FROM {TABLES[what]} WHERE id = :id AND {clause}"),
            {"id": item_id, **params},
        )
    ).first()
    if row is None:
        raise not_found(f"{what} {item_id}")
    return dict(row._mapping)


async def fetch_all(
    conn: AsyncConnection, what: str, key: ApiKey, project: str | None
) -> list[dict[str, Any]]:
    clause, params = visible_clause(key)
    extra = ""
    if project is not None:
        if not key.sees(project):
            raise not_found(f"project {project!r}")
        extra = " AND (project_id IS NULL OR project_id = :project)"
        params["project"] = project
    order = "position, id" if what == "route" else "id"
    rows = await conn.execute(
        sa.text(f"SELECT * FROM {TABLES[what]} WHERE {clause}{extra} ORDER BY {order} LIMIT 1000"),
        params,
    )
    return [dict(r._mapping) for r in rows]


async def check_reference(
    conn: AsyncConnection, what: str, ref_id: int, project_id: str | None, key: ApiKey
) -> None:
    """A route's channel, or a policy step's route, must be visible and of the same project
    or of every project."""
    try:
        ref = await fetch_one(conn, what, ref_id, key)
    except ApiError:
        raise invalid(f"{what} {ref_id} does not exist") from None
    if ref["project_id"] not in (None, project_id):
        raise invalid(f"{what} {ref_id} belongs to another project")


def channel_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "config": mask(row["type"], loads(row["config"]) or {})}


def policy_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "steps": loads(row["steps"]) or []}


async def insert(conn: AsyncConnection, what: str, values: dict[str, Any]) -> dict[str, Any]:
    cols = list(values)
    marks = ", ".join(f":{c}" for c in cols)
    row = (
        await conn.execute(
            sa.text(f"INSERT INTO {TABLES[what]} ({', '.join(cols)}) VALUES ({marks}) RETURNING *"),
            values,
        )
    ).one()
    return dict(row._mapping)


async def update(
    conn: AsyncConnection, what: str, item_id: int, values: dict[str, Any]
) -> dict[str, Any]:
    sets = ", ".join(f"{c} = :{c}" for c in values)
    row = (
        await conn.execute(
            sa.text(
                f"UPDATE {TABLES[what]} SET {sets}, updated_at = now() WHERE id = :id RETURNING *"
            ),
            {**values, "id": item_id},
        )
    ).one()
    return dict(row._mapping)


_TEST_PAYLOAD = {
    "device": "test-device",
    "device_kind": "agv",
    "rule": "test",
    "severity": "info",
    "state": "open",
    "message": "Test notification / 测试通知",
}


async def enqueue_test(
    conn: AsyncConnection, route: dict[str, Any], actor: str, give_up_after_s: float = 3600
) -> dict[str, Any]:
    """One test outbox item for `route` and its delivery; the notifier sends it."""
    channel = (
        await conn.execute(
            sa.text("SELECT type FROM notify_channels WHERE id = :id"), {"id": route["channel_id"]}
        )
    ).one()
    project = route["project_id"] or "test"
    now = datetime.now(UTC)
    payload = orjson.dumps({**_TEST_PAYLOAD, "actor": actor}).decode()
    outbox_id = (
        await conn.execute(
            sa.text(
                "INSERT INTO notify_outbox (kind, project_id, event_ts, route_id, payload, "
                "routed_at) VALUES ('test', :project, :now, :route, CAST(:payload AS jsonb), "
                ":now) RETURNING id"
            ),
            {"project": project, "now": now, "route": route["id"], "payload": payload},
        )
    ).scalar_one()
    key = f"test:{outbox_id}:{route['id']}"
    row = (
        await conn.execute(
            sa.text(
                "INSERT INTO notify_deliveries (outbox_id, route_id, channel_id, channel_type, "
                "project_id, kind, language, recipients, idempotency_key, event_ts, "
                "next_attempt_at, give_up_at) VALUES (:outbox, :route, :channel, :type, "
                ":project, 'test', :language, :recipients, :key, :now, :now, :give_up) "
                "RETURNING id, idempotency_key, state"
            ),
            {
                "outbox": outbox_id,
                "route": route["id"],
                "channel": route["channel_id"],
                "type": channel.type,
                "project": project,
                "language": route["language"],
                "recipients": list(route["recipients"]),
                "key": key,
                "now": now,
                "give_up": now + timedelta(seconds=give_up_after_s),
            },
        )
    ).one()
    await conn.execute(sa.text("SELECT pg_notify('factory5g_notify', '')"))
    return {"delivery_id": row.id, "idempotency_key": row.idempotency_key, "state": row.state}
