"""Alarm lifecycle in the database: open -> acknowledged -> cleared, every step an event.

Both the rules service and the API change alarms, so the statements live here and take
either an asyncpg connection or a SQLAlchemy `AsyncConnection` (see `services.protocols.sql`).
Each function is one statement: the `alarms` row and its `alarm_events` row change
together even outside a transaction. The partial unique index `uq_alarms_active` keeps one
active (not cleared) alarm per device and rule; `open_or_update` relies on it.

Operators may acknowledge and clear with `acknowledge` and `clear`. An acknowledged alarm
keeps being updated and is still cleared by its rule. An alarm an operator clears while
its condition persists is opened again, as a new alarm, at the rule's next update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import orjson

from services.protocols.sql import fetch

OPEN: Final = "open"
ACKNOWLEDGED: Final = "acknowledged"
CLEARED: Final = "cleared"


class AlarmNotFoundError(LookupError):
    pass


class InvalidTransitionError(ValueError):
    """The alarm is not in a state the requested change applies to."""


def evidence_json(value: dict[str, Any]) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


_OPEN_OR_UPDATE = """
WITH a AS (
    INSERT INTO alarms (project_id, device_id, rule, severity, state, message, count,
                        last_value, evidence, opened_at, updated_at)
    VALUES (:project, :device, :rule, :severity, 'open', :message, :count, :value,
            CAST(:evidence AS jsonb), :at, :at)
    ON CONFLICT (project_id, device_id, rule) WHERE state <> 'cleared'
    DO UPDATE SET severity = EXCLUDED.severity, message = EXCLUDED.message,
                  count = GREATEST(alarms.count + 1, EXCLUDED.count),
                  last_value = EXCLUDED.last_value, evidence = EXCLUDED.evidence,
                  updated_at = EXCLUDED.updated_at
    RETURNING id, state, count, opened_at, (xmax = 0) AS inserted
), e AS (
    INSERT INTO alarm_events (ts, alarm_id, project_id, transition, severity, actor, evidence)
    SELECT :at, a.id, :project, CASE WHEN a.inserted THEN 'opened' ELSE 'updated' END,
           :severity, NULL, CAST(:evidence AS jsonb)
    FROM a
)
SELECT id, state, count, opened_at, inserted FROM a
"""

_UPDATE = """
WITH a AS (
    UPDATE alarms SET severity = :severity, message = :message, count = :count,
                      last_value = :value, evidence = CAST(:evidence AS jsonb), updated_at = :at
    WHERE project_id = :project AND device_id = :device AND rule = :rule AND state <> 'cleared'
    RETURNING id, state, count, opened_at
), e AS (
    INSERT INTO alarm_events (ts, alarm_id, project_id, transition, severity, actor, evidence)
    SELECT :at, a.id, :project, :transition, :severity, NULL, CAST(:evidence AS jsonb) FROM a
)
SELECT id, state, count, opened_at FROM a
"""

# A cleared alarm keeps the message facts (`evidence.text`) of its last opening or update,
# as it keeps that `message`: its text says what was wrong, not the all-clear value (the
# cleared event's own evidence has that).
_CLEAR_BY_RULE = """
WITH a AS (
    UPDATE alarms SET state = 'cleared', cleared_at = :at, updated_at = :at,
                      last_value = :value,
                      evidence = (CAST(:evidence AS jsonb) - 'text')
                                 || jsonb_strip_nulls(jsonb_build_object('text',
                                                                         alarms.evidence -> 'text'))
    WHERE project_id = :project AND device_id = :device AND rule = :rule AND state <> 'cleared'
    RETURNING id, state, count, opened_at, severity
), e AS (
    INSERT INTO alarm_events (ts, alarm_id, project_id, transition, severity, actor, evidence)
    SELECT :at, a.id, :project, 'cleared', a.severity, NULL, CAST(:evidence AS jsonb) FROM a
)
SELECT id, state, count, opened_at, severity FROM a
"""


async def open_or_update(
    conn: Any,
    *,
    project: str,
    device: str,
    rule: str,
    severity: str,
    message: str,
    count: int,
    value: float | None,
    evidence: dict[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """Open the alarm, or count a repeat if one is already active. Returns id and `inserted`."""
    rows = await fetch(
        conn,
        _OPEN_OR_UPDATE,
        project=project,
        device=device,
        rule=rule,
        severity=severity,
        message=message,
        count=count,
        value=value,
        evidence=evidence_json(evidence),
        at=at,
    )
    return rows[0]


async def update(
    conn: Any,
    *,
    transition: str,
    project: str,
    device: str,
    rule: str,
    severity: str,
    message: str,
    count: int,
    value: float | None,
    evidence: dict[str, Any],
    at: datetime,
) -> dict[str, Any] | None:
    """Record a repeat or an escalation of the active alarm; None when there is none."""
    rows = await fetch(
        conn,
        _UPDATE,
        transition=transition,
        project=project,
        device=device,
        rule=rule,
        severity=severity,
        message=message,
        count=count,
        value=value,
        evidence=evidence_json(evidence),
        at=at,
    )
    return rows[0] if rows else None


async def clear_by_rule(
    conn: Any,
    *,
    project: str,
    device: str,
    rule: str,
    value: float | None,
    evidence: dict[str, Any],
    at: datetime,
) -> dict[str, Any] | None:
    """The rule's clear condition held; None when no alarm was active (an operator cleared)."""
    rows = await fetch(
        conn,
        _CLEAR_BY_RULE,
        project=project,
        device=device,
        rule=rule,
        value=value,
        evidence=evidence_json(evidence),
        at=at,
    )
    return rows[0] if rows else None


