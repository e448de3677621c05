"""Alarm transitions as MQTT messages: the topic and the JSON every subscriber sees.

Alarms live at `{root}/{project}/alarms/{kind}/{device}/{rule}`: five levels after the root,
so no device-stream subscription (`{root}/+/+/+/+`, four levels) can mistake one for a record.
The API may import these helpers to publish the transitions operators cause.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

ALARM_LEVEL = "alarms"


def alarm_topic(root: str, project: str, kind: str, device: str, rule: str) -> str:
    return f"{root}/{project}/{ALARM_LEVEL}/{kind}/{device}/{rule}"


def alarm_filter(root: str, project: str = "+") -> str:
    """Subscription filter for every alarm of a project (or of all projects)."""
    return f"{root}/{project}/{ALARM_LEVEL}/+/+/+"


def iso(t: float | datetime | None) -> str | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        return t.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def alarm_payload(
    *,
    alarm_id: int | None,
    transition: str,
    state: str,
    project: str,
    kind: str | None,
    device: str,
    rule: str,
    rule_type: str | None,
    severity: str,
    at: float | datetime,
    opened_at: float | datetime | None,
    value: float | None,
    count: int,
    message: str,
    evidence: dict[str, Any],
    actor: str | None = None,
) -> bytes:
    body = {
        "alarm_id": alarm_id,
        "transition": transition,
        "state": state,
        "project": project,
        "kind": kind,
        "device": device,
        "rule": rule,
        "rule_type": rule_type,
        "severity": severity,
        "at": iso(at),
        "opened_at": iso(opened_at),
        "value": value,
        "count": count,
        "message": message,
        "evidence": evidence,
    }
    if actor is not None:
        body["actor"] = actor
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
