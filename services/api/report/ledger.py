"""The loss ledger: how many records each device sent, from its counters, kept per hour.

Every record carries a counter: `seq` of the native streams (one counter per device, as the
device guide asks), VDA 5050 `headerId` (stored as `seq` of the AGV stream), and Sparkplug
`seq`, 0-255 wrapping, one counter per edge node shared by the node and its devices (so
Sparkplug records are counted per node, the part of the device id before the first `.`).
Records of a device, ordered by (ts, seq), each step from the previous record's counter `p`
to this one's `c`:

- native / VDA 5050: `c = p` is a repeat (0 expected); `c > p` expects `c - p` records (the
  `c - p - 1` in between were lost); `c < p` is a reset (the device restarted its counter):
  one record expected, the reset counted;
- Sparkplug: `c = p` a repeat; `c = 0` after anything but 255 a reset (a BIRTH starts at 0);
  otherwise `(c - p) mod 256` expected, so 255 -> 0 is one step and 250 -> 3 loses 8;
- the first record a device ever sent expects one.

Received is the number of distinct (ts, seq) records stored (a telemetry record stored as
one row per metric is one record); lost = expected - (received - repeats).

A 30-day report cannot walk those rows, so `catch_up` keeps `rollup_ledger_1m`: per
(project, device, counter, minute) received, repeats, expected, resets, and the minute's
first and last counter values. The step into a minute's first record is counted in that
minute, from the last counter value of the device's latest earlier minute in the table:
losses across minute boundaries (and across a silence of any length) are not missed, and
the ledger of any set of minutes is a plain sum. That makes hours a plain merge of their
minutes (`rollup_ledger_1h`), and a range reads whole hours plus the minutes at its edges.
Each pass re-reads the last `RELOOK` minutes before the watermark and everything after it
up to now (the open minute included), so late rows within that reach and the current
minute are counted; older late rows wait for `maintain.rewind`, like the rollups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api.rollups.maintain import floor_to

SPEC: Final = "ledger"
RESOLUTION: Final = "1m"  # the watermark's: minutes before it are complete
TABLE: Final = "rollup_ledger_1m"
HOUR_TABLE: Final = "rollup_ledger_1h"
MINUTE: Final = 60
HOUR: Final = 3600
RELOOK: Final = timedelta(minutes=2)  # re-read before the watermark each pass
SPAN: Final = timedelta(hours=6)  # most raw time one statement reads
SPARKPLUG_KINDS: Final = ("spb-node", "spb-device")
SOURCES: Final = ("inspections", "agv_status", "link_kpis", "telemetry", "telemetry_text")
_LOCK: Final = 0x46354701 + 0x100  # beside the rollup maintainer's advisory locks

_SOURCE_SQL = " UNION ALL ".join(
    f"SELECT project_id, device_id, ts, seq FROM {t} "
    "WHERE ts >= CAST(:a AS timestamptz) AND ts < CAST(:b AS timestamptz)"
    for t in SOURCES
)
_SPB = ", ".join(f"'{k}'" for k in SPARKPLUG_KINDS)

# One window [a, b) of whole minutes: records, their steps, and one upsert per minute.
# Rows of one record (a telemetry record's metrics; a Sparkplug message's numeric and text
# values) are adjacent in (ts, seq) order: a row with the previous row's ts and seq is the
# same record, neither received again nor a repeat, so no DISTINCT (a sort) is needed.
UPSERT_SQL: Final = f"""
WITH keyed AS (
    SELECT s.project_id,
        CASE WHEN d.kind IN ({_SPB}) THEN split_part(s.device_id, '.', 1)
             ELSE s.device_id END AS device_id,
        CASE WHEN d.kind IN ({_SPB}) THEN 'sparkplug' ELSE 'seq' END AS counter,
        s.ts, s.seq
    FROM ({_SOURCE_SQL}) AS s
    LEFT JOIN devices d ON d.project_id = s.project_id AND d.device_id = s.device_id
), ordered AS (
    SELECT k.*, lag(seq) OVER w AS prev, lag(ts) OVER w AS prev_ts,
        lead(ts) OVER w AS next_ts, row_number() OVER w AS rn
    FROM keyed k
    WINDOW w AS (PARTITION BY project_id, device_id, counter ORDER BY ts, seq)
), linked AS (
    SELECT o.project_id, o.device_id, o.counter, o.ts, o.seq, o.next_ts,
        o.rn > 1 AND o.prev_ts = o.ts AND o.prev = o.seq AS same_record,
        CASE WHEN o.rn > 1 THEN o.prev ELSE (
            SELECT l.last_seq FROM {TABLE} l
            WHERE l.project_id = o.project_id AND l.device_id = o.device_id
              AND l.counter = o.counter AND l.bucket < CAST(:a AS timestamptz)
            ORDER BY l.bucket DESC LIMIT 1) END AS p
    FROM ordered o
), stepped AS (
    SELECT project_id, device_id, counter, ts, seq, same_record,
        time_bucket(INTERVAL '1 minute', ts) AS bucket,
        CASE WHEN p IS NULL THEN 1
             WHEN seq = p THEN 0
             WHEN counter = 'sparkplug' AND seq = 0 AND p <> 255 THEN 1
             WHEN counter = 'sparkplug' THEN ((seq - p) % 256 + 256) % 256
             WHEN seq > p THEN seq - p
             ELSE 1 END AS step,
        CASE WHEN p IS NULL OR seq = p THEN false
             WHEN counter = 'sparkplug' THEN seq = 0 AND p <> 255
             ELSE seq < p END AS reset,
        CASE WHEN next_ts IS NULL THEN true
             ELSE time_bucket(INTERVAL '1 minute', next_ts)
                  <> time_bucket(INTERVAL '1 minute', ts)
             END AS last_in_bucket
    FROM linked
)
INSERT INTO {TABLE} (bucket, project_id, device_id, counter, received, repeats, expected,
                     resets, first_seq, last_seq, first_ts, last_ts)
