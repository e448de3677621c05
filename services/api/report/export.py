"""Raw records of one stream as CSV, streamed from PostgreSQL's COPY to the response.

`COPY (SELECT ...) TO STDOUT WITH CSV` runs on a plain asyncpg connection; each chunk
PostgreSQL sends goes into a small queue the response drains, so memory stays at a few
chunks whatever the size, and the database's own CSV writer does the formatting (a
Python row loop would cap the rate far below PostgreSQL's). Before a byte is sent, the
rows the request would stream are counted from the rollups (exact: `cover.plan` mixes
hours, minutes and raw edges) and a request above `api.export_max_rows` is refused with
413, so the bound is known up front rather than cutting a file short.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.rollups import cover, maintain
from services.api.rollups.specs import SPECS
from services.core.streams import STREAM_DEFS

QUEUE_CHUNKS: Final = 32


def columns(stream: str) -> tuple[str, ...]:
    return STREAM_DEFS[stream].column_names


def copy_sql(stream: str, device: bool) -> str:
    """The COPY statement: $1 project, $2 start, $3 end[, $4 device], ordered by time."""
    d = STREAM_DEFS[stream]
    where = "project_id = $1 AND ts >= $2 AND ts < $3" + (" AND device_id = $4" if device else "")
    order = "ts, device_id, seq" if stream != "telemetry" else "ts, device_id, metric, seq"
    return f"SELECT {', '.join(d.column_names)} FROM {d.table} WHERE {where} ORDER BY {order}"


async def count_rows(
    conn: AsyncConnection, stream: str, project: str, start: datetime, end: datetime,
    device: str | None,
) -> int:  # fmt: skip
    """Rows the export would stream, from the rollups' counts (exact, cheap)."""
    spec = SPECS[stream]
    marks = await maintain.watermarks(conn)
    wms = {r: marks[(spec.name, r)] for r in ("1m", "1h") if (spec.name, r) in marks}
    segments = cover.plan(start, end, wms)
    n = [c for c in spec.cols if c.name == "n"]
    union, params = cover.union(spec, segments, n, 60, device=device is not None)
    params["projects"] = [project]
    if device is not None:
        params["device"] = device
    value = (
        await conn.execute(sa.text(f"SELECT coalesce(sum(n), 0) FROM ({union}) AS u"), params)
    ).scalar()
    return int(value or 0)


async def stream_copy(
    pool: Any, sql: str, args: list[Any], header: bool = True
) -> AsyncIterator[bytes]:
    """Chunks of `COPY (sql) TO STDOUT (FORMAT csv, HEADER)`, as PostgreSQL sends them."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_CHUNKS)
    failure: list[BaseException] = []

    async def sink(chunk: bytes) -> None:
        await queue.put(bytes(chunk))

    async def produce() -> None:
        try:
            async with pool.acquire() as conn:
                await conn.execute("SET TIME ZONE 'UTC'")
                await conn.copy_from_query(sql, *args, output=sink, format="csv", header=header)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            failure.append(exc)
        finally:
            await queue.put(None)

    task = asyncio.create_task(produce())
    try:
        while (chunk := await queue.get()) is not None:
            yield chunk
        if failure and not isinstance(failure[0], asyncio.CancelledError):
            raise failure[0]
    finally:
        if not task.done():
            task.cancel()
            # Drain so a producer blocked on a full queue sees its cancellation.
            while not queue.empty():
                queue.get_nowait()
        with contextlib.suppress(asyncio.CancelledError):
            await task
