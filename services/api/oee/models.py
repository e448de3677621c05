"""OEE settings (validated where they enter) and the shapes of the OEE answers.

Shift times are local times of the project's time zone on five-minute steps: the
maintained machine-state tables hold five-minute buckets, and every real time zone is a
whole number of quarter hours from UTC, so a shift always covers whole buckets and the
planned time is exact, never an estimate.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.core.contracts import ID_PATTERN

HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
Seconds = Annotated[float, Field(gt=0, le=86400)]
DeviceId = Annotated[str, Field(pattern=ID_PATTERN)]
LineName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
Week = 7 * 24 * 60


@functools.cache
def _zones() -> frozenset[str]:
    """IANA zone names (not every file under the zone directory is one)."""
    return frozenset(zoneinfo.available_timezones())


def parse_hhmm(value: str) -> time:
    h, m = value.split(":")
    return time(int(h), int(m))


class Shift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[^\x00]*$")]
    start: Annotated[str, Field(pattern=HHMM, description="Local start, HH:MM (5-min steps).")]
    end: Annotated[
        str,
        Field(
            pattern=HHMM,
            description="Local end, HH:MM; at or before `start`: the next day (night shift).",
        ),
    ]
    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(
        default_factory=lambda: [1, 2, 3, 4, 5, 6, 7],
        min_length=1,
        max_length=7,
        description="ISO weekdays the shift starts on (1 = Monday ... 7 = Sunday).",
    )

    @field_validator("start", "end")
    @classmethod
    def _five_minutes(cls, value: str) -> str:
        if int(value[3:]) % 5:
            raise ValueError("must be on a 5-minute step, e.g. 08:00 or 22:30")
        return value

    @field_validator("days")
    @classmethod
    def _unique_days(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError("each weekday at most once")
        return sorted(value)

    def minutes(self) -> int:
        s, e = parse_hhmm(self.start), parse_hhmm(self.end)
        length = (e.hour * 60 + e.minute) - (s.hour * 60 + s.minute)
        return length if length > 0 else length + 24 * 60


class IdealCycle(BaseModel):
    """Planned run time per item (ISO 22400 PRI): the most specific one applies."""

    model_config = ConfigDict(extra="forbid")

    default: Seconds | None = None
    lines: dict[LineName, Seconds] = Field(default_factory=dict, max_length=1000)
    machines: dict[DeviceId, Seconds] = Field(default_factory=dict, max_length=10000)


class OeeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"
    shifts: list[Shift] = Field(default_factory=list, max_length=32)
    ideal_cycle_s: IdealCycle = Field(default_factory=IdealCycle)
    reasons: dict[Annotated[str, Field(pattern=r"^-?\d{1,9}$")], Name] = Field(
        default_factory=dict,
        max_length=1000,
        description="Downtime reason code -> name, for the Pareto.",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value not in _zones():
            raise ValueError("unknown time zone, e.g. Asia/Shanghai or UTC")
        return value

    @field_validator("shifts")
    @classmethod
    def _no_overlap(cls, shifts: list[Shift]) -> list[Shift]:
        names = [s.name for s in shifts]
        if len(set(names)) != len(names):
            raise ValueError("shift names must be unique")
        owner: dict[int, str] = {}
        for shift in shifts:
            t = parse_hhmm(shift.start)
            for day in shift.days:
                first = (day - 1) * 24 * 60 + t.hour * 60 + t.minute
                for m in range(first, first + shift.minutes(), 5):
                    other = owner.setdefault(m % Week, shift.name)
                    if other != shift.name:
                        raise ValueError(f"shifts {other!r} and {shift.name!r} overlap")
        return shifts

    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class OeeSettingsOut(OeeSettings):
    project_id: str
    updated_at: datetime | None = None
    updated_by: str | None = None


class Figures(BaseModel):
    """ISO 22400-2 times (seconds), quantities and the ratios; a ratio is null when its
    denominator is zero or unknown (no plan, no run time, no ideal cycle time)."""

    planned_shift_s: float = Field(description="Planned operation time (POT): shifts.")
    planned_downtime_s: float = Field(description="PDOT: states 0 (off) and 4 (planned stop).")
    planned_busy_s: float = Field(description="PBT = POT - PDOT.")
    run_s: float = Field(description="APT: state 1 (running).")
    idle_s: float
    down_s: float = Field(description="Unplanned downtime: state 3.")
    setup_s: float
    other_s: float = Field(description="Other state codes.")
    unknown_s: float = Field(description="Planned busy time with no state known.")
    produced: float
    good: float
    ideal_cycle_s: float | None = None
    availability: float | None = None
    effectiveness: float | None = None
    quality: float | None = None
    oee: float | None = None


class OeeRow(Figures):
    key: str | None = Field(description="Machine id, line name (null: no line), or project id.")
    line: str | None = None
    machines: int


class OeeSummary(BaseModel):
    project_id: str
    by: Literal["machine", "line", "project"]
    start: datetime
    end: datetime
    timezone: str
    planned: bool = Field(description="False: no shifts configured, every ratio is null.")
    items: list[OeeRow]


class ParetoItem(BaseModel):
    reason: int = Field(description="Reason code; 0: none given.")
    name: str | None
    seconds: float
    count: int
    share: float
    cumulative_share: float


class OeePareto(BaseModel):
    project_id: str
    start: datetime
    end: datetime
    total_seconds: float
    items: list[ParetoItem]


class TrendItem(Figures):
    shift: str
    date: str = Field(description="Local date the shift started on.")
    shift_start: datetime
    shift_end: datetime


class OeeTrend(BaseModel):
    project_id: str
    start: datetime
    end: datetime
    timezone: str
    items: list[TrendItem]