SELECT bucket, project_id, device_id, counter, count(*) FILTER (WHERE NOT same_record),
    count(*) FILTER (WHERE step = 0 AND NOT same_record), sum(step),
    count(*) FILTER (WHERE reset), first(seq, ts),
    max(seq) FILTER (WHERE last_in_bucket), min(ts), max(ts)
FROM stepped GROUP BY bucket, project_id, device_id, counter
ORDER BY project_id, device_id, counter, bucket
ON CONFLICT (project_id, device_id, counter, bucket) DO UPDATE SET
    received = EXCLUDED.received, repeats = EXCLUDED.repeats, expected = EXCLUDED.expected,
    resets = EXCLUDED.resets, first_seq = EXCLUDED.first_seq, last_seq = EXCLUDED.last_seq,
    first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts
"""

_COLS: Final = "received, repeats, expected, resets, first_seq, last_seq, first_ts, last_ts"
# Hours [a, b) as merges of their minutes: sums, and the first / last minute's values.
HOURS_SQL: Final = f"""
INSERT INTO {HOUR_TABLE} (bucket, project_id, device_id, counter, {_COLS})
SELECT time_bucket(INTERVAL '1 hour', bucket), project_id, device_id, counter,
    sum(received), sum(repeats), sum(expected), sum(resets), first(first_seq, bucket),
    last(last_seq, bucket), min(first_ts), max(last_ts)
FROM {TABLE}
WHERE bucket >= CAST(:a AS timestamptz) AND bucket < CAST(:b AS timestamptz)
GROUP BY 1, 2, 3, 4 ORDER BY 2, 3, 4, 1
ON CONFLICT (project_id, device_id, counter, bucket) DO UPDATE SET
    received = EXCLUDED.received, repeats = EXCLUDED.repeats, expected = EXCLUDED.expected,
    resets = EXCLUDED.resets, first_seq = EXCLUDED.first_seq, last_seq = EXCLUDED.last_seq,
    first_ts = EXCLUDED.first_ts, last_ts = EXCLUDED.last_ts
