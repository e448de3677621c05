"""The floor map's queries and the floor-plan checks; the views stay thin.

Positions are read per AGV through the stream table's unique index (project, device, ts),
never by a project-wide scan: `agv_status` and `link_kpis` have no (project, ts) index
(`UNINDEXED_BY_PROJECT`), so every query starts from the project's devices in the registry.

The heatmap pairs each link record of an AGV's 5G module with where the AGV was: both
streams are cut into `BUCKET_S`-second buckets (`time_bucket`), the AGV's mean position
in a bucket places every link record of its module in the same bucket, and a cell's value
is the mean over the link records placed in it. A module belongs to an AGV when the
registry says so (metadata `module_of: <agv device>` on the module) or when the AGV
publishes the `link` stream under its own device id.
"""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.errors import ApiError, invalid
from services.api.floor.models import (
    AgvOnFloor,
    Extent,
    Floor,
    FloorPlan,
    HeatCell,
    Heatmap,
    TrailPoint,
    Zone,
)

BUCKET_S: Final = 5
MAX_CELLS: Final = 20_000
MAX_TRAIL_POINTS: Final = 600
UNITS: Final = {"rsrp": "dBm", "sinr": "dB"}
IMAGE_TYPES: Final = ("image/png", "image/jpeg")

_LATEST = sa.text(
    "SELECT d.device_id, s.ts, s.map_id, s.x, s.y, s.heading, s.speed, s.state, s.battery "
    "FROM devices d CROSS JOIN LATERAL ("
    " SELECT a.ts, a.map_id, a.x, a.y, a.heading, a.speed, a.state, a.battery"
    " FROM agv_status a"
    " WHERE a.project_id = d.project_id AND a.device_id = d.device_id"
    " AND a.ts >= :s AND a.ts < :e ORDER BY a.ts DESC LIMIT 1) s "
    "WHERE d.project_id = :p AND s.x IS NOT NULL AND s.y IS NOT NULL "
    "ORDER BY d.device_id"
)
# The last position of each bucket (real points, with their own times), so a long trail
# stays at most MAX_TRAIL_POINTS points per AGV.
_TRAIL = sa.text(
    "SELECT device_id, max(ts) AS ts, last(x, ts) AS x, last(y, ts) AS y FROM agv_status "
    "WHERE project_id = :p AND device_id = ANY(:devices) AND ts >= :s AND ts < :e "
    "AND x IS NOT NULL AND y IS NOT NULL AND (CAST(:map AS text) IS NULL OR map_id = :map) "
    "GROUP BY device_id, time_bucket(make_interval(secs => :w), ts) "
    "ORDER BY device_id, 2"
)
_MAP = sa.text(
    "SELECT x0, y0, x1, y1, image IS NOT NULL AS has_image, zones FROM floor_maps "
    "WHERE project_id = :p AND map_id = :map"
)
_MAPS = sa.text("SELECT map_id FROM floor_maps WHERE project_id = :p")
_HEAT = sa.text(
    "WITH pairs AS ("
    " SELECT device_id AS agv, device_id AS module FROM devices WHERE project_id = :p"
    " UNION"
    " SELECT metadata->>'module_of', device_id FROM devices"
    " WHERE project_id = :p AND metadata ? 'module_of'"
    "), pos AS ("
    " SELECT device_id AS agv, time_bucket(make_interval(secs => :w), ts) AS b,"
    " avg(x) AS x, avg(y) AS y FROM agv_status"
    " WHERE project_id = :p AND device_id IN (SELECT agv FROM pairs)"
    " AND ts >= :s AND ts < :e AND x IS NOT NULL AND y IS NOT NULL"
    " AND (CAST(:map AS text) IS NULL OR map_id = :map)"
    " GROUP BY 1, 2"
    "), link AS ("
    " SELECT device_id AS module, time_bucket(make_interval(secs => :w), ts) AS b,"
    " sum({metric}) AS total, count({metric}) AS n FROM link_kpis"
    " WHERE project_id = :p AND device_id IN (SELECT module FROM pairs)"
    " AND ts >= :s AND ts < :e"
    " GROUP BY 1, 2"
    ") "
    "SELECT floor(pos.x / :cell)::bigint AS i, floor(pos.y / :cell)::bigint AS j,"
    " sum(link.total) / sum(link.n) AS mean, sum(link.n)::bigint AS samples "
    "FROM pos JOIN pairs ON pairs.agv = pos.agv"
    " JOIN link ON link.module = pairs.module AND link.b = pos.b "
    "WHERE link.n > 0 "
    "GROUP BY 1, 2 ORDER BY 1, 2 LIMIT :limit"
)
# The metric is a column name: only these two are ever formatted into the statement.
_HEAT_SQL: Final = {m: sa.text(_HEAT.text.format(metric=m)) for m in UNITS}


