"""Escalation policies: follow-ups for alarms nobody acknowledges.

A policy (per project, or for all when its project is NULL; optionally from a minimum
severity) has steps `{"after_s": N, "route_id": R}`: an alarm still `open` N seconds after
it opened is handed to route R (kind `escalation`, level = the step's index + 1). Its
reminders repeat the alarm to the routes its transitions go to every
`reminder_interval_s`, at most `reminder_max` times. Each follow-up is one outbox row,
unique per (alarm, kind, number), so a notifier that looks twice, or two notifiers, enqueue
it once; after a long outage only the latest due reminder is sent, not a burst. Nothing is
enqueued for an alarm acknowledged or cleared, and the dispatcher drops follow-ups that
were queued before the acknowledgement.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

_DUE_SQL = """
SELECT a.id, a.project_id, a.device_id, a.rule, a.severity, a.state, a.message, a.count,
       a.last_value, a.opened_at, a.evidence, d.kind AS device_kind,
       d.metadata -> 'tags' AS tags, d.metadata ->> 'line' AS line,
       p.id AS policy_id, p.steps, p.reminder_interval_s, p.reminder_max
FROM alarms a
JOIN notify_policies p ON p.enabled AND (p.project_id IS NULL OR p.project_id = a.project_id)
LEFT JOIN devices d ON d.project_id = a.project_id AND d.device_id = a.device_id
WHERE a.state = 'open'
  AND (p.min_severity IS NULL OR array_position(ARRAY['info', 'warning', 'major', 'critical'],
       a.severity) >= array_position(ARRAY['info', 'warning', 'major', 'critical'],
       p.min_severity))
"""

_ENQUEUE_SQL = """
INSERT INTO notify_outbox (kind, alarm_id, project_id, event_ts, seq, route_id, payload)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::timestamptz[], $5::int[],
                     $6::bigint[], $7::jsonb[])
ON CONFLICT (alarm_id, kind, seq) WHERE kind IN ('escalation', 'reminder') DO NOTHING
"""


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def follow_ups(row: dict[str, Any], now: datetime) -> list[tuple[str, int, int | None, datetime]]:
    """(kind, number, route, due time) of the follow-ups due for one alarm and policy."""
    out: list[tuple[str, int, int | None, datetime]] = []
    opened: datetime = row["opened_at"]
    steps = _json(row["steps"]) or []
    for i, step in enumerate(steps):
        try:
            due = opened + timedelta(seconds=float(step["after_s"]))
            route = int(step["route_id"])
        except (KeyError, TypeError, ValueError):
            continue
        if due <= now:
            # The number is per policy step; several policies on one alarm share a sequence
            # space by policy id so their steps do not collide.
            out.append(("escalation", row["policy_id"] * 1000 + i + 1, route, due))
    interval = row["reminder_interval_s"]
    if interval and row["reminder_max"] > 0:
        n = min(int((now - opened).total_seconds() // interval), row["reminder_max"])
        if n >= 1:
            due = opened + timedelta(seconds=n * interval)
            out.append(("reminder", row["policy_id"] * 1000 + n, None, due))
    return out


def _payload(row: dict[str, Any]) -> str:
    opened: datetime = row["opened_at"]
    return orjson.dumps(
        {
            "device": row["device_id"],
            "rule": row["rule"],
            "severity": row["severity"],
            "state": row["state"],
            "message": row["message"],
            "count": row["count"],
            "value": row["last_value"],
            "opened_at": opened.isoformat(),
            "evidence": _json(row["evidence"]) or {},
            "device_kind": row["device_kind"],
            "tags": _json(row["tags"]),
            "line": row["line"],
        }
    ).decode()


async def enqueue_due(conn: Any, now: datetime | None = None) -> int:
    """Enqueue the follow-ups due now (asyncpg connection); returns how many were new."""
    now = now or datetime.now(UTC)
    rows = [dict(r) for r in await conn.fetch(_DUE_SQL)]
    cols: list[list[Any]] = [[] for _ in range(7)]
    for row in rows:
        for kind, seq, route, due in follow_ups(row, now):
            values = (kind, row["id"], row["project_id"], due, seq, route, _payload(row))
            for col, value in zip(cols, values, strict=True):
                col.append(value)
    if not cols[0]:
        return 0
    status = await conn.execute(_ENQUEUE_SQL, *cols)
    new = int(status.rsplit(" ", 1)[1])
    if new:
        await conn.execute("SELECT pg_notify('factory5g_notify', '')")
    return new
