"""Outbox items -> one delivery per matching route, in the transaction that marks them routed.

Crash safety: the deliveries and the `routed_at` mark commit together, so an item is
either routed whole or still waiting; two notifiers never route one item at the same
time (`FOR UPDATE SKIP LOCKED`), and the UNIQUE idempotency key would absorb it if they
did. The key is `{alarm_id}:{kind}:{event ts}:{route}`: one transition of one alarm
reaches one route once, however often it is routed.

Quiet hours: a route with a quiet window holds deliveries of non-critical alarms that fall
inside it until the window ends (`next_attempt_at` = the end); critical alarms and test
notices go at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

SEVERITY_RANK = {"info": 0, "warning": 1, "major": 2, "critical": 3}
# Transitions and follow-ups a route receives unless it lists its own.
DEFAULT_KINDS = frozenset({"opened", "escalated", "acknowledged", "cleared", "reminder"})


@dataclass(frozen=True, slots=True)
class Route:
    id: int
    project_id: str | None
    channel_id: int
    channel_type: str
    channel_project: str | None
    min_severity: str | None
    severities: frozenset[str] | None
    rules: frozenset[str] | None
    device_kinds: frozenset[str] | None
    tags: frozenset[str] | None
    transitions: frozenset[str] | None
    recipients: list[str]
    language: str
    quiet_start: time | None
    quiet_end: time | None
    quiet_tz: str
    escalation_only: bool


def _set(value: list[str] | None) -> frozenset[str] | None:
    return frozenset(value) if value else None


def route_from_row(row: Any) -> Route:
    return Route(
        id=row["id"],
        project_id=row["project_id"],
        channel_id=row["channel_id"],
        channel_type=row["channel_type"],
        channel_project=row["channel_project"],
        min_severity=row["min_severity"],
        severities=_set(row["severities"]),
        rules=_set(row["rules"]),
        device_kinds=_set(row["device_kinds"]),
        tags=_set(row["tags"]),
        transitions=_set(row["transitions"]),
        recipients=list(row["recipients"]),
        language=row["language"],
        quiet_start=row["quiet_start"],
        quiet_end=row["quiet_end"],
        quiet_tz=row["quiet_tz"],
        escalation_only=row["escalation_only"],
    )


ROUTES_SQL = """
SELECT r.id, r.project_id, r.channel_id, c.type AS channel_type, c.project_id AS channel_project,
       r.min_severity, r.severities, r.rules, r.device_kinds, r.tags, r.transitions,
       r.recipients, r.language, r.quiet_start, r.quiet_end, r.quiet_tz, r.escalation_only
FROM notify_routes r JOIN notify_channels c ON c.id = r.channel_id
WHERE r.enabled AND c.enabled
ORDER BY r.position, r.id
"""


def _in_project(route: Route, project: str) -> bool:
    return route.project_id in (None, project) and route.channel_project in (None, project)


def matches(route: Route, item: dict[str, Any]) -> bool:
    """Does a transition (no route of its own) go to `route`?"""
    payload = item["payload"]
    if route.escalation_only or not _in_project(route, item["project_id"]):
        return False
    if item["kind"] not in (route.transitions or DEFAULT_KINDS):
        return False
    severity = payload.get("severity") or "info"
    if route.min_severity is not None and SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK.get(
        route.min_severity, 0
    ):
        return False
    if route.severities is not None and severity not in route.severities:
        return False
    if route.rules is not None and payload.get("rule") not in route.rules:
        return False
    if route.device_kinds is not None and payload.get("device_kind") not in route.device_kinds:
        return False
    if route.tags is not None:
        tags = payload.get("tags")
        if not isinstance(tags, list) or route.tags.isdisjoint(str(t) for t in tags):
            return False
    return True


def routes_for(routes: list[Route], item: dict[str, Any]) -> list[Route]:
    if item["route_id"] is not None:
        return [
            r for r in routes if r.id == item["route_id"] and _in_project(r, item["project_id"])
        ]
    return [r for r in routes if matches(r, item)]


def quiet_until(route: Route, now: datetime) -> datetime | None:
    """End of the route's quiet window if `now` is inside it, else None."""
    if route.quiet_start is None or route.quiet_end is None:
        return None
    try:
        tz = ZoneInfo(route.quiet_tz)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    start, end = route.quiet_start, route.quiet_end
    today_end = datetime.combine(local.date(), end, tz)
    if start <= end:
        inside = start <= t < end
        until = today_end
    else:  # over midnight, e.g. 22:00-07:00
        inside = t >= start or t < end
        until = today_end if t < end else today_end + timedelta(days=1)
    return until.astimezone(UTC) if inside else None


def idempotency_key(item: dict[str, Any], route_id: int) -> str:
    if item["kind"] == "test":
        return f"test:{item['id']}:{route_id}"
    ts = item["event_ts"].astimezone(UTC).isoformat()
    return f"{item['alarm_id']}:{item['kind']}:{ts}:{route_id}"