def _zones(raw: Any) -> list[Zone]:
    return [Zone.model_validate(z) for z in raw or []]


async def floor(
    conn: AsyncConnection,
    project_id: str,
    map_id: str | None,
    start: datetime,
    end: datetime,
    trail_minutes: int,
) -> Floor:
    """Each AGV's latest position in [start, end) with its trail of the last minutes."""
    params = {"p": project_id, "map": map_id, "s": start, "e": end}
    latest = (await conn.execute(_LATEST, params)).all()
    rows = [r for r in latest if map_id is None or r.map_id == map_id]
    trail_start = max(start, end - timedelta(minutes=trail_minutes))
    width = max(1.0, trail_minutes * 60 / MAX_TRAIL_POINTS)
    trails: dict[str, list[TrailPoint]] = {r.device_id: [] for r in rows}
    if rows:
        for t in await conn.execute(
            _TRAIL, {**params, "s": trail_start, "devices": list(trails), "w": width}
        ):
            trails[t.device_id].append(TrailPoint(ts=t.ts, x=t.x, y=t.y))
    agvs = [
        AgvOnFloor(
            device_id=r.device_id,
            ts=r.ts,
            map_id=r.map_id,
            x=r.x,
            y=r.y,
            heading=r.heading,
            speed=r.speed,
            state=r.state,
            battery=r.battery,
            trail=trails[r.device_id],
        )
        for r in rows
    ]
    maps = {m for (m,) in await conn.execute(_MAPS, {"p": project_id})}
    maps |= {r.map_id for r in latest if r.map_id is not None}
    extent, image, zones = None, False, []
    if map_id is not None:
        m = (await conn.execute(_MAP, params)).first()
        if m is not None:
            image, zones = m.has_image, _zones(m.zones)
            if m.x0 is not None:
                extent = Extent(x0=m.x0, y0=m.y0, x1=m.x1, y1=m.y1)
    return Floor(
        project_id=project_id,
        map_id=map_id,
        maps=sorted(maps),
        extent=extent,
        image=image,
        zones=zones,
        trail_minutes=trail_minutes,
        agvs=agvs,
    )


async def heatmap(
    conn: AsyncConnection,
    project_id: str,
    map_id: str | None,
    start: datetime,
    end: datetime,
    metric: Literal["rsrp", "sinr"],
    cell: float,
) -> Heatmap:
    """Mean RSRP or SINR of the AGV-mounted modules per `cell`-metre square of the floor."""
    params = {
        "p": project_id,
        "map": map_id,
        "s": start,
        "e": end,
        "w": float(BUCKET_S),
        "cell": cell,
        "limit": MAX_CELLS + 1,
    }
    rows = (await conn.execute(_HEAT_SQL[metric], params)).all()
    if len(rows) > MAX_CELLS:
        raise invalid(
            f"the heatmap would have more than {MAX_CELLS} cells of {cell} m; choose a larger "
            "cell or a smaller map"
        )
    return Heatmap(
        project_id=project_id,
        map_id=map_id,
        metric=metric,
        unit=UNITS[metric],
        cell=cell,
        bucket_s=BUCKET_S,
        start=start,
        end=end,
        cells=[
            HeatCell(x0=r.i * cell, y0=r.j * cell, mean=r.mean, samples=r.samples) for r in rows
        ],
    )


# --------------------------------------------------------------------------- floor plans

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless...) carrying the image size.
_SOF: Final = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE})


