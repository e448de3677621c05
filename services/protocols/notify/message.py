"""The notice a channel sends and the outcome it reports: the contract between the notify
service (outbox, routing, escalation, retries) and the channels (formats, signatures, I/O).

A notice is built from one stored alarm transition, so every delivery of it, on every route
and every retry, says the same thing; `idempotency_key` is what a receiver de-duplicates on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

Language = Literal["en", "zh"]
LANGUAGES: Final = ("en", "zh")

# What a notice reports. `opened`, `escalated` (severity raised), `acknowledged` and
# `cleared` are alarm transitions; `reminder` repeats an unacknowledged alarm, `escalation`
# hands it to the next route of a policy; `test` is an operator's "send test".
NoticeKind = Literal[
    "opened", "escalated", "acknowledged", "cleared", "reminder", "escalation", "test"
]


@dataclass(frozen=True, slots=True)
class AlarmNotice:
    idempotency_key: str
    kind: NoticeKind
    alarm_id: int | None
    project: str
    project_name: str
    device: str
    device_kind: str
    rule: str
    severity: str
    state: str
    message: str
    at: datetime
    opened_at: datetime | None = None
    value: float | None = None
    unit: str | None = None
    count: int = 1
    actor: str | None = None
    line: str | None = None
    rule_type: str | None = None
    escalation_level: int = 0
    dashboard_url: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    # The alarm's message facts (`services/protocols/texts.py`) when the event's own
    # evidence has none (an operator's acknowledgement): the message in any language.
    text: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a receiver answered. `retryable` False means retrying cannot help (a 4xx, a
    refused recipient, a vendor error code that says the robot is gone): give up now."""

    ok: bool
    retryable: bool
    status: str  # e.g. "250", "200", "errcode=0", "connect refused"
    answer: str = ""  # the receiver's answer, truncated for the delivery history
