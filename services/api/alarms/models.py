"""Alarm resource shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Alarm(BaseModel):
    id: int
    project_id: str
    device_id: str
    rule: str
    rule_name: str | None = Field(
        None, description="The rule's name in the reader's language (`lang`, Accept-Language)."
    )
    severity: str
    state: str
    message: str = Field(
        description="In the reader's language when one is asked for (`lang` or "
        "Accept-Language), else the text the rules engine stored (English)."
    )
    count: int
    last_value: float | None
    evidence: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    cleared_at: datetime | None


class AlarmEvent(BaseModel):
    ts: datetime
    transition: str
    severity: str
    actor: str | None
    evidence: dict[str, Any]


class AlarmDetail(Alarm):
    history: list[AlarmEvent]


class AlarmPage(BaseModel):
    items: list[Alarm]
    next_cursor: str | None


class AlarmAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(
        None, max_length=1000, pattern=r"^[^\x00]*$", description="Kept in the alarm history."
    )