def _unsupported(message: str) -> ApiError:
    return ApiError(415, "unsupported_media_type", message)


def _png_size(data: bytes) -> tuple[int, int]:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise _unsupported("the PNG has no image header (IHDR); the file is truncated or broken")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF and i + 9 <= len(data):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise _unsupported("the JPEG has no frame header (SOF); the file is truncated or broken")


def sniff_image(declared: str | None, data: bytes) -> tuple[str, int, int]:
    """(content type, width, height) of an uploaded floor plan, judged by its bytes.

    Only PNG and JPEG are stored. SVG is refused rather than sanitised: it is a document
    that can carry script and external references, and a sanitiser is one more parser
    to trust. The declared Content-Type must agree with the bytes, so a mislabelled file
    is never served under a type its bytes do not have."""
    declared = (declared or "").split(";")[0].strip().lower()
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if "svg" in declared or head.startswith(b"<") or b"<svg" in data[:4096].lower():
        raise _unsupported(
            "SVG (or other markup) is refused: it can carry scripts; upload the plan as PNG or JPEG"
        )
    if data.startswith(_PNG_SIGNATURE):
        actual = "image/png"
    elif data.startswith(b"\xff\xd8\xff"):
        actual = "image/jpeg"
    else:
        raise _unsupported("the floor plan must be a PNG or JPEG image")
    if declared != actual:
        raise _unsupported(
            f"Content-Type {declared or '(none)'!r} does not match the {actual} sent"
        )
    width, height = _png_size(data) if actual == "image/png" else _jpeg_size(data)
    if width == 0 or height == 0:
        raise _unsupported("the image has no pixels (width or height 0)")
    return actual, width, height


_PUT_IMAGE = sa.text(
    "INSERT INTO floor_maps (project_id, map_id, x0, y0, x1, y1, image, image_type) "
    "VALUES (:p, :map, :x0, :y0, :x1, :y1, :image, :type) "
    "ON CONFLICT (project_id, map_id) DO UPDATE SET x0 = excluded.x0, y0 = excluded.y0, "
    "x1 = excluded.x1, y1 = excluded.y1, image = excluded.image, "
    "image_type = excluded.image_type, updated_at = now()"
)
_PUT_ZONES = sa.text(
    "INSERT INTO floor_maps (project_id, map_id, zones) VALUES (:p, :map, CAST(:zones AS jsonb)) "
    "ON CONFLICT (project_id, map_id) DO UPDATE SET zones = excluded.zones, updated_at = now() "
    "RETURNING (SELECT zones FROM floor_maps WHERE project_id = :p AND map_id = :map)"
)
_GET_IMAGE = sa.text(
    "SELECT image, image_type FROM floor_maps "
    "WHERE project_id = :p AND map_id = :map AND image IS NOT NULL"
)


async def store_plan(
    conn: AsyncConnection,
    project_id: str,
    map_id: str,
    extent: Extent,
    content_type: str,
    data: bytes,
    size: tuple[int, int],
) -> FloorPlan:
    await conn.execute(
        _PUT_IMAGE,
        {
            "p": project_id,
            "map": map_id,
            **extent.model_dump(),
            "image": data,
            "type": content_type,
        },
    )
    return FloorPlan(
        project_id=project_id,
        map_id=map_id,
        content_type=content_type,
        bytes=len(data),
        width=size[0],
        height=size[1],
        extent=extent,
    )


async def load_plan(
    conn: AsyncConnection, project_id: str, map_id: str
) -> tuple[bytes, str] | None:
    row = (await conn.execute(_GET_IMAGE, {"p": project_id, "map": map_id})).first()
    return None if row is None else (bytes(row.image), row.image_type)


async def store_zones(
    conn: AsyncConnection, project_id: str, map_id: str, zones: list[Zone]
) -> list[Zone]:
    """Replace the map's zones; returns the zones it had before (for the audit trail)."""
    value = orjson.dumps([z.model_dump(exclude_none=True) for z in zones]).decode()
    before = (
        await conn.execute(_PUT_ZONES, {"p": project_id, "map": map_id, "zones": value})
    ).scalar()
    return _zones(before)