_CLAIM_ITEMS = """
SELECT id, kind, alarm_id, project_id, event_ts, seq, route_id, payload
FROM notify_outbox WHERE routed_at IS NULL
ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
"""

_INSERT_DELIVERIES = """
INSERT INTO notify_deliveries (outbox_id, route_id, channel_id, channel_type, alarm_id,
                               project_id, kind, language, recipients, idempotency_key,
                               event_ts, next_attempt_at, give_up_at)
SELECT v.outbox_id, v.route_id, v.channel_id, v.channel_type, v.alarm_id, v.project_id,
       v.kind, v.language, ARRAY(SELECT jsonb_array_elements_text(v.recipients::jsonb)),
       v.key, v.event_ts, v.next_at, v.next_at + make_interval(secs => $13)
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::text[],
            $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
            $12::timestamptz[])
     AS v(outbox_id, route_id, channel_id, channel_type, alarm_id, project_id, kind, language,
          recipients, key, event_ts, next_at)
ON CONFLICT (idempotency_key) DO NOTHING
"""


_MARK_ROUTED = """
UPDATE notify_outbox o SET routed_at = now(), payload = v.payload
FROM unnest($1::bigint[], $2::jsonb[]) AS v(id, payload)
WHERE o.id = v.id
"""

_ALARMS = """
SELECT a.id, a.device_id, a.rule, a.message, a.count, a.last_value, a.opened_at,
       a.evidence -> 'text' AS text, d.kind AS device_kind, d.metadata -> 'tags' AS tags,
       d.metadata ->> 'line' AS line
FROM alarms a
LEFT JOIN devices d ON d.project_id = a.project_id AND d.device_id = a.device_id
WHERE a.id = ANY($1::bigint[])
"""

# The alarm's state right after each transition.
_STATE_AFTER = {
    "opened": "open",
    "escalated": "open",
    "acknowledged": "acknowledged",
    "cleared": "cleared",
}


async def _complete(conn: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete the trigger's snapshot of alarm transitions with the alarm and its device,
    in one query for the batch; items that carry a full snapshot (follow-ups, tests) stay
    as they are. The event's own fields (severity, actor, evidence) win."""
    for item in items:
        payload = item["payload"]
        item["payload"] = (orjson.loads(payload) if isinstance(payload, str) else payload) or {}
    wanted = [
        i["alarm_id"] for i in items if i["alarm_id"] is not None and "device" not in i["payload"]
    ]
    if not wanted:
        return items
    alarms = {r["id"]: r for r in await conn.fetch(_ALARMS, wanted)}
    for item in items:
        row = alarms.get(item["alarm_id"])
        if row is None or "device" in item["payload"]:
            continue
        tags, text = row["tags"], row["text"]
        item["payload"] = {
            "device": row["device_id"],
            "rule": row["rule"],
            "state": _STATE_AFTER.get(item["kind"], ""),
            "message": row["message"],
            "count": row["count"],
            "value": row["last_value"],
            "opened_at": row["opened_at"].isoformat(),
            "device_kind": row["device_kind"],
            "tags": orjson.loads(tags) if isinstance(tags, str) else tags,
            "line": row["line"],
            "text": orjson.loads(text) if isinstance(text, str) else text,
            **item["payload"],
        }
    return items


async def route_batch(conn: Any, batch_size: int, give_up_after_s: float) -> tuple[int, int]:
    """Route up to `batch_size` outbox items (asyncpg connection). Returns (items, deliveries
    inserted)."""
    async with conn.transaction():
        items = await conn.fetch(_CLAIM_ITEMS, batch_size)
        if not items:
            return 0, 0
        routes = [route_from_row(r) for r in await conn.fetch(ROUTES_SQL)]
        now = datetime.now(UTC)
        snapshots = await _complete(conn, [dict(raw) for raw in items])
        cols: list[list[Any]] = [[] for _ in range(12)]
        for item in snapshots:
            critical = item["payload"].get("severity") == "critical"
            for route in routes_for(routes, item):
                held = None if critical or item["kind"] == "test" else quiet_until(route, now)
                row = (
                    item["id"],
                    route.id,
                    route.channel_id,
                    route.channel_type,
                    item["alarm_id"],
                    item["project_id"],
                    item["kind"],
                    route.language,
                    orjson.dumps(route.recipients).decode(),
                    idempotency_key(item, route.id),
                    item["event_ts"],
                    held or now,
                )
                for col, value in zip(cols, row, strict=True):
                    col.append(value)
        inserted = 0
        if cols[0]:
            status = await conn.execute(_INSERT_DELIVERIES, *cols, give_up_after_s)
            inserted = int(status.rsplit(" ", 1)[1])
        await conn.execute(
            _MARK_ROUTED,
            [item["id"] for item in snapshots],
            [orjson.dumps(item["payload"]).decode() for item in snapshots],
        )
    return len(items), inserted
