"""Alarm resource shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Cause(BaseModel):
    """The 5G link implicated in an alarm (services/api/alarms/cause.py, docs/plant.md)."""

    kind: Literal["network_suspected", "link_consequence"]
    alarm_id: int | None = Field(description="The link (or connection) alarm, if one is open")
    evidence: dict[str, Any]


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
    cause: Cause | None = Field(
        None, description="Set when the 5G link probably caused this alarm (list and detail)."
    )


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
