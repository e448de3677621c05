"""Operator transitions of an alarm (acknowledge, clear), scoped to the key's projects.

The statements themselves belong to the alarm lifecycle in `services.protocols.alarm_lifecycle`, so
the rules service and the API change alarms the same way; this module only adds what the
API needs around them: project visibility and the transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.audit import record as audit
from services.api.audit.record import Actor
from services.core.contracts import is_valid_id
from services.core.tables import alarms, devices
from services.protocols import alarm_lifecycle as lifecycle
from services.protocols.alarms import ALARM_LEVEL, alarm_payload, alarm_topic

Action = Literal["acknowledged", "cleared"]


class TransitionError(Exception):
    """The alarm's state does not allow the action (answered with 409)."""


async def transition(
    conn: AsyncConnection,
    alarm_id: int,
    projects: list[str] | None,
    action: Action,
    actor: str,
    note: str | None = None,
    audit_as: Actor | None = None,
) -> dict[str, Any] | None:
    """Apply `action` and commit (with its audit row when `audit_as` is given); None when
    the alarm is unknown or not visible."""
    q = sa.select(alarms.c.state).where(alarms.c.id == alarm_id)
    if projects is not None:
        q = q.where(alarms.c.project_id.in_(projects))
    before = (await conn.execute(q)).first()
    if before is None:
        await conn.rollback()
        return None
    change = lifecycle.acknowledge if action == "acknowledged" else lifecycle.clear
    try:
        row = await change(conn, alarm_id, actor, datetime.now(UTC), note)
    except lifecycle.AlarmNotFoundError:
        await conn.rollback()
        return None
    except lifecycle.InvalidTransitionError as exc:
        await conn.rollback()
        raise TransitionError(str(exc)) from None
    if audit_as is not None:
        await audit.record(
            conn,
            audit_as,
            "alarm.acknowledge" if action == "acknowledged" else "alarm.clear",
            "alarm",
            str(alarm_id),
            project=row["project_id"],
            before={"state": before.state},
            after={"state": row["state"], "note": note},
        )
    await conn.commit()
    return row


async def announcement(
    conn: AsyncConnection, root: str, row: dict[str, Any], actor: str
) -> tuple[str, bytes]:
    """Topic and payload that announce an operator's transition, as the rules service would."""
    kind = (
        await conn.execute(
            sa.select(devices.c.kind).where(
                devices.c.project_id == row["project_id"], devices.c.device_id == row["device_id"]
            )
        )
    ).scalar() or "unknown"
    topic = alarm_topic(root, row["project_id"], str(kind), row["device_id"], row["rule"])
    payload = alarm_payload(
        alarm_id=row["id"],
        transition=row["state"],
        state=row["state"],
        project=row["project_id"],
        kind=str(kind),
        device=row["device_id"],
        rule=row["rule"],
        rule_type=None,
        severity=row["severity"],
        at=row["updated_at"],
        opened_at=row["opened_at"],
        value=row["last_value"],
        count=row["count"],
        message=row["message"],
        evidence=row["evidence"] or {},
        actor=actor,
    )
    return topic, payload


def announceable(root: str, topic: str) -> bool:
    """Whether `topic` is an alarm transition topic, `{root}/{project}/alarms/{kind}/
    {device}/{rule}` with valid ids: exactly what the API's broker account may publish.

    Mosquitto 2.0 closes a client's connection when it refuses one of its publishes (QoS 0
    or 1), and the API announces on its live dashboard connection; a topic outside the
    grant (an id with a `/` or a wildcard, say) must therefore never be sent at all."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        return False
    parts = topic[len(prefix) :].split("/")
    return len(parts) == 5 and parts[1] == ALARM_LEVEL and all(is_valid_id(p) for p in parts)
