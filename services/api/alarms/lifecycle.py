"""Operator transitions of an alarm (acknowledge, clear) with their history event.

The rules service owns the alarm lifecycle; until its module offers these transitions, the
API performs them here, in one function, so swapping in the rules implementation is a
one-line change. The row is locked and its state checked in the same transaction as the
event insert, so two operators racing produce one transition and one clear answer.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.tables import alarm_events, alarms

Action = Literal["acknowledged", "cleared"]
# Which states each transition may leave from.
ALLOWED_FROM: Final[dict[str, tuple[str, ...]]] = {
    "acknowledged": ("open",),
    "cleared": ("open", "acknowledged"),
}


class TransitionError(Exception):
    def __init__(self, state: str, action: str) -> None:
        super().__init__(f"alarm is {state}; it cannot be {action}")


async def transition(
    conn: AsyncConnection,
    alarm_id: int,
    projects: list[str] | None,
    action: Action,
    actor: str,
    note: str | None = None,
) -> dict[str, Any] | None:
    """Apply `action` and commit; None when the alarm is unknown or not visible."""
    q = sa.select(alarms).where(alarms.c.id == alarm_id).with_for_update()
    if projects is not None:
        q = q.where(alarms.c.project_id.in_(projects))
    row = (await conn.execute(q)).first()
    if row is None:
        await conn.rollback()
        return None
    if row.state not in ALLOWED_FROM[action]:
        await conn.rollback()
        raise TransitionError(row.state, action)
    now = sa.func.now()
    values: dict[str, Any] = {"state": action, "updated_at": now}
    if action == "acknowledged":
        values.update(acknowledged_at=now, acknowledged_by=actor)
    else:
        values.update(cleared_at=now)
    updated = (
        await conn.execute(
            alarms.update().where(alarms.c.id == alarm_id).values(**values).returning(*alarms.c)
        )
    ).one()
    await conn.execute(
        alarm_events.insert().values(
            ts=now,
            alarm_id=alarm_id,
            project_id=row.project_id,
            transition=action,
            severity=row.severity,
            actor=actor,
            evidence={"note": note} if note else {},
        )
    )
    await conn.commit()
    return dict(updated._mapping)
