"""Ingest health as the database sees it: row rates, freshness, delay, dead letters, rollups.

Computed from the data itself rather than from the ingest process, so it tells the truth
even when ingest is down (rates at zero, freshness growing), and a project-scoped key sees
only its projects' share.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query

from services.api.auth.guard import Reader
from services.api.deps import Conn
from services.api.params import TimeRange, time_range
from services.api.retention import maintain as retention
from services.api.rollups.maintain import watermarks
from services.api.scope import project_filter
from services.core.tables import STREAM_TABLES

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"])
RATE_WINDOW_S = 60


@router.get(
    "/health",
    summary="Rows per second, freshness and delay per stream; dead letters by reason.",
)
async def ingest_health(
    conn: Conn,
    key: Reader,
    rng: Annotated[TimeRange, Depends(time_range)],
    project: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    visible = project_filter(key, project)
    where = "" if visible is None else " AND project_id = ANY(CAST(:projects AS text[]))"
    params: dict[str, Any] = {"w": RATE_WINDOW_S}
    if visible is not None:
        params["projects"] = visible
    now = datetime.now(UTC)
    streams: dict[str, Any] = {}
    for stream, table in STREAM_TABLES.items():
        row = (
            await conn.execute(
                sa.text(
                    "SELECT count(*) AS n, avg(extract(epoch FROM received_at - ts)) AS delay, "
                    f"max(ts) AS newest FROM {table.name} "
                    f"WHERE ts >= now() - make_interval(secs => :w){where}"
                ),
                params,
            )
        ).one()
        newest = row.newest
        if newest is None:
            newest = (
                await conn.execute(
                    sa.text(f"SELECT max(ts) FROM {table.name} WHERE true{where}"), params
                )
            ).scalar()
        streams[stream] = {
            "rows_per_s": int(row.n) / RATE_WINDOW_S,
            "mean_delay_s": None if row.delay is None else float(row.delay),
            "newest": newest,
            "freshness_s": None if newest is None else (now - newest).total_seconds(),
        }
    dl_where = "received_at >= :s AND received_at < :e"
    if visible is not None:
        dl_where += " AND project_id = ANY(CAST(:projects AS text[]))"
    dead = await conn.execute(
        sa.text(
            f"SELECT reason, count(*) AS n FROM dead_letters WHERE {dl_where} "
            "GROUP BY 1 ORDER BY 2 DESC"
        ),
        {**params, "s": rng.start, "e": rng.end},
    )
    marks = await watermarks(conn)
    kept = await retention.status(conn)
    return {
        "projects": visible,
        "rate_window_s": RATE_WINDOW_S,
        "streams": streams,
        "dead_letters": {
            "start": rng.start,
            "end": rng.end,
            "by_reason": {r.reason: int(r.n) for r in dead},
        },
        "rollups": {
            f"{spec}/{res}": {"watermark": wm, "lag_s": (now - wm).total_seconds()}
            for (spec, res), wm in sorted(marks.items())
        },
        # Disk used, policy and next drop per raw store and rollup resolution (all
        # projects: chunks are shared by them).
        "retention": kept,
    }
