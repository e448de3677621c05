"""Keeping rollups current: incremental, idempotent and bounded per run.

Each (spec, resolution) has a watermark: every bucket before it is complete. A run
re-aggregates the last few buckets before the watermark (late rows within that reach are
picked up) and then at most a bounded span of newly closed buckets, upserting with
ON CONFLICT DO UPDATE, so repeating a run changes nothing. Minutes come from raw rows,
hours from minutes. A transaction-level advisory lock lets several API processes (or a
`factory5g rollup` loop next to them) run this without doing the work twice at once.
Rows that arrive later than the re-aggregation reach stay in the raw tables only until
`rewind()` moves the watermark back over them.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api.availability import gaps
from services.api.rollups import machine, sql
from services.api.rollups.specs import RESOLUTIONS, SPECS, Spec
from services.core.settings import AvailabilitySettings

log = logging.getLogger(__name__)

GRACE: Final = timedelta(seconds=10)  # a minute is "closed" this long after it ends
RELOOK: Final[dict[str, int]] = {"1m": 5, "1h": 2}  # buckets re-aggregated each run
MAX_SPAN: Final[dict[str, timedelta]] = {"1m": timedelta(hours=6), "1h": timedelta(days=7)}
_LOCK_BASE: Final = 0x46354701  # advisory lock namespace of the rollup maintainer
GAP_FLOOR_S: Final[float] = AvailabilitySettings.model_fields["gap_floor_s"].default


def floor_to(t: datetime, seconds: int) -> datetime:
    epoch = int(t.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


@dataclass(frozen=True)
class Progress:
    spec: str
    resolution: str
    watermark: datetime | None
    caught_up: bool


async def watermarks(conn: AsyncConnection) -> dict[tuple[str, str], datetime]:
    rows = await conn.execute(sa.text("SELECT spec, resolution, watermark FROM rollup_watermarks"))
    return {(r.spec, r.resolution): r.watermark for r in rows}


async def _set_watermark(conn: AsyncConnection, spec: str, res: str, wm: datetime) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO rollup_watermarks (spec, resolution, watermark, updated_at) "
            "VALUES (:s, :r, :w, now()) ON CONFLICT (spec, resolution) "
            "DO UPDATE SET watermark = EXCLUDED.watermark, updated_at = now()"
        ),
        {"s": spec, "r": res, "w": wm},
    )


async def _first_time(
    conn: AsyncConnection, spec: Spec, res: str, after: datetime | None = None
) -> datetime | None:
    """Time of the first source row (at or after `after`): where work can start."""
    col, table = ("ts", spec.source) if res == "1m" else ("bucket", spec.table("1m"))
    where = "" if after is None else f" WHERE {col} >= :after"
    value = (
        await conn.execute(sa.text(f"SELECT min({col}) FROM {table}{where}"), {"after": after})
    ).scalar()
    return value if isinstance(value, datetime) else None


async def _step(
    conn: AsyncConnection, spec: Spec, res: str, closed: datetime, wm: datetime | None
) -> Progress:
    width = RESOLUTIONS[res]
    if wm is None:
        first = await _first_time(conn, spec, res)
        if first is None:
            return Progress(spec.name, res, None, True)
        start = floor_to(first, width)
        wm = start
    else:
        start = wm - timedelta(seconds=width * RELOOK[res])
        if closed - wm > MAX_SPAN[res]:
            # Far behind (a rewind, a quiet period): skip stretches without source rows
            # instead of walking them one bounded window at a time.
            nxt = await _first_time(conn, spec, res, start)
            if nxt is None or nxt >= closed:
                await _set_watermark(conn, spec.name, res, closed)
                return Progress(spec.name, res, closed, True)
            if nxt > wm:
                start = wm = floor_to(nxt, width)
    end = min(closed, wm + MAX_SPAN[res])
    if end <= start:
        return Progress(spec.name, res, wm, True)
    if res == "1m":
        select = sql.raw_select(spec, width, spec.cols, "a", "b", projects=False)
    else:
        minutes = sql.rollup_select(spec, "1m", spec.cols, "a", "b", projects=False)
        select = sql.rebucket_select(spec, width, spec.cols, minutes)
    await conn.execute(sa.text(sql.upsert(spec, res, select)), {"a": start, "b": end})
    new_wm = max(wm, end)
    await _set_watermark(conn, spec.name, res, new_wm)
    return Progress(spec.name, res, new_wm, new_wm >= closed)


async def _run_spec(engine: AsyncEngine, i: int, spec: Spec, now: datetime) -> list[Progress]:
    async with engine.begin() as conn:
        got = await conn.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK_BASE + i}
        )
        if not got.scalar():
            return []  # another maintainer holds this spec right now
        current = await watermarks(conn)
        minute = await _step(
            conn, spec, "1m", floor_to(now - GRACE, 60), current.get((spec.name, "1m"))
        )
        if minute.watermark is None:
            return [minute]
        hour = await _step(
            conn, spec, "1h", floor_to(minute.watermark, 3600), current.get((spec.name, "1h"))
        )
        return [minute, hour]


async def _run_gaps(engine: AsyncEngine, now: datetime, floor_s: float) -> list[Progress]:
    """The link streams' silences (services/api/availability/gaps.py) ride along with the
    rollups: same loop, same watermarks table, so one `catch_up` brings both current."""
    done = await gaps.run_once(engine, now, floor_s)
    return [Progress(gaps.SPEC, gaps.RESOLUTION, done.watermark, done.caught_up)]


async def run_once(
    engine: AsyncEngine, now: datetime | None = None, gap_floor_s: float = GAP_FLOOR_S
) -> list[Progress]:
    """One bounded pass over every spec (concurrently, one connection each): minutes
    first, then the hours they complete; beside them the link gaps and the machine states
    kept for OEE."""
    now = now or datetime.now(UTC)
    results = await asyncio.gather(
        *(_run_spec(engine, i, spec, now) for i, spec in enumerate(SPECS.values())),
        _run_gaps(engine, now, gap_floor_s),
        _run_machine(engine, now),
    )
    return [p for r in results for p in r]


async def _run_machine(engine: AsyncEngine, now: datetime) -> list[Progress]:
    done = await machine.run_once(engine, now)
    return [Progress(p.spec, p.resolution, p.watermark, p.caught_up) for p in done]


async def catch_up(
    engine: AsyncEngine,
    now: datetime | None = None,
    max_runs: int = 100_000,
    gap_floor_s: float = GAP_FLOOR_S,
) -> int:
    """Run passes until every rollup reaches the last closed bucket; returns the pass count."""
    for runs in range(1, max_runs + 1):
        progress = await run_once(engine, now, gap_floor_s)
        if all(p.caught_up for p in progress):
            return runs
    return max_runs


async def rewind(engine: AsyncEngine, since: datetime) -> None:
    """Move watermarks back to `since` so the next passes rebuild from there (late data)."""
    async with engine.begin() as conn:
        for res, width in RESOLUTIONS.items():
            await conn.execute(
                sa.text(
                    "UPDATE rollup_watermarks SET watermark = :w, updated_at = now() "
                    "WHERE resolution = :r AND watermark > :w"
                ),
                {"w": floor_to(since, width), "r": res},
            )
        await conn.execute(
            sa.text(
                "UPDATE rollup_watermarks SET watermark = :w, updated_at = now() "
                "WHERE spec = :s AND resolution = :r AND watermark > :w"
            ),
            {"w": since, "s": gaps.SPEC, "r": gaps.RESOLUTION},
        )
    await machine.rewind(engine, since)
