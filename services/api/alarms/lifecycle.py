"""Operator transitions of an alarm (acknowledge, clear), scoped to the key's projects.

The statements themselves belong to the alarm lifecycle in `services.rules.lifecycle`, so
the rules service and the API change alarms the same way; this module only adds what the
API needs around them: project visibility and the transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.tables import alarms
from services.rules import lifecycle

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
) -> dict[str, Any] | None:
    """Apply `action` and commit; None when the alarm is unknown or not visible."""
    q = sa.select(alarms.c.project_id).where(alarms.c.id == alarm_id)
    if projects is not None:
        q = q.where(alarms.c.project_id.in_(projects))
    if (await conn.execute(q)).first() is None:
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
    await conn.commit()
    return row
