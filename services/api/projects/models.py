"""Project resource shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.core.contracts import ID_PATTERN

Status = Literal["planned", "active", "paused", "completed", "archived"]
Text = Field(min_length=1, max_length=200)
Targets = dict[str, float]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN, description="Project id as used in MQTT topics.")
    name: str = Field(min_length=1, max_length=200)
    enterprise: str | None = Field(None, min_length=1, max_length=200)
    city: str | None = Field(None, min_length=1, max_length=200)
    scenario: str | None = Field(None, min_length=1, max_length=200)
    status: Status = "active"
    targets: Targets = Field(
        default_factory=dict,
        max_length=100,
        description="Named numeric targets, e.g. defect_rate_max, latency_p95_ms.",
    )


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    enterprise: str | None = Field(None, min_length=1, max_length=200)
    city: str | None = Field(None, min_length=1, max_length=200)
    scenario: str | None = Field(None, min_length=1, max_length=200)
    status: Status | None = None
    targets: Targets | None = Field(None, max_length=100)


class Project(BaseModel):
    id: str
    name: str
    enterprise: str | None
    city: str | None
    scenario: str | None
    status: str
    targets: dict[str, float]
    created_at: datetime
    updated_at: datetime


class ProjectPage(BaseModel):
    items: list[Project]
    next_cursor: str | None
