"""Shapes of the 5G service availability scorecard and of a flow's settings."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.api.projects.models import NO_NUL


class Percentiles(BaseModel):
    p50: float | None
    p95: float | None
    p99: float | None


class Bands(BaseModel):
    """Share of link samples per quality band (docs/plant.md), None without samples."""

    excellent: float | None
    good: float | None
    fair: float | None
    poor: float | None


class Targets(BaseModel):
    availability_pct: float
    latency_p99_ms: float


class Verdict(BaseModel):
    availability: bool | None = Field(description="availability_pct >= target; None: no data")
    latency_p99: bool | None = Field(description="latency p99 <= target; None: no samples")


class FlowAvailability(BaseModel):
    device_id: str
    profile: str | None = Field(
        description="Profile whose settings apply; * = the project's; None = the defaults"
    )
    transfer_interval_s: float
    survival_time_s: float
    measured_s: float = Field(description="Seconds of the range since the flow was first seen")
    unavailable_s: float
    availability_pct: float | None
    outages: int
    longest_outage_s: float
    samples: int
    latency_ms: Percentiles
    rsrp_bands: Bands
    sinr_bands: Bands
    met: Verdict


class ProjectAvailability(BaseModel):
    flows: int
    flows_meeting_target: int
    measured_s: float
    unavailable_s: float
    availability_pct: float | None
    outages: int
    longest_outage_s: float
    samples: int
    latency_ms: Percentiles
    rsrp_bands: Bands
    sinr_bands: Bands
    met: Verdict


class Scorecard(BaseModel):
    project_id: str
    start: datetime
    end: datetime
    targets: Targets
    project: ProjectAvailability
    devices: list[FlowAvailability]


Profile = str


class FlowSettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str = Field(
        "*",
        min_length=1,
        max_length=64,
        pattern=NO_NUL,
        description="Device profile these settings apply to; * = the project's default.",
    )
    transfer_interval_s: float = Field(
        gt=0, le=86_400, allow_inf_nan=False, description="Transfer interval in seconds."
    )
    survival_time_s: float = Field(
        ge=0, le=86_400, allow_inf_nan=False, description="Survival time in seconds."
    )


class FlowSettings(BaseModel):
    profile: str
    transfer_interval_s: float
    survival_time_s: float
    updated_at: datetime


class FlowSettingsList(BaseModel):
    defaults: FlowSettingsIn
    items: list[FlowSettings]
