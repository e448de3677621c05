"""Notification resource shapes: channels, routes, escalation policies, deliveries.

Channel secrets are write-only: a response shows each secret as "set" (see
`service.mask`). Channel settings are validated with the channel's own model (the one the
notifier sends with, `services.protocols.notify.channels.parse_config`) when a channel is
created or changed, so a wrong key is a 422 naming it at once instead of a delivery given
up later. The mqtt type is refused: alarm transitions are already published on MQTT by the
rules service, and the notifier has no MQTT session to publish with.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.core.contracts import ID_PATTERN
from services.protocols.notify.channels import parse_config

NO_NUL = r"^[^\x00]*$"
ChannelType = Literal["email", "webhook", "wecom", "dingtalk", "feishu", "mqtt"]
Severity = Literal["info", "warning", "major", "critical"]
Kind = Literal["opened", "escalated", "acknowledged", "cleared", "reminder"]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
Text = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
ProjectId = Annotated[
    str | None,
    Field(pattern=ID_PATTERN, description="Project it belongs to; null = every project."),
]
Filter = Annotated[list[Text] | None, Field(max_length=100)]
Config = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=64, pattern=NO_NUL)], Any],
    Field(max_length=64),
]


def check_config(channel_type: str | None, config: dict[str, Any] | None) -> None:
    if config is None:
        return
    try:
        text = orjson.dumps(config).decode()
    except TypeError as exc:  # e.g. an integer beyond 64 bits
        raise ValueError(f"channel settings are not storable JSON: {exc}") from None
    # PostgreSQL's jsonb cannot hold NUL: refused here as a 422, not a database error.
    if "\\u0000" in text:
        raise ValueError("channel settings cannot contain NUL characters")
    if channel_type is None:
        return
    if channel_type == "mqtt":
        raise ValueError(MQTT_REFUSED)
    try:
        parse_config(channel_type, config)
    except ValidationError as exc:
        # Key and reason only: pydantic's own text repeats the input, secrets included.
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in ("config", *error["loc"]))
            problems.append(f"{where}: {error['msg']}")
        raise ValueError("; ".join(problems)) from None


MQTT_REFUSED = (
    "the mqtt channel type is not available: alarm transitions are already published on "
    "MQTT by the rules service (subscribe to the alarm topics instead)"
)


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: ProjectId = None
    name: Name
    type: ChannelType
    config: Config = Field(
        default_factory=dict,
        description="The channel's settings, secrets included (never returned).",
    )
    enabled: bool = True

    @model_validator(mode="after")
    def _config_shape(self) -> ChannelCreate:
        check_config(self.type, self.config)
        return self


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    config: Config | None = Field(
        None,
        description="Keys to change; keys left out keep their stored value, so secrets "
        "need not be sent again. A null value removes the key.",
    )
    enabled: bool | None = None


class Channel(BaseModel):
    id: int
    project_id: str | None
    name: str
    type: str
    config: dict[str, Any] = Field(description='Settings; every secret shows as "set".')
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ChannelPage(BaseModel):
    items: list[Channel]


def _zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


class RouteFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel_id: int | None = Field(None, ge=1, le=2**63 - 1)
    min_severity: Severity | None = None
    severities: list[Severity] | None = Field(None, max_length=4)
    rules: Filter = Field(None, description="Only these rule names.")
    device_kinds: Filter = None
    tags: Filter = Field(None, description="Devices with one of these tags (metadata.tags).")
    transitions: list[Kind] | None = Field(
        None, max_length=5, description="Default: every transition and reminders."
    )
    recipients: list[Text] | None = Field(None, max_length=100)
    language: Literal["en", "zh"] | None = None
    quiet_start: time | None = None
    quiet_end: time | None = None
    quiet_tz: Annotated[str, Field(max_length=64)] | None = None
    escalation_only: bool | None = None
    position: int | None = Field(None, ge=-1000000, le=1000000)
    enabled: bool | None = None

    _tz = field_validator("quiet_tz")(_zone)

    @field_validator("quiet_start", "quiet_end")
    @classmethod
    def _local_time(cls, value: time | None) -> time | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("a wall-clock time without offset; the zone is quiet_tz")
        return value

    @model_validator(mode="after")
    def _quiet_pair(self) -> RouteFields:
        if ("quiet_start" in self.model_fields_set) != ("quiet_end" in self.model_fields_set):
            raise ValueError("quiet_start and quiet_end are set together")
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError("quiet_start and quiet_end are both set or both null")
        return self


class RouteCreate(RouteFields):
    project_id: ProjectId = None
    name: Name
    channel_id: int = Field(ge=1, le=2**63 - 1)  # type: ignore[assignment]


class RouteUpdate(RouteFields):
    name: Name | None = None


class Route(BaseModel):
    id: int
    project_id: str | None
    name: str
    channel_id: int
    min_severity: str | None
    severities: list[str] | None
    rules: list[str] | None
    device_kinds: list[str] | None
    tags: list[str] | None
    transitions: list[str] | None
    recipients: list[str]
    language: str
    quiet_start: time | None
    quiet_end: time | None
    quiet_tz: str
    escalation_only: bool
    position: int
    enabled: bool
    created_at: datetime
    updated_at: datetime


class RoutePage(BaseModel):
    items: list[Route]


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_s: int = Field(ge=1, le=7 * 86400, description="Seconds unacknowledged.")
    route_id: int = Field(ge=1, le=2**63 - 1)


class PolicyFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_severity: Severity | None = None
    steps: list[Step] | None = Field(None, max_length=10)
    reminder_interval_s: int | None = Field(None, ge=1, le=7 * 86400)
    reminder_max: int | None = Field(None, ge=0, le=100)
    enabled: bool | None = None


class PolicyCreate(PolicyFields):
    project_id: ProjectId = None
    name: Name


class PolicyUpdate(PolicyFields):
    name: Name | None = None


class Policy(BaseModel):
    id: int
    project_id: str | None
    name: str
    min_severity: str | None
    steps: list[Step]
    reminder_interval_s: int | None
    reminder_max: int
    enabled: bool
    created_at: datetime
    updated_at: datetime


class PolicyPage(BaseModel):
    items: list[Policy]


class TestSent(BaseModel):
    delivery_id: int
    idempotency_key: str
    state: str


class Delivery(BaseModel):
    id: int
    route_id: int | None
    channel_type: str
    kind: str
    language: str
    idempotency_key: str
    state: str
    attempts: int
    event_ts: datetime
    created_at: datetime
    next_attempt_at: datetime
    give_up_at: datetime
    last_status: str | None
    last_answer: str | None
    sent_at: datetime | None


class DeliveryPage(BaseModel):
    items: list[Delivery]
