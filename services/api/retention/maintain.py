"""Applying retention: `drop_chunks` on the raw hypertables, deletes on the rollups.

The Apache edition of TimescaleDB has no retention policies, so the platform runs them
itself (the API's background loop, or `factory5g retention`). Policies live in
`retention_policies` (no row: kept for ever). A raw table is never dropped past what the
per-minute rollups have aggregated (their watermark, less the buckets a pass looks at
again and an hour of margin for the window functions' look-back), and per-minute rollups
never past what the hourly ones have: otherwise a drop would lose data no rollup holds, or
a later pass would re-aggregate an hour from half its minutes. A table whose rollups never
ran is not dropped at all. The owner's function `retention_drop` (0009_admin) does the
dropping and refuses anything the policy still keeps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api.report import ledger
from services.api.rollups.maintain import RELOOK, watermarks
from services.api.rollups.specs import RESOLUTIONS, SPECS

log = logging.getLogger(__name__)

RAW_TARGETS: Final = (
    "inspections",
    "agv_status",
    "link_kpis",
    "telemetry",
    "alarm_events",
    "dead_letters",
)
ROLLUP_TARGETS: Final = {"rollup_1m": "1m", "rollup_1h": "1h"}
TARGETS: Final = (*RAW_TARGETS, *ROLLUP_TARGETS)
TIME_COLUMN: Final = {t: "ts" for t in RAW_TARGETS} | {"dead_letters": "received_at"}
MARGIN: Final = timedelta(hours=1)
_LOCK: Final = 0x46354702  # advisory lock: one retention pass at a time


@dataclass(frozen=True)
class Outcome:
    target: str
    cutoff: datetime | None  # None: nothing may be dropped yet
    dropped: int  # chunks (raw) or rows (rollups)
    held_back_by: str | None = None


async def safe_before(
    conn: AsyncConnection, target: str, marks: dict[tuple[str, str], datetime]
) -> tuple[datetime | None, str | None]:
    """How far `target` may be dropped without a rollup missing data: (time, why) when a
    rollup reads it, (None, why) when nothing is safe yet (a rollup with data to read
    never ran), and (None, None) when no rollup reads it (alarm events, dead letters,
    hourly rollups)."""
    if target in ROLLUP_TARGETS:
        if ROLLUP_TARGETS[target] != "1m":
            return None, None
        fed, res = list(SPECS.values()), "1h"
    else:
        fed, res = [s for s in SPECS.values() if s.source == target], "1m"
        if not fed:
            return None, None
    held: list[datetime] = []
    for spec in fed:
        mark = marks.get((spec.name, res))
        if mark is not None:
            held.append(mark)
            continue
        # No watermark: harmless only while the rollup has nothing to read.
        source = spec.source if res == "1m" else spec.table("1m")
        if (await conn.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {source})"))).scalar():
            return None, f"{res} rollups have not run"
    if res == "1m" and target in ledger.SOURCES:
        # The loss ledger counts raw records too; once it has run, it holds drops back
        # like a rollup (its re-read reach is shorter than the minute rollups').
        mark = marks.get((ledger.SPEC, ledger.RESOLUTION))
        if mark is not None:
            held.append(mark)
    if not held:
        return None, None
    reach = timedelta(seconds=RELOOK[res] * RESOLUTIONS[res])
    return min(held) - reach - MARGIN, f"{res} rollup watermark"


async def run_once(conn: AsyncConnection, now: datetime | None = None) -> list[Outcome]:
    """One pass over every policy, on `conn` (the caller commits)."""
    got = (
        await conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK})
    ).scalar()
    if not got:
        return []
    current = now or (await conn.execute(sa.text("SELECT now()"))).scalar_one()
    policies = (
        await conn.execute(sa.text("SELECT target, keep FROM retention_policies ORDER BY 1"))
    ).all()
    marks = await watermarks(conn)
    out: list[Outcome] = []
    for target, keep in policies:
        cutoff = current - keep
        cap, why = await safe_before(conn, target, marks)
        if why is not None and cap is None:
            out.append(Outcome(target, None, 0, why))
            continue
        held = None
        if cap is not None and cap < cutoff:
            cutoff, held = cap, why
        dropped = (
            await conn.execute(sa.text("SELECT retention_drop(:t, :c)"), {"t": target, "c": cutoff})
        ).scalar_one()
        out.append(Outcome(target, cutoff, int(dropped), held))
    return out


async def run(engine: AsyncEngine) -> list[Outcome]:
    async with engine.begin() as conn:
        outcomes = await run_once(conn)
    for o in outcomes:
        if o.dropped:
            log.info("retention: %s dropped %d before %s", o.target, o.dropped, o.cutoff)
    return outcomes


async def status(conn: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Per target: bytes on disk, the policy, the oldest data and when it is next dropped."""
    keeps = {
        r.target: r.keep
        for r in await conn.execute(sa.text("SELECT target, keep FROM retention_policies"))
    }
    out: dict[str, dict[str, Any]] = {}
    for table in RAW_TARGETS:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT hypertable_size(CAST(:t AS regclass)) AS bytes, "
                    "(SELECT min(range_end) FROM timescaledb_information.chunks "
                    " WHERE hypertable_schema = 'public' AND hypertable_name = :n) AS first_end"
                ),
                {"t": table, "n": table},
            )
        ).one()
        keep = keeps.get(table)
        out[table] = {
            "bytes": int(row.bytes or 0),
            "keep_s": None if keep is None else keep.total_seconds(),
            # The oldest chunk goes once all of it is older than the policy keeps.
            "next_drop_at": None if keep is None or row.first_end is None else row.first_end + keep,
        }
    for target, res in ROLLUP_TARGETS.items():
        tables = [s.table(res) for s in SPECS.values()]
        size = 0
        first: datetime | None = None
        for table in tables:
            row = (
                await conn.execute(
                    sa.text(
                        f"SELECT pg_total_relation_size(CAST(:t AS regclass)) AS bytes, "
                        f"min(bucket) AS first FROM {table}"
                    ),
                    {"t": table},
                )
            ).one()
            size += int(row.bytes or 0)
            if row.first is not None and (first is None or row.first < first):
                first = row.first
        keep = keeps.get(target)
        width = timedelta(seconds=RESOLUTIONS[res])
        out[target] = {
            "bytes": size,
            "keep_s": None if keep is None else keep.total_seconds(),
            "next_drop_at": None if keep is None or first is None else first + width + keep,
        }
    return out
