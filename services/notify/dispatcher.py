"""Due deliveries -> the channel -> the outcome, with retries, give-up and leases.

A claim sets `state = 'sending'`, counts the attempt and gives the delivery to this
notifier until `lease_until`; `FOR UPDATE SKIP LOCKED` keeps two notifiers from claiming
one delivery. A notifier killed mid-send leaves the delivery `sending` with its lease
running out; any notifier claims it again then (at-least-once to the receiver, which
de-duplicates on the idempotency key every channel carries). The outcome is recorded only
by the claim that made the attempt (`claimed_by` and `attempts` match), so a late answer
of an expired claim cannot overwrite a newer one.

Retryable failures wait `retry_base_s * 2^(attempt-1)` (at most `retry_max_s`), with up
to 25 % jitter so a receiver coming back is not hit by every delivery at once, and are
given up once the next attempt would fall after `give_up_at`. Escalations and reminders
of an alarm acknowledged or cleared meanwhile are not sent (given up, status `cancelled`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import ValidationError

from services.notify import registry
from services.protocols.notify.message import AlarmNotice, Outcome

FOLLOW_UPS = ("escalation", "reminder")

CLAIM_SQL = """
WITH c AS (
    SELECT id FROM notify_deliveries
    WHERE (state IN ('queued', 'failed') AND next_attempt_at <= now())
       OR (state = 'sending' AND lease_until < now())
    ORDER BY next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), d AS (
    UPDATE notify_deliveries d
    SET state = 'sending', attempts = d.attempts + 1, claimed_by = $2,
        lease_until = now() + make_interval(secs => $3)
    FROM c WHERE d.id = c.id
    RETURNING d.*
)
SELECT d.id, d.outbox_id, d.route_id, d.channel_type, d.alarm_id, d.project_id, d.kind,
       d.language, d.recipients, d.idempotency_key, d.attempts, d.event_ts, d.give_up_at,
       o.payload, o.seq, ch.config AS channel_config, ch.enabled AS channel_enabled,
       a.state AS alarm_state, p.name AS project_name, r.quiet_tz AS route_tz
FROM d
JOIN notify_outbox o ON o.id = d.outbox_id
LEFT JOIN notify_channels ch ON ch.id = d.channel_id
LEFT JOIN alarms a ON a.id = d.alarm_id
LEFT JOIN projects p ON p.id = d.project_id
LEFT JOIN notify_routes r ON r.id = d.route_id
"""

RECORD_SQL = """
WITH v AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[],
                         $6::timestamptz[], $7::bool[], $8::float8[])
        AS v(id, attempts, state, status, answer, next_at, ok, ms)
), u AS (
    UPDATE notify_deliveries d
    SET state = v.state, last_status = v.status, last_answer = v.answer, lease_until = NULL,
        next_attempt_at = coalesce(v.next_at, d.next_attempt_at),
        sent_at = CASE WHEN v.state = 'sent' THEN now() ELSE d.sent_at END
    FROM v
    WHERE d.id = v.id AND d.claimed_by = $9 AND d.attempts = v.attempts AND d.state = 'sending'
    RETURNING d.id
)
INSERT INTO notify_attempts (delivery_id, ok, status, answer, duration_ms)
SELECT v.id, v.ok, v.status, v.answer, v.ms FROM v JOIN u ON u.id = v.id
RETURNING delivery_id
"""


@dataclass(frozen=True, slots=True)
class Result:
    """One attempt's outcome, waiting to be recorded."""

    row: dict[str, Any]
    outcome: Outcome
    state: str
    next_at: datetime | None
    duration_ms: float


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def _dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _zone(row: dict[str, Any]) -> ZoneInfo:
    """The route's time zone for the texts (its quiet-hours zone, the plant's clock); UTC
    when the route is gone (a test notice) or names no zone Python knows."""
    try:
        return ZoneInfo(row.get("route_tz") or "UTC")
    except (ValueError, ZoneInfoNotFoundError):
        return ZoneInfo("UTC")


