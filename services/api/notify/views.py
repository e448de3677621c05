"""Notifications: channels, routes and escalation policies (admin scope to change), a test
notice through a route (operate scope), and an alarm's delivery history (read scope)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from sqlalchemy.exc import IntegrityError

from services.api.auth.guard import Admin, Operator, Reader
from services.api.deps import Conn, TxConn
from services.api.errors import ApiError, documented, not_found
from services.api.notify import service
from services.api.notify.models import (
    Channel,
    ChannelCreate,
    ChannelPage,
    ChannelUpdate,
    DeliveryPage,
    Policy,
    PolicyCreate,
    PolicyPage,
    PolicyUpdate,
    Route,
    RouteCreate,
    RoutePage,
    RouteUpdate,
    TestSent,
    check_config,
)
from services.core.contracts import ID_PATTERN
from services.protocols.notify.targets import Targets

router = APIRouter(prefix="/api/v1/notify", tags=["notifications"])
alarm_router = APIRouter(prefix="/api/v1/alarms", tags=["notifications"])

ProjectQuery = Annotated[
    str | None,
    Query(pattern=ID_PATTERN, description="Only items of this project and shared ones."),
]
_CHANGE = documented(409)


# The config fields of the HTTP channels that hold a URL the notifier will connect to.
_URL_FIELDS = ("url", "base_url")


def _check_targets(request: Request, config: dict[str, Any]) -> None:
    """422 naming the field when a channel URL is an address the notifier may not reach
    (`services/protocols/notify/targets.py`); the notifier checks again after resolving."""
    targets = Targets(request.app.state.settings.notify.allow_private_targets)
    for name in _URL_FIELDS:
        value = config.get(name)
        if isinstance(value, str):
            try:
                targets.check_url(value, f"config.{name}")
            except ValueError as exc:
                raise ApiError(422, "invalid", str(exc)) from None


async def _write(conn: TxConn, op: Any, name: str) -> dict[str, Any]:
    try:
        row: dict[str, Any] = await op
    except IntegrityError:
        await conn.rollback()
        raise ApiError(409, "conflict", f"an item named {name!r} exists already") from None
    await conn.commit()
    return row


# ----------------------------------------------------------------------------- channels


@router.get("/channels", response_model=ChannelPage, summary="Channels; secrets show as set.")
async def list_channels(conn: Conn, key: Admin, project: ProjectQuery = None) -> dict[str, Any]:
    rows = await service.fetch_all(conn, "channel", key, project)
    return {"items": [service.channel_out(r) for r in rows]}


@router.get("/channels/{channel_id}", response_model=Channel)
async def get_channel(channel_id: int, conn: Conn, key: Admin) -> dict[str, Any]:
    return service.channel_out(await service.fetch_one(conn, "channel", channel_id, key))


@router.post(
    "/channels",
    response_model=Channel,
    status_code=201,
    responses=_CHANGE,
    summary="Create a channel (admin).",
)
async def create_channel(
    body: ChannelCreate, conn: TxConn, key: Admin, request: Request
) -> dict[str, Any]:
    service.check_manage(key, body.project_id)
    _check_targets(request, body.config)
    values = body.model_dump()
    values["config"] = orjson.dumps(values["config"]).decode()
    row = await _write(conn, _insert_json(conn, "channel", values, "config"), body.name)
    return service.channel_out(row)


async def _insert_json(conn: TxConn, what: str, values: dict[str, Any], col: str) -> Any:
    cols = list(values)
    marks = ", ".join(f"CAST(:{c} AS jsonb)" if c == col else f":{c}" for c in cols)
    row = (
        await conn.execute(
            sa.text(
                f"INSERT INTO {service.TABLES[what]} ({', '.join(cols)}) VALUES ({marks}) "
                "RETURNING *"
            ),
            values,
        )
    ).one()
    return dict(row._mapping)


async def _update_json(
    conn: TxConn, what: str, item_id: int, values: dict[str, Any], col: str
) -> Any:
    sets = ", ".join(f"{c} = CAST(:{c} AS jsonb)" if c == col else f"{c} = :{c}" for c in values)
    row = (
        await conn.execute(
            sa.text(
                f"UPDATE {service.TABLES[what]} SET {sets}, updated_at = now() "
                "WHERE id = :id RETURNING *"
            ),
            {**values, "id": item_id},
        )
    ).one()
    return dict(row._mapping)


@router.patch(
    "/channels/{channel_id}", response_model=Channel, responses=_CHANGE, summary="Update (admin)."
)
async def update_channel(
    channel_id: int, body: ChannelUpdate, conn: TxConn, key: Admin, request: Request
) -> dict[str, Any]:
    row = await service.fetch_one(conn, "channel", channel_id, key)
    service.check_manage(key, row["project_id"])
    changes = body.model_dump(exclude_unset=True)
    if any(changes.get(k, "") is None for k in ("name", "enabled")):
        raise ApiError(422, "invalid", "name and enabled cannot be null")
    if "config" in changes:
        config = dict(service.loads(row["config"]) or {})
        for name, value in (changes["config"] or {}).items():
            if value is None:
                config.pop(name, None)
            else:
                config[name] = value
        try:
            check_config(row["type"], config)
        except ValueError as exc:
            raise ApiError(422, "invalid", str(exc)) from None
        _check_targets(request, config)
        changes["config"] = orjson.dumps(config).decode()
    if not changes:
        return service.channel_out(row)
    out = await _write(
        conn, _update_json(conn, "channel", channel_id, changes, "config"), body.name or ""
    )
    return service.channel_out(out)


@router.delete(
    "/channels/{channel_id}",
    status_code=204,
    summary="Delete a channel and its routes (admin); delivery history stays.",
)
async def delete_channel(channel_id: int, conn: TxConn, key: Admin) -> None:
    row = await service.fetch_one(conn, "channel", channel_id, key)
    service.check_manage(key, row["project_id"])
    await conn.execute(sa.text("DELETE FROM notify_channels WHERE id = :id"), {"id": channel_id})
    await conn.commit()


# ----------------------------------------------------------------------------- routes


def _route_values(body: RouteCreate | RouteUpdate, partial: bool) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=partial)
    for name in ("recipients", "language", "quiet_tz", "escalation_only", "position", "enabled"):
        if name in values and values[name] is None:
            if partial:
                raise ApiError(422, "invalid", f"{name} cannot be null")
            values.pop(name)
    if partial and values.get("name", "") is None:
        raise ApiError(422, "invalid", "name cannot be null")
    return values


@router.get("/routes", response_model=RoutePage, summary="Routes, in matching order.")
async def list_routes(conn: Conn, key: Admin, project: ProjectQuery = None) -> dict[str, Any]:
    return {"items": await service.fetch_all(conn, "route", key, project)}


@router.get("/routes/{route_id}", response_model=Route)
async def get_route(route_id: int, conn: Conn, key: Admin) -> dict[str, Any]:
    return await service.fetch_one(conn, "route", route_id, key)


@router.post(
    "/routes", response_model=Route, status_code=201, responses=_CHANGE, summary="Create (admin)."
)
async def create_route(body: RouteCreate, conn: TxConn, key: Admin) -> dict[str, Any]:
    service.check_manage(key, body.project_id)
    await service.check_reference(conn, "channel", body.channel_id, body.project_id, key)
    return await _write(conn, service.insert(conn, "route", _route_values(body, False)), body.name)


@router.patch(
    "/routes/{route_id}", response_model=Route, responses=_CHANGE, summary="Update (admin)."
)
async def update_route(
    route_id: int, body: RouteUpdate, conn: TxConn, key: Admin
) -> dict[str, Any]:
    row = await service.fetch_one(conn, "route", route_id, key)
    service.check_manage(key, row["project_id"])
    values = _route_values(body, True)
    if values.get("channel_id") is not None:
        await service.check_reference(conn, "channel", values["channel_id"], row["project_id"], key)
    elif "channel_id" in values:
        raise ApiError(422, "invalid", "channel_id cannot be null")
    if not values:
        return row
    return await _write(conn, service.update(conn, "route", route_id, values), body.name or "")


@router.delete("/routes/{route_id}", status_code=204, summary="Delete a route (admin).")
async def delete_route(route_id: int, conn: TxConn, key: Admin) -> None:
    row = await service.fetch_one(conn, "route", route_id, key)
    service.check_manage(key, row["project_id"])
    await conn.execute(sa.text("DELETE FROM notify_routes WHERE id = :id"), {"id": route_id})
    await conn.commit()


@router.post(
    "/routes/{route_id}/test",
    response_model=TestSent,
    status_code=202,
    summary="Send a test notice through a route (operate scope); poll the delivery.",
)
async def send_test(route_id: int, conn: TxConn, key: Operator) -> dict[str, Any]:
    route = await service.fetch_one(conn, "route", route_id, key)
    if route["project_id"] is None and key.projects is not None:
        raise ApiError(403, "forbidden", "only a key for every project tests shared routes")
    out = await service.enqueue_test(conn, route, key.name)
    await conn.commit()
    return out


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryPage,
    summary="One delivery (a test's, for instance) with its state and the receiver's answer.",
)
async def get_delivery(delivery_id: int, conn: Conn, key: Reader) -> dict[str, Any]:
    if not 0 < delivery_id <= 2**63 - 1:
        raise not_found(f"delivery {delivery_id}")
    clause, params = service.visible_clause(key)
    rows = await conn.execute(
        sa.text(f"SELECT * FROM notify_deliveries WHERE id = :id AND {clause}"),
        {"id": delivery_id, **params},
    )
    items = [dict(r._mapping) for r in rows]
    if not items:
        raise not_found(f"delivery {delivery_id}")
    return {"items": items}


# ----------------------------------------------------------------------------- policies


def _policy_values(body: PolicyCreate | PolicyUpdate, partial: bool) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=partial)
    for name in ("steps", "reminder_max", "enabled", "name"):
        if name in values and values[name] is None:
            if partial:
                raise ApiError(422, "invalid", f"{name} cannot be null")
            values.pop(name)
    if "steps" in values:
        values["steps"] = orjson.dumps(values["steps"]).decode()
    return values


async def _check_steps(
    conn: TxConn, body: PolicyCreate | PolicyUpdate, project_id: str | None, key: Admin
) -> None:
    for step in body.steps or []:
        await service.check_reference(conn, "route", step.route_id, project_id, key)


@router.get("/policies", response_model=PolicyPage, summary="Escalation policies.")
async def list_policies(conn: Conn, key: Admin, project: ProjectQuery = None) -> dict[str, Any]:
    rows = await service.fetch_all(conn, "policy", key, project)
    return {"items": [service.policy_out(r) for r in rows]}


@router.get("/policies/{policy_id}", response_model=Policy)
async def get_policy(policy_id: int, conn: Conn, key: Admin) -> dict[str, Any]:
    return service.policy_out(await service.fetch_one(conn, "policy", policy_id, key))


@router.post(
    "/policies",
    response_model=Policy,
    status_code=201,
    responses=_CHANGE,
    summary="Create (admin).",
)
async def create_policy(body: PolicyCreate, conn: TxConn, key: Admin) -> dict[str, Any]:
    service.check_manage(key, body.project_id)
    await _check_steps(conn, body, body.project_id, key)
    values = _policy_values(body, False)
    row = await _write(conn, _insert_json(conn, "policy", values, "steps"), body.name)
    return service.policy_out(row)


@router.patch(
    "/policies/{policy_id}", response_model=Policy, responses=_CHANGE, summary="Update (admin)."
)
async def update_policy(
    policy_id: int, body: PolicyUpdate, conn: TxConn, key: Admin
) -> dict[str, Any]:
    row = await service.fetch_one(conn, "policy", policy_id, key)
    service.check_manage(key, row["project_id"])
    await _check_steps(conn, body, row["project_id"], key)
    values = _policy_values(body, True)
    if not values:
        return service.policy_out(row)
    out = await _write(
        conn, _update_json(conn, "policy", policy_id, values, "steps"), body.name or ""
    )
    return service.policy_out(out)


@router.delete("/policies/{policy_id}", status_code=204, summary="Delete a policy (admin).")
async def delete_policy(policy_id: int, conn: TxConn, key: Admin) -> None:
    row = await service.fetch_one(conn, "policy", policy_id, key)
    service.check_manage(key, row["project_id"])
    await conn.execute(sa.text("DELETE FROM notify_policies WHERE id = :id"), {"id": policy_id})
    await conn.commit()


# ----------------------------------------------------------------------------- history


@alarm_router.get(
    "/{alarm_id}/deliveries",
    response_model=DeliveryPage,
    summary="The notifications of one alarm: each delivery's state and the receiver's answer.",
)
async def alarm_deliveries(alarm_id: int, conn: Conn, key: Reader) -> dict[str, Any]:
    if not 0 < alarm_id <= 2**63 - 1:
        raise not_found(f"alarm {alarm_id}")
    owner = (
        await conn.execute(
            sa.text("SELECT project_id FROM alarms WHERE id = :id"), {"id": alarm_id}
        )
    ).first()
    if owner is None or not key.sees(owner.project_id):
        raise not_found(f"alarm {alarm_id}")
    rows = await conn.execute(
        sa.text("SELECT * FROM notify_deliveries WHERE alarm_id = :id ORDER BY id LIMIT 1000"),
        {"id": alarm_id},
    )
    return {"items": [dict(r._mapping) for r in rows]}
