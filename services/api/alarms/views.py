"""Alarms: list and filter, one alarm with its history, acknowledge and clear."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Body, Query, Request

from services.api.alarms import cause
from services.api.alarms.lifecycle import (
    TransitionError,
    announceable,
    announcement,
    transition,
)
from services.api.alarms.models import Alarm, AlarmAction, AlarmDetail, AlarmPage
from services.api.audit.record import acting
from services.api.auth.guard import Operator, Reader
from services.api.deps import Conn, TxConn
from services.api.errors import ApiError, documented, invalid, not_found
from services.api.params import CursorParam, Limit, decode_cursor, encode_cursor
from services.api.scope import project_filter
from services.api.texts import Lang, Reading
from services.core.tables import alarm_events, alarms

log = logging.getLogger("factory5g.api.alarms")

router = APIRouter(prefix="/api/v1/alarms", tags=["alarms"])
_MAX_ID = 2**63 - 1


def _check_id(alarm_id: int) -> None:
    if not 0 < alarm_id <= _MAX_ID:
        raise not_found(f"alarm {alarm_id}")


@router.get("", response_model=AlarmPage, summary="Alarms, newest first.")
async def list_alarms(
    conn: Conn,
    key: Reader,
    reading: Lang,
    project: Annotated[str | None, Query(max_length=64)] = None,
    device: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[
        Literal["open", "acknowledged", "cleared", "active"] | None,
        Query(description="`active` = open or acknowledged."),
    ] = None,
    severity: Annotated[str | None, Query(max_length=32)] = None,
    since: Annotated[datetime | None, Query(description="Opened at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Opened before.")] = None,
    limit: Limit = 100,
    cursor: CursorParam = None,
) -> dict[str, Any]:
    after = decode_cursor(cursor, (str, int))
    visible = project_filter(key, project)
    q = sa.select(alarms).order_by(alarms.c.opened_at.desc(), alarms.c.id.desc()).limit(limit + 1)
    if visible is not None:
        q = q.where(alarms.c.project_id.in_(visible))
    if device is not None:
        q = q.where(alarms.c.device_id == device)
    if state == "active":
        q = q.where(alarms.c.state != "cleared")
    elif state is not None:
        q = q.where(alarms.c.state == state)
    if severity is not None:
        q = q.where(alarms.c.severity == severity)
    for bound, op in ((since, "ge"), (until, "lt")):
        if bound is not None:
            b = bound if bound.tzinfo else bound.replace(tzinfo=UTC)
            q = q.where(alarms.c.opened_at >= b if op == "ge" else alarms.c.opened_at < b)
    if after is not None:
        try:
            ts = datetime.fromisoformat(after[0])
        except ValueError:
            raise invalid("cursor is not one this API issued") from None
        q = q.where(sa.tuple_(alarms.c.opened_at, alarms.c.id) < sa.tuple_(ts, after[1]))
    rows = (await conn.execute(q)).all()
    items = [dict(r._mapping) for r in rows[:limit]]
    await cause.attach(conn, items)
    nxt = None
    if len(rows) > limit:
        nxt = encode_cursor([items[-1]["opened_at"].isoformat(), items[-1]["id"]])
    return {"items": [reading.alarm(i) for i in items], "next_cursor": nxt}


@router.get("/{alarm_id}", response_model=AlarmDetail)
async def get_alarm(alarm_id: int, conn: Conn, key: Reader, reading: Lang) -> dict[str, Any]:
    _check_id(alarm_id)
    row = (await conn.execute(sa.select(alarms).where(alarms.c.id == alarm_id))).first()
    if row is None or not key.sees(row.project_id):
        raise not_found(f"alarm {alarm_id}")
    events = await conn.execute(
        sa.select(
            alarm_events.c.ts,
            alarm_events.c.transition,
            alarm_events.c.severity,
            alarm_events.c.actor,
            alarm_events.c.evidence,
        )
        .where(alarm_events.c.alarm_id == alarm_id, alarm_events.c.project_id == row.project_id)
        .order_by(alarm_events.c.ts)
        .limit(1000)
    )
    out = {**reading.alarm(dict(row._mapping)), "history": [dict(e._mapping) for e in events]}
    await cause.attach(conn, [out])
    return out


async def _act(
    request: Request,
    conn: TxConn,
    key: Any,
    alarm_id: int,
    action: Literal["acknowledged", "cleared"],
    note: str | None,
    reading: Reading,
) -> dict[str, Any]:
    _check_id(alarm_id)
    try:
        out = await transition(
            conn, alarm_id, key.visible(), action, key.name, note, acting(request, key)
        )
    except TransitionError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    if out is None:
        raise not_found(f"alarm {alarm_id}")
    # Stored first; the announcement is best effort (a broker outage must not undo it).
    root = request.app.state.settings.mqtt.topic_root
    topic, payload = await announcement(conn, root, out, key.name)
    if announceable(root, topic):
        request.app.state.alarm_hub.announce(topic, payload)
    else:
        log.warning("alarm %s: transition not announced, %r is no alarm topic", alarm_id, topic)
    return reading.alarm(out)


_ACT_RESPONSES = documented(409)


@router.post(
    "/{alarm_id}/acknowledge",
    response_model=Alarm,
    responses=_ACT_RESPONSES,
    summary="Acknowledge an open alarm (operate scope).",
)
async def acknowledge(
    request: Request,
    alarm_id: int,
    conn: TxConn,
    key: Operator,
    reading: Lang,
    body: Annotated[AlarmAction | None, Body()] = None,
) -> dict[str, Any]:
    note = body.note if body else None
    return await _act(request, conn, key, alarm_id, "acknowledged", note, reading)


@router.post(
    "/{alarm_id}/clear",
    response_model=Alarm,
    responses=_ACT_RESPONSES,
    summary="Clear an open or acknowledged alarm (operate scope).",
)
async def clear(
    request: Request,
    alarm_id: int,
    conn: TxConn,
    key: Operator,
    reading: Lang,
    body: Annotated[AlarmAction | None, Body()] = None,
) -> dict[str, Any]:
    note = body.note if body else None
    return await _act(request, conn, key, alarm_id, "cleared", note, reading)