def build_notice(row: dict[str, Any], dashboard_url: str | None) -> AlarmNotice:
    """The notice of a claimed delivery, from the outbox snapshot: every retry and every
    route of one transition says the same thing."""
    p = _json(row["payload"]) or {}
    alarm_id = row["alarm_id"]
    link = None
    if dashboard_url and alarm_id is not None:
        link = f"{dashboard_url.rstrip('/')}/#/alarms/{alarm_id}"
    return AlarmNotice(
        idempotency_key=row["idempotency_key"],
        kind=row["kind"],
        alarm_id=alarm_id,
        project=row["project_id"],
        project_name=row["project_name"] or row["project_id"],
        device=str(p.get("device") or ""),
        device_kind=str(p.get("device_kind") or ""),
        rule=str(p.get("rule") or ""),
        severity=str(p.get("severity") or "info"),
        state=str(p.get("state") or ""),
        message=str(p.get("message") or ""),
        at=row["event_ts"],
        opened_at=_dt(p.get("opened_at")),
        value=_float(p.get("value")),
        unit=p.get("unit"),
        count=int(p.get("count") or 1),
        actor=p.get("actor"),
        line=p.get("line"),
        rule_type=p.get("rule_type"),
        escalation_level=int(row["seq"]) % 1000 if row["kind"] == "escalation" else 0,
        dashboard_url=link,
        evidence=p.get("evidence") or {},
        text=p.get("text") if isinstance(p.get("text"), dict) else None,
    )


async def send_one(row: dict[str, Any], dashboard_url: str | None) -> Outcome:
    """Send a claimed delivery; never raises (every failure is an Outcome)."""
    if row["kind"] in FOLLOW_UPS and row["alarm_state"] != "open":
        return Outcome(ok=False, retryable=False, status="cancelled", answer="alarm not open")
    if row["channel_config"] is None:
        return Outcome(ok=False, retryable=False, status="channel deleted")
    if not row["channel_enabled"]:
        return Outcome(ok=False, retryable=False, status="channel disabled")
    kind = registry.lookup(row["channel_type"])
    if kind is None:
        return Outcome(
            ok=False, retryable=False, status=f"channel type {row['channel_type']} unavailable"
        )
    config = registry.with_recipients(
        row["channel_type"], _json(row["channel_config"]) or {}, row["recipients"]
    )
    try:
        model = kind.config.model_validate(config)
    except ValidationError as exc:
        # Keys and reasons only: pydantic's own text repeats the input, secrets included,
        # and the answer is shown in the delivery history.
        problems = "; ".join(
            ".".join(str(part) for part in ("config", *error["loc"])) + f": {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        return Outcome(ok=False, retryable=False, status="invalid channel config", answer=problems)
    notice = build_notice(row, dashboard_url)
    try:
        return await kind.send(model, notice, row["language"], registry.client(), tz=_zone(row))
    except Exception as exc:  # a channel bug must not stop the notifier; retried
        return Outcome(ok=False, retryable=True, status=type(exc).__name__, answer=str(exc)[:500])


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    delay = min(max_s, base_s * 2.0 ** max(0, attempt - 1))
    return delay * random.uniform(0.75, 1.0)


def next_state(
    outcome: Outcome,
    attempts: int,
    give_up_at: datetime,
    base_s: float,
    max_s: float,
    now: datetime | None = None,
) -> tuple[str, datetime | None]:
    """(state, next attempt) after an attempt."""
    if outcome.ok:
        return "sent", None
    if not outcome.retryable:
        return "gave_up", None
    now = now or datetime.now(UTC)
    at = now + timedelta(seconds=backoff_s(attempts, base_s, max_s))
    if at > give_up_at:
        return "gave_up", None
    return "failed", at


async def claim(conn: Any, limit: int, token: str, lease_s: float) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(CLAIM_SQL, limit, token, lease_s)]


async def record(conn: Any, results: list[Result], token: str) -> set[int]:
    """Store outcomes in one statement; returns the ids recorded. An id missing from the
    answer had its claim expire and another notifier take it over."""
    cols: list[list[Any]] = [[] for _ in range(8)]
    for r in results:
        values = (
            r.row["id"],
            r.row["attempts"],
            r.state,
            r.outcome.status[:200],
            r.outcome.answer[:2000],
            r.next_at,
            r.outcome.ok,
            r.duration_ms,
        )
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    rows = await conn.fetch(RECORD_SQL, *cols, token)
    return {int(r["delivery_id"]) for r in rows}
