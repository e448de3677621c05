"""Shapes of the floor map routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Coord = Annotated[float, Field(ge=-1e6, le=1e6)]
ZoneName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f]*$")]
Colour = Annotated[str, Field(pattern=r"^#[0-9A-Fa-f]{6}$")]


class Extent(BaseModel):
    """The rectangle of the map, in metres, that the floor-plan image covers."""

    x0: float
    y0: float
    x1: float
    y1: float


class Zone(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ZoneName
    polygon: list[tuple[Coord, Coord]] = Field(
        min_length=3, max_length=200, description="Corners [x, y] in map metres, in order."
    )
    colour: Colour | None = Field(None, description="Fill colour, e.g. #ff8800.")


class Zones(BaseModel):
    model_config = ConfigDict(extra="forbid")

    zones: list[Zone] = Field(max_length=100)


class TrailPoint(BaseModel):
    ts: datetime
    x: float
    y: float


class AgvOnFloor(BaseModel):
    device_id: str
    ts: datetime
    map_id: str | None
    x: float
    y: float
    heading: float | None
    speed: float | None
    state: str
    battery: float
    trail: list[TrailPoint]


class Floor(BaseModel):
    project_id: str
    map_id: str | None = Field(description="The map shown; null: every position, any map.")
    maps: list[str] = Field(description="Maps of the project: with a plan or zones, or in use.")
    extent: Extent | None
    image: bool = Field(description="A floor-plan image is stored for the map.")
    zones: list[Zone]
    trail_minutes: int
    agvs: list[AgvOnFloor]


class HeatCell(BaseModel):
    x0: float = Field(description="Lower-left corner of the cell, metres.")
    y0: float
    mean: float
    samples: int = Field(description="Link records averaged in the cell.")


class Heatmap(BaseModel):
    project_id: str
    map_id: str | None
    metric: Literal["rsrp", "sinr"]
    unit: str
    cell: float
    bucket_s: int = Field(description="Window pairing a link record with the AGV position.")
    start: datetime
    end: datetime
    cells: list[HeatCell]


class FloorPlan(BaseModel):
    project_id: str
    map_id: str
    content_type: str
    bytes: int
    width: int | None
    height: int | None
    extent: Extent
