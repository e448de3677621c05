"""Evidence report (HTML or CSV) and CSV exports of raw records and series."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from services.api.auth.guard import Reader
from services.api.errors import ApiError, not_found
from services.api.params import TimeRange, time_range
from services.api.report import export, render, service
from services.api.scope import visible_project
from services.api.series.views import DAY_S, Stream, get_series

router = APIRouter(prefix="/api/v1/projects", tags=["report"])

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _filename(*parts: str) -> str:
    return "-".join(_SAFE.sub("_", p)[:64] for p in parts) + ".csv"


def _stamp(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y%m%dT%H%MZ")


def _lang(request: Request, lang: str | None) -> str:
    if lang is not None:
        return lang
    accept = request.headers.get("accept-language", "").strip().lower()
    return "zh" if accept.startswith("zh") else "en"


@router.get(
    "/{project_id}/report",
    summary="Evidence report of a range: KPIs against targets, OEE, 5G scorecard, alarms "
    "with MTTA/MTTC, data completeness per device (HTML printable to PDF, or CSV).",
    response_class=Response,
    responses={200: {"content": {"text/html": {}, "text/csv": {}}}},
)
async def get_report(
    request: Request,
    project_id: str,
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
    format: Annotated[Literal["html", "csv"], Query(description="html or csv.")] = "html",
    lang: Annotated[
        Literal["en", "zh"] | None, Query(description="en or zh (default: Accept-Language).")
    ] = None,
) -> Response:
    engine = request.app.state.read_engine
    async with engine.connect() as conn:
        await visible_project(conn, key, project_id)
    report = await service.build(engine, project_id, rng)
    if format == "csv":
        name = _filename(project_id, "report", _stamp(rng.start), _stamp(rng.end))
        return Response(
            render.csv_report(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    page = render.html_report(report, _lang(request, lang), datetime.now(UTC))
    return Response(
        page,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": render.PAGE_CSP, "X-Content-Type-Options": "nosniff"},
    )


@router.get(
    "/{project_id}/export/series.csv",
    summary="The `series` route's points as CSV (same parameters).",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def export_series(
    request: Request,
    project_id: str,
    key: Reader,
    stream: Stream,
    field: Annotated[str, Query(max_length=128, description="As for `series`.")],
    rng: Annotated[TimeRange, Depends(time_range)],
    device: Annotated[str | None, Query(max_length=64, description="One device only.")] = None,
    bucket: Annotated[int | None, Query(ge=1, le=366 * DAY_S, description="Seconds.")] = None,
    points: Annotated[int | None, Query(ge=1, description="Most points (default 500).")] = None,
) -> Response:
    async with request.app.state.read_engine.connect() as conn:
        s = await get_series(
            request, project_id, conn, key, stream, field, rng, device, bucket, points
        )
    names = ["t", "count", "min", "max", "avg", "last"]
    if s["points"] and "p50" in s["points"][0]:
        names += ["p50", "p95", "p99"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(names)
    for p in s["points"]:
        w.writerow(
            [render._fmt_time(p[n]) if n == "t" else ("" if p[n] is None else p[n]) for n in names]
        )
    name = _filename(project_id, "series", stream, field, _stamp(rng.start), _stamp(rng.end))
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    "/{project_id}/export/{stream}.csv",
    summary="Raw records of one stream as CSV, streamed (at most `api.export_max_rows`).",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}},
        413: {"description": "More rows than `api.export_max_rows`: narrow the range."},
    },
)
async def export_stream(
    request: Request,
    project_id: str,
    stream: Stream,
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
    device: Annotated[str | None, Query(max_length=64, description="One device only.")] = None,
) -> StreamingResponse:
    cap: int = request.app.state.settings.api.export_max_rows
    async with request.app.state.read_engine.connect() as conn:
        await visible_project(conn, key, project_id)
        if device is not None:
            found = await conn.execute(
                sa.text("SELECT 1 FROM devices WHERE project_id = :p AND device_id = :d"),
                {"p": project_id, "d": device},
            )
            if found.first() is None:
                raise not_found(f"device {project_id}/{device}")
        rows = await export.count_rows(conn, stream, project_id, rng.start, rng.end, device)
    if rows > cap:
        raise ApiError(
            413,
            "too_large",
            f"the export would stream {rows:,} rows, at most {cap:,} are allowed "
            "(api.export_max_rows): narrow the range or name a device",
        )
    args: list[Any] = [project_id, rng.start, rng.end]
    if device is not None:
        args.append(device)
    pool = await request.app.state.fast_pool.pool()
    body = export.stream_copy(pool, export.copy_sql(stream, device is not None), args)
    parts = [project_id, stream, *([device] if device else []), _stamp(rng.start)]
    name = _filename(*parts, _stamp(rng.end))
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Rows": str(rows),
        },
    )
