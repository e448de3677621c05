"""Silences of link streams, kept incrementally: the outages' raw material.

A 5G flow is unavailable from `last message + transfer interval + survival time` until its
next message (docs/plant.md), so an outage needs only the pairs of consecutive messages
further apart than that deadline. Thirty days of one project's link rows are millions; its
silences longer than the gap floor are a handful. The maintainer stores those pairs in
`link_gaps` behind a watermark (`rollup_watermarks`, spec `link_gaps`), re-reading the last
minutes before it each pass as the rollups do, so late rows within that reach are counted;
the scorecard reads the table up to the watermark and the same SQL over raw rows after it,
so its figures do not depend on how far the maintainer has come.

Why a floor and not each flow's deadline: deadlines change (an admin sets them through the
API) and differ per profile; silences longer than the floor serve every deadline at least
as long as the floor, and changing a deadline needs no rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

SPEC: Final = "link_gaps"
RESOLUTION: Final = "gap"
RELOOK: Final = timedelta(minutes=5)  # re-read before the watermark each pass (late rows)
MAX_SPAN: Final = timedelta(hours=6)  # most new time one pass reads
GRACE: Final = timedelta(seconds=10)
_LOCK: Final = 0x46354780  # advisory lock of the gap maintainer

# Consecutive link messages of each device further apart than :floor seconds whose later
# message falls in [:a, :b); a device's first message in the window finds its predecessor
# before the window through the stream's unique index (project, device, ts, seq).
# `:projects` NULL means every project.
GAPS_SQL: Final = """
SELECT project_id, device_id, prev AS last_ts, ts AS next_ts FROM (
    SELECT l.project_id, l.device_id, l.ts, COALESCE(l.prev, (
        SELECT k.ts FROM link_kpis k
        WHERE k.project_id = l.project_id AND k.device_id = l.device_id
          AND k.ts < CAST(:a AS timestamptz)
        ORDER BY k.ts DESC LIMIT 1)) AS prev
    FROM (
        SELECT project_id, device_id, ts,
               lag(ts) OVER (PARTITION BY project_id, device_id ORDER BY ts) AS prev
        FROM link_kpis
        WHERE ts >= CAST(:a AS timestamptz) AND ts < CAST(:b AS timestamptz)
          AND (CAST(:projects AS text[]) IS NULL
               OR project_id = ANY(CAST(:projects AS text[])))
    ) AS l
) AS g
WHERE prev IS NOT NULL AND ts - prev > make_interval(secs => :floor)
"""


@dataclass(frozen=True)
class GapProgress:
    watermark: datetime | None
    caught_up: bool


async def watermark(conn: AsyncConnection) -> datetime | None:
    value = (
        await conn.execute(
            sa.text("SELECT watermark FROM rollup_watermarks WHERE spec = :s AND resolution = :r"),
            {"s": SPEC, "r": RESOLUTION},
        )
    ).scalar()
    return value if isinstance(value, datetime) else None


async def _first_after(conn: AsyncConnection, after: datetime | None) -> datetime | None:
    where = "" if after is None else " WHERE ts >= :after"
    value = (
        await conn.execute(sa.text(f"SELECT min(ts) FROM link_kpis{where}"), {"after": after})
    ).scalar()
    return value if isinstance(value, datetime) else None


async def _set(conn: AsyncConnection, wm: datetime) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO rollup_watermarks (spec, resolution, watermark, updated_at) "
            "VALUES (:s, :r, :w, now()) ON CONFLICT (spec, resolution) "
            "DO UPDATE SET watermark = EXCLUDED.watermark, updated_at = now()"
        ),
        {"s": SPEC, "r": RESOLUTION, "w": wm},
    )


async def run_once(engine: AsyncEngine, now: datetime, floor_s: float) -> GapProgress:
    """One bounded pass: re-read RELOOK before the watermark, then at most MAX_SPAN more.

    Gaps whose later message lies in the window are deleted and written again, so a
    repeated pass changes nothing and a late row inside the re-read reach splits its gap."""
    closed = now - GRACE
    async with engine.begin() as conn:
        got = await conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK})
        if not got.scalar():
            return GapProgress(None, True)
        wm = await watermark(conn)
        if wm is None:
            first = await _first_after(conn, None)
            if first is None:
                return GapProgress(None, True)
            start = wm = first
        else:
            start = wm - RELOOK
            if closed - wm > MAX_SPAN:
                nxt = await _first_after(conn, start)
                if nxt is None or nxt >= closed:
                    # Nothing to read: no message means no new gap ends here (the open
                    # silence at the end is the scorecard's, from the last message).
                    await _set(conn, max(wm, closed))
                    return GapProgress(max(wm, closed), True)
                if nxt > wm:
                    start = wm = nxt
        end = min(closed, wm + MAX_SPAN)
        if end <= start:
            return GapProgress(wm, True)
        params = {"a": start, "b": end, "floor": floor_s, "projects": None}
        await conn.execute(
            sa.text("DELETE FROM link_gaps WHERE next_ts >= :a AND next_ts < :b"), params
        )
        await conn.execute(
            sa.text(
                f"INSERT INTO link_gaps (project_id, device_id, last_ts, next_ts) {GAPS_SQL} "
                "ON CONFLICT (project_id, device_id, last_ts) "
                "DO UPDATE SET next_ts = EXCLUDED.next_ts"
            ),
            params,
        )
        new_wm = max(wm, end)
        await _set(conn, new_wm)
        return GapProgress(new_wm, new_wm >= closed)
