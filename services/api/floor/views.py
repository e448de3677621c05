"""Routes of the floor map: `floor`, `floor/heatmap`, `floor/maps/{map_id}/image|zones`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from services.api.audit import record as audit
from services.api.audit.record import acting
from services.api.auth.guard import Admin, Reader
from services.api.deps import Conn, TxConn
from services.api.errors import ApiError, ErrorBody, invalid, not_found
from services.api.floor import service
from services.api.floor.models import Extent, Floor, FloorPlan, Heatmap, Zones
from services.api.params import TimeRange, time_range
from services.api.scope import visible_project
from services.core.contracts import ID_PATTERN

router = APIRouter(prefix="/api/v1/projects/{project_id}/floor", tags=["floor"])

MapQuery = Annotated[
    str | None,
    Query(
        alias="map",
        pattern=ID_PATTERN,
        description="Map id (VDA 5050 mapId); absent: every position, whatever its map.",
    ),
]
MapPath = Annotated[str, Path(pattern=ID_PATTERN)]
# Served images are never interpreted as a document, even if a browser opens them directly.
IMAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, max-age=60",
}


@router.get("", response_model=Floor, summary="AGVs on the floor: positions, trails, zones.")
async def get_floor(
    project_id: str,
    conn: Conn,
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
    map_id: MapQuery = None,
    trail_minutes: Annotated[
        int, Query(ge=0, le=120, description="Trail length before `end`, minutes.")
    ] = 10,
) -> Floor:
    await visible_project(conn, key, project_id)
    return await service.floor(conn, project_id, map_id, rng.start, rng.end, trail_minutes)


@router.get(
    "/heatmap",
    response_model=Heatmap,
    summary="5G coverage by position: mean RSRP or SINR of AGV-mounted modules per cell.",
)
async def get_heatmap(
    project_id: str,
    conn: Conn,
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
    map_id: MapQuery = None,
    metric: Literal["rsrp", "sinr"] = "rsrp",
    cell: Annotated[float, Query(ge=0.1, le=1000, description="Cell edge, metres.")] = 2.0,
) -> Heatmap:
    await visible_project(conn, key, project_id)
    return await service.heatmap(conn, project_id, map_id, rng.start, rng.end, metric, cell)


@router.put(
    "/maps/{map_id}/image",
    response_model=FloorPlan,
    responses={
        413: {"model": ErrorBody, "description": "The image is larger than `api.max_body_bytes`."},
        415: {"model": ErrorBody, "description": "Not a PNG or JPEG, SVG, or mislabelled."},
    },
    summary="Upload a floor-plan image (PNG or JPEG, admin) with the extent it covers.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in service.IMAGE_TYPES
            },
        }
    },
)
async def put_image(
    request: Request,
    project_id: str,
    map_id: MapPath,
    conn: TxConn,
    key: Admin,
    x0: Annotated[float, Query(ge=-1e6, le=1e6, description="Left edge, metres.")],
    y0: Annotated[float, Query(ge=-1e6, le=1e6, description="Bottom edge, metres.")],
    x1: Annotated[float, Query(ge=-1e6, le=1e6, description="Right edge, metres.")],
    y1: Annotated[float, Query(ge=-1e6, le=1e6, description="Top edge, metres.")],
) -> FloorPlan:
    if x1 <= x0 or y1 <= y0:
        raise invalid("the extent must have x1 > x0 and y1 > y0")
    await visible_project(conn, key, project_id)
    data = await request.body()
    cap: int = request.app.state.settings.api.max_body_bytes
    if len(data) > cap:  # the request limit refuses it first; kept should that change
        raise ApiError(413, "payload_too_large", f"the image is larger than {cap} bytes")
    kind, width, height = service.sniff_image(request.headers.get("content-type"), data)
    extent = Extent(x0=x0, y0=y0, x1=x1, y1=y1)
    plan = await service.store_plan(conn, project_id, map_id, extent, kind, data, (width, height))
    await audit.record(
        conn,
        acting(request, key),
        "floor.image",
        "floor_map",
        f"{project_id}/{map_id}",
        project=project_id,
        after=plan.model_dump(),
    )
    await conn.commit()
    return plan


@router.get(
    "/maps/{map_id}/image",
    response_class=Response,
    responses={200: {"content": {t: {} for t in service.IMAGE_TYPES}}},
    summary="The floor-plan image of a map.",
)
async def get_image(project_id: str, map_id: MapPath, conn: Conn, key: Reader) -> Response:
    await visible_project(conn, key, project_id)
    found = await service.load_plan(conn, project_id, map_id)
    if found is None:
        raise not_found(f"floor plan of map {map_id!r}")
    data, kind = found
    return Response(data, media_type=kind, headers=IMAGE_HEADERS)


@router.put(
    "/maps/{map_id}/zones",
    response_model=Zones,
    summary="Replace the named zones of a map (admin).",
)
async def put_zones(
    request: Request, project_id: str, map_id: MapPath, body: Zones, conn: TxConn, key: Admin
) -> Zones:
    await visible_project(conn, key, project_id)
    before = await service.store_zones(conn, project_id, map_id, body.zones)
    await audit.record(
        conn,
        acting(request, key),
        "floor.zones",
        "floor_map",
        f"{project_id}/{map_id}",
        project=project_id,
        before={"zones": [z.model_dump(exclude_none=True) for z in before]},
        after={"zones": [z.model_dump(exclude_none=True) for z in body.zones]},
    )
    await conn.commit()
    return body
