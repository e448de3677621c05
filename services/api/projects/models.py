"""Project resource shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.core.contracts import ID_PATTERN

Status = Literal["planned", "active", "paused", "completed", "archived"]
# PostgreSQL text cannot hold NUL; refusing it here makes it a 422, not a database error.
NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
Targets = dict[
    Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)],
    Annotated[float, Field(allow_inf_nan=False)],
]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN, description="Project id as used in MQTT topics.")
    name: Name
    enterprise: Name | None = None
    city: Name | None = None
    scenario: Name | None = None
    status: Status = "active"
    targets: Targets = Field(
        default_factory=dict,
        max_length=100,
        description="Named numeric targets, e.g. defect_rate_max, latency_p95_ms.",
    )


class ProjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    enterprise: Name | None = None
    city: Name | None = None
    scenario: Name | None = None
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