_OPERATOR = """
WITH a AS (
    UPDATE alarms SET state = :to_state, updated_at = :at, {extra}
    WHERE id = :alarm_id AND state IN ({allowed})
    RETURNING *
), e AS (
    INSERT INTO alarm_events (ts, alarm_id, project_id, transition, severity, actor, evidence)
    SELECT :at, a.id, a.project_id, :to_state, a.severity, :actor,
           CAST(:evidence AS jsonb) FROM a
)
SELECT * FROM a
"""
_ACK_SQL = _OPERATOR.format(
    extra="acknowledged_at = :at, acknowledged_by = :actor", allowed="'open'"
)
_CLEAR_SQL = _OPERATOR.format(extra="cleared_at = :at", allowed="'open', 'acknowledged'")


async def _operator(
    conn: Any, sql: str, to_state: str, alarm_id: int, actor: str, at: datetime, note: str | None
) -> dict[str, Any]:
    evidence = {"note": note} if note else {}
    rows = await fetch(
        conn,
        sql,
        to_state=to_state,
        alarm_id=alarm_id,
        actor=actor,
        at=at,
        evidence=evidence_json(evidence),
    )
    if rows:
        return rows[0]
    found = await fetch(conn, "SELECT state FROM alarms WHERE id = :alarm_id", alarm_id=alarm_id)
    if not found:
        raise AlarmNotFoundError(f"alarm {alarm_id} does not exist")
    raise InvalidTransitionError(
        f"alarm {alarm_id} is {found[0]['state']}; cannot make it {to_state}"
    )


async def acknowledge(
    conn: Any, alarm_id: int, actor: str, at: datetime, note: str | None = None
) -> dict[str, Any]:
    """An operator has seen an open alarm. Returns the alarm row.

    Raises `AlarmNotFoundError`, or `InvalidTransitionError` if it is acknowledged or cleared.
    """
    return await _operator(conn, _ACK_SQL, ACKNOWLEDGED, alarm_id, actor, at, note)


async def clear(
    conn: Any, alarm_id: int, actor: str, at: datetime, note: str | None = None
) -> dict[str, Any]:
    """An operator clears an open or acknowledged alarm. Returns the alarm row.

    Raises `AlarmNotFoundError`, or `InvalidTransitionError` if it is already cleared.
    """
    return await _operator(conn, _CLEAR_SQL, CLEARED, alarm_id, actor, at, note)


async def active_alarms(conn: Any) -> list[dict[str, Any]]:
    """Alarms not cleared, with the device kind when the devices table knows it."""
    return await fetch(
        conn,
        """
        SELECT a.project_id, a.device_id, a.rule, a.severity, a.opened_at, a.count, d.kind
        FROM alarms a LEFT JOIN devices d
          ON d.project_id = a.project_id AND d.device_id = a.device_id
        WHERE a.state <> 'cleared'
        """,
    )
