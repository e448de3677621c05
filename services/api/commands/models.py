"""Command resource shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.contracts import ID_PATTERN

# Parameters are stored as jsonb, which cannot hold NUL, and sent to devices: refuse what
# cannot be stored (422) instead of failing in the database (500), and bound the nesting.
_MAX_PARAM_DEPTH = 32


def _check_params(value: Any, depth: int = 0) -> None:
    if depth > _MAX_PARAM_DEPTH:
        raise ValueError(f"nested more than {_MAX_PARAM_DEPTH} levels deep")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("NUL characters are not allowed")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_params(k, depth)
            _check_params(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_params(v, depth + 1)


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=ID_PATTERN,
        description="Command name; must be on the project's allow-list for the device's kind.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters, sent to the device as they are."
    )
    timeout_s: float | None = Field(
        None,
        gt=0,
        description="Seconds until the deadline: a command without its outcome by then is "
        "`expired`. Default and maximum: `F5G_COMMANDS__DEFAULT_TIMEOUT_S` / `MAX_TIMEOUT_S`.",
    )
    queue_until_deadline: bool = Field(
        False,
        description="For an offline device: keep the command queued until the deadline "
        "(sent when the device is back) instead of refusing it with 409.",
    )

    @field_validator("params")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_params(value)
        return value


class Command(BaseModel):
    id: UUID
    project_id: str
    device_id: str
    kind: str
    name: str
    protocol: str
    params: dict[str, Any]
    state: str = Field(description="queued|sent|accepted|rejected|completed|failed|expired")
    actor: str
    created_at: datetime
    deadline: datetime
    sent_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None
    message: str | None
    result: dict[str, Any] | None


class CommandEvent(BaseModel):
    ts: datetime
    state: str
    actor: str | None
    detail: dict[str, Any]


class CommandDetail(Command):
    history: list[CommandEvent]


class CommandPage(BaseModel):
    items: list[Command]


class AllowedCommand(BaseModel):
    kind: str
    name: str
    created_at: datetime
    created_by: str | None


class AllowList(BaseModel):
    items: list[AllowedCommand]
