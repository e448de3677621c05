"""Writes the engine's transitions to the `alarms` and `alarm_events` tables.

Transitions are applied in the order the engine made them, one statement each, inside one
transaction per batch, so a batch is stored whole or not at all and can simply be retried.
What was stored (the alarm id and state the database ended up with) is what gets published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.rules import lifecycle
from services.rules.engine import CLEARED, OPENED, UPDATED, Transition


@dataclass(slots=True)
class Stored:
    transition: Transition
    name: str  # what happened in the database: opened | updated | escalated | cleared
    alarm_id: int
    state: str
    count: int
    opened_at: datetime


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


async def apply(conn: Any, transitions: list[Transition]) -> list[Stored]:
    """Store a batch in one transaction (asyncpg connection); returns what to publish."""
    out: list[Stored] = []
    async with conn.transaction():
        for tr in transitions:
            stored = await _apply_one(conn, tr)
            if stored is not None:
                out.append(stored)
    return out


async def _apply_one(conn: Any, tr: Transition) -> Stored | None:
    at = _dt(tr.at)
    common: dict[str, Any] = {
        "project": tr.project,
        "device": tr.device,
        "rule": tr.rule,
        "value": tr.value,
        "evidence": tr.evidence,
        "at": at,
    }
    if tr.transition == CLEARED:
        row = await lifecycle.clear_by_rule(conn, **common)
        if row is None:
            return None  # an operator cleared it already; nothing new to say
        return Stored(tr, CLEARED, row["id"], row["state"], row["count"], row["opened_at"])
    full = {**common, "severity": tr.severity, "message": tr.message, "count": tr.count}
    if tr.transition != OPENED:
        row = await lifecycle.update(conn, transition=tr.transition, **full)
        if row is not None:
            return Stored(
                tr, tr.transition, row["id"], row["state"], row["count"], row["opened_at"]
            )
        # No active alarm (an operator cleared it while the condition persists): open anew.
    row = await lifecycle.open_or_update(conn, **full)
    name = OPENED if row["inserted"] else UPDATED
    return Stored(tr, name, row["id"], row["state"], row["count"], row["opened_at"])
