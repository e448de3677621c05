"""Series: time-bucketed aggregates of one numeric field, for a device or a whole project.

The bucket is either asked for or derived from a maximum number of points (rounded up to a
readable step). Buckets that are whole minutes or hours are read from the rollups where
they are complete and from raw rows elsewhere (see rollups.cover); other widths read raw
rows. Percentiles are offered where they matter and can be merged: the 5G latency.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from services.api.auth.guard import Reader
from services.api.deps import Conn
from services.api.errors import invalid, not_found
from services.api.params import TimeRange, time_range
from services.api.rollups import cover, maintain
from services.api.rollups.histogram import LATENCY_BUCKET_COLUMNS, percentile
from services.api.rollups.specs import SPECS
from services.api.scope import visible_project

router = APIRouter(prefix="/api/v1/projects", tags=["series"])
Stream = Literal["inspection", "agv", "link", "telemetry"]
STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
DAY_S = 86400
METRIC_RE = re.compile(r"[A-Za-z0-9_./:-]{1,128}")
PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}


class Point(BaseModel):
    t: datetime
    count: int
    min: float | None
    max: float | None
    avg: float | None
    last: float | None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None


class Series(BaseModel):
    project_id: str
    device_id: str | None
    stream: str
    field: str
    bucket_s: int
    start: datetime
    end: datetime
    sources: list[str]
    points: list[Point]


def bucket_for(seconds: float, points: int) -> int:
    """Smallest readable step that fits the range into at most `points` buckets."""
    need = max(1, math.ceil(seconds / points))
    for step in STEPS_S:
        if step >= need:
            return step
    return math.ceil(need / DAY_S) * DAY_S


@router.get(
    "/{project_id}/series",
    response_model=Series,
    summary="Bucketed min/max/avg/last/count of one field (latency also p50/p95/p99).",
)
async def get_series(
    request: Request,
    project_id: str,
    conn: Conn,
    key: Reader,
    stream: Stream,
    field: Annotated[
        str,
        Query(max_length=128, description="Numeric field of the stream; telemetry: metric name."),
    ],
    rng: Annotated[TimeRange, Depends(time_range)],
    device: Annotated[str | None, Query(max_length=64, description="One device only.")] = None,
    bucket: Annotated[int | None, Query(ge=1, le=366 * DAY_S, description="Seconds.")] = None,
    points: Annotated[int | None, Query(ge=1, description="Most points (default 500).")] = None,
) -> dict[str, Any]:
    max_points: int = request.app.state.settings.api.max_points
    spec = SPECS[stream]
    if stream == "telemetry":
        if METRIC_RE.fullmatch(field) is None:
            raise invalid(f"field {field!r} is not a valid metric name")
        column, keys = "value", ["metric"]
    elif field in spec.fields:
        column, keys = field, []
    else:
        raise invalid(f"field {field!r} is not one of {stream}: {', '.join(spec.fields)}")
    if bucket is not None and points is not None:
        raise invalid("give bucket or points, not both")
    if points is not None and points > max_points:
        raise invalid(f"points may be at most {max_points}")
    width = bucket or bucket_for(rng.seconds, points or min(500, max_points))
    if rng.seconds / width > max_points:
        raise invalid(
            f"{math.ceil(rng.seconds / width)} points requested, at most {max_points}; "
            "widen the bucket or shorten the range"
        )
    await visible_project(conn, key, project_id)
    if device is not None:
        found = await conn.execute(
            sa.text("SELECT 1 FROM devices WHERE project_id = :p AND device_id = :d"),
            {"p": project_id, "d": device},
        )
        if found.first() is None:
            raise not_found(f"device {project_id}/{device}")

    marks = await maintain.watermarks(conn)
    wms = {res: marks[(spec.name, res)] for res in ("1m", "1h") if (spec.name, res) in marks}
    segments = cover.plan(rng.start, rng.end, wms, bucket_s=width)
    hist = stream == "link" and field == "latency_ms"
    wanted = {f"{column}_{s}" for s in ("n", "sum", "min", "max", "last")} | {"last_ts"}
    if hist:
        wanted |= set(LATENCY_BUCKET_COLUMNS)
    cols = [c for c in spec.cols if c.name in wanted]
    raw_width = 60 if width % 60 == 0 else width
    union, params = cover.union(
        spec, segments, cols, raw_width, device=device is not None, keys=keys
    )
    params.update(projects=[project_id], device=device, key_metric=field)
    hist_sel = "".join(f", sum({c})::bigint AS {c}" for c in LATENCY_BUCKET_COLUMNS) if hist else ""
    query = (
        f"SELECT time_bucket(INTERVAL '{width} seconds', bucket) AS t, "
        f"sum({column}_n)::bigint AS count, min({column}_min) AS min, max({column}_max) AS max, "
        f"sum({column}_sum) / NULLIF(sum({column}_n), 0) AS avg, "
        f"last({column}_last, last_ts) AS last{hist_sel} "
        f"FROM ({union}) AS u GROUP BY 1 ORDER BY 1"
    )
    if device is None:
        params.pop("device")
    if not keys:
        params.pop("key_metric")
    rows = (await conn.execute(sa.text(query), params)).all()
    out_points = []
    for r in rows:
        m = r._mapping
        p: dict[str, Any] = {k: m[k] for k in ("t", "count", "min", "max", "avg", "last")}
        if hist:
            counts = [int(m[c] or 0) for c in LATENCY_BUCKET_COLUMNS]
            for name, q in PERCENTILES.items():
                p[name] = percentile(counts, q)
        out_points.append(p)
    return {
        "project_id": project_id,
        "device_id": device,
        "stream": stream,
        "field": field,
        "bucket_s": width,
        "start": rng.start,
        "end": rng.end,
        "sources": sorted({s.source for s in segments}),
        "points": out_points,
    }