"""


async def _watermark(conn: AsyncConnection) -> datetime | None:
    value = (
        await conn.execute(
            sa.text("SELECT watermark FROM rollup_watermarks WHERE spec = :s AND resolution = :r"),
            {"s": SPEC, "r": RESOLUTION},
        )
    ).scalar()
    return value if isinstance(value, datetime) else None


async def _first_time(conn: AsyncConnection, after: datetime | None) -> datetime | None:
    where = "" if after is None else " WHERE ts >= :after"
    firsts = [
        (await conn.execute(sa.text(f"SELECT min(ts) FROM {t}{where}"), {"after": after})).scalar()
        for t in SOURCES
    ]
    found = [t for t in firsts if isinstance(t, datetime)]
    return min(found) if found else None


async def _set_watermark(conn: AsyncConnection, wm: datetime) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO rollup_watermarks (spec, resolution, watermark, updated_at) "
            "VALUES (:s, :r, :w, now()) ON CONFLICT (spec, resolution) "
            "DO UPDATE SET watermark = EXCLUDED.watermark, updated_at = now()"
        ),
        {"s": SPEC, "r": RESOLUTION, "w": wm},
    )


def _ceil_to(t: datetime, seconds: int) -> datetime:
    f = floor_to(t, seconds)
    return f if f == t else f + timedelta(seconds=seconds)


async def run_once(engine: AsyncEngine, now: datetime | None = None) -> bool:
    """One bounded step (at most `SPAN` of raw time); True when the ledger reaches `now`."""
    now = now or datetime.now(UTC)
    closed = floor_to(now, MINUTE)  # minutes before this one are complete
    open_end = closed + timedelta(seconds=MINUTE)
    async with engine.begin() as conn:
        got = await conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK})
        if not got.scalar():
            return True  # another process maintains it right now
        wm = await _watermark(conn)
        if wm is None:
            first = await _first_time(conn, None)
            if first is None:
                return True
            start = floor_to(first, MINUTE)
        else:
            start = wm - RELOOK
            if closed - wm > SPAN:
                # Far behind (a rewind, a quiet stretch): skip time without rows.
                nxt = await _first_time(conn, start)
                if nxt is None or nxt >= open_end:
                    await _set_watermark(conn, closed)
                    return True
                start = max(start, floor_to(nxt, MINUTE))
        end = min(open_end, start + SPAN)
        # The planner's estimate for the statement (its correlated lookups counted once per
        # reference) switches JIT on, which then compiles for longer than the statement
        # runs: 12 of 32 s for 6 hours of 200 devices.
        await conn.execute(sa.text("SET LOCAL jit = off"))
        await conn.execute(sa.text(UPSERT_SQL), {"a": start, "b": end})
        hours = {"a": floor_to(start, HOUR), "b": _ceil_to(end, HOUR)}
        await conn.execute(sa.text(HOURS_SQL), hours)
        new_wm = min(closed, end)
        if wm is None or new_wm > wm:
            await _set_watermark(conn, new_wm)
        return end >= open_end


async def catch_up(engine: AsyncEngine, now: datetime | None = None, max_runs: int = 10_000) -> int:
    """Steps until the ledger covers every hour up to `now`; returns the step count."""
    for runs in range(1, max_runs + 1):
        if await run_once(engine, now):
            return runs
    return max_runs


@dataclass(frozen=True)
class DeviceLedger:
    device_id: str
    counter: str  # seq | sparkplug
    received: int
    repeats: int
    expected: int
    resets: int
    first_ts: datetime
    last_ts: datetime

    @property
    def lost(self) -> int:
        return max(0, self.expected - (self.received - self.repeats))

    @property
    def completeness(self) -> float | None:
        return None if self.expected <= 0 else (self.received - self.repeats) / self.expected


def minutes(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole minutes a range touches: what the ledger reports on."""
    return floor_to(start, MINUTE), _ceil_to(end, MINUTE)


async def project_ledger(
    conn: AsyncConnection, project: str, start: datetime, end: datetime
) -> list[DeviceLedger]:
    """Per device: sums over the whole minutes [start, end) touches (whole hours from the
    hourly table, the edges from minutes), most records lost first."""
    lo, hi = minutes(start, end)
    h1, h2 = _ceil_to(lo, HOUR), floor_to(hi, HOUR)
    cols = "device_id, counter, received, repeats, expected, resets, first_ts, last_ts"
    parts = []
    params: dict[str, Any] = {"p": project}
    if h1 < h2:
        segments = [(TABLE, lo, h1), (HOUR_TABLE, h1, h2), (TABLE, h2, hi)]
    else:
        segments = [(TABLE, lo, hi)]
    for i, (table, a, b) in enumerate(segments):
        if a >= b:
            continue
        params[f"a{i}"], params[f"b{i}"] = a, b
        parts.append(
            f"SELECT {cols} FROM {table} WHERE project_id = :p "
            f"AND bucket >= :a{i} AND bucket < :b{i}"
        )
    rows = await conn.execute(
        sa.text(
            "SELECT device_id, counter, sum(received) AS received, sum(repeats) AS repeats, "
            "sum(expected) AS expected, sum(resets) AS resets, min(first_ts) AS first_ts, "
            f"max(last_ts) AS last_ts FROM ({' UNION ALL '.join(parts)}) AS u "
            "GROUP BY device_id, counter"
        ),
        params,
    )
    out = [
        DeviceLedger(
            r.device_id,
            r.counter,
            int(r.received),
            int(r.repeats),
            int(r.expected),
            int(r.resets),
            r.first_ts,
            r.last_ts,
        )
        for r in rows
    ]
    out.sort(key=lambda d: (-(d.lost), d.device_id))
    return out
