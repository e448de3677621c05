"""Machine states and counters per five-minute bucket, kept for OEE (ISO 22400-2).

Machines publish `state` (and a downtime `reason`) and the monotonic counters
`count.produced` and `count.good` on the telemetry stream (docs/device-guide.md). A state
sample holds until the device's next state sample, for at most `HOLD`: a machine that
falls silent has no known state after that, rather than running forever. Each interval is
split at bucket edges into seconds per (state, reason), with the number of entries (a
sample whose state or reason differs from the one before, or follows a silence). A
counter's delta is the difference to its previous sample, or the new value itself when it
went down (the counter was reset, so it counted up from zero since).

Hours are merged from the five-minute buckets in the same pass (an hour holding the
watermark is partial until the watermark passes it; queries read only hours before it).
Buckets are final once every sample that could still change them has arrived, i.e.
`HOLD` plus the rollups' grace after they end; a pass deletes and rewrites whole buckets,
so repeating it changes nothing. The same SELECTs serve queries for the stretch after the
watermark, so the maintained part and the live edge cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

BUCKET_S: Final = 300
HOLD: Final = timedelta(minutes=10)
COUNTER_LOOKBACK: Final = timedelta(hours=1)  # a counter sample's predecessor, at most
GRACE: Final = timedelta(seconds=10)
HOUR: Final = timedelta(hours=1)
MAX_SPAN: Final = timedelta(hours=6)  # newly closed time per pass
RELOOK: Final = 2  # buckets before the watermark re-aggregated each pass
STATE_METRICS: Final = ("state", "reason", "count.produced", "count.good")
_LOCK: Final = 0x46354750  # advisory lock of this maintainer (beside the rollups')
_WIDTH: Final = f"INTERVAL '{BUCKET_S} seconds'"
_HOLD: Final = f"INTERVAL '{int(HOLD.total_seconds())} seconds'"
_LOOK: Final = f"INTERVAL '{int(COUNTER_LOOKBACK.total_seconds())} seconds'"
_A, _B, _NOW = "CAST(:a AS timestamptz)", "CAST(:b AS timestamptz)", "CAST(:now AS timestamptz)"


def _project_filter(projects: bool) -> str:
    return " AND project_id = ANY(CAST(:projects AS text[]))" if projects else ""


def states_select(*, projects: bool = False) -> str:
    """Rows (bucket, project_id, device_id, state, reason, seconds, entries) for [a, b)."""
    seconds = (
        f"extract(epoch FROM least(e, g.bucket + {_WIDTH}, {_B}) - greatest(s, g.bucket, {_A}))"
    )
    return f"""
    WITH samples AS (
        SELECT project_id, device_id, ts,
               max(value) FILTER (WHERE metric = 'state') AS state,
               max(value) FILTER (WHERE metric = 'reason') AS reason
        FROM telemetry
        WHERE metric IN ('state', 'reason')
          AND ts >= {_A} - {_HOLD} AND ts < {_B} + {_HOLD}{_project_filter(projects)}
        GROUP BY project_id, device_id, ts
    ), ordered AS (
        SELECT project_id, device_id, ts,
               CAST(round(state) AS smallint) AS state,
               CAST(coalesce(round(reason), 0) AS integer) AS reason,
               lead(ts) OVER w AS next_ts, lag(ts) OVER w AS prev_ts,
               lag(round(state)) OVER w AS prev_state,
               lag(coalesce(round(reason), 0)) OVER w AS prev_reason
        FROM samples
        WHERE state IS NOT NULL AND state BETWEEN -32768 AND 32767
          AND coalesce(reason, 0) BETWEEN -2147483648 AND 2147483647
        WINDOW w AS (PARTITION BY project_id, device_id ORDER BY ts)
    ), intervals AS (
        SELECT project_id, device_id, state, reason, ts AS s,
               least(coalesce(next_ts, 'infinity'), ts + {_HOLD}, {_NOW}) AS e,
               (prev_ts IS NULL OR prev_ts < ts - {_HOLD} OR prev_state <> state
                OR prev_reason <> reason) AS entry
        FROM ordered
        WHERE ts < {_B}
    )
    SELECT g.bucket, project_id, device_id, state, reason,
           sum({seconds}) AS seconds,
           CAST(count(*) FILTER (WHERE entry AND s >= {_A}
                AND g.bucket = time_bucket({_WIDTH}, s)) AS integer) AS entries
    FROM intervals
    CROSS JOIN LATERAL generate_series(
        time_bucket({_WIDTH}, greatest(s, {_A})),
        least(e, {_B}) - INTERVAL '1 microsecond',
        {_WIDTH}) AS g(bucket)
    WHERE least(e, {_B}) > greatest(s, {_A})
    GROUP BY 1, 2, 3, 4, 5
    """


def counts_select(*, projects: bool = False) -> str:
    """Rows (bucket, project_id, device_id, produced, good) for [a, b)."""

    def delta(metric: str) -> str:
        return (
            "coalesce(sum(CASE WHEN value >= prev THEN value - prev ELSE value END) "
            f"FILTER (WHERE metric = '{metric}' AND prev IS NOT NULL), 0)"
        )

    return f"""
    WITH c AS (
        SELECT project_id, device_id, metric, ts, value,
               lag(value) OVER (PARTITION BY project_id, device_id, metric ORDER BY ts) AS prev
        FROM telemetry
        WHERE metric IN ('count.produced', 'count.good')
          AND ts >= {_A} - {_LOOK} AND ts < {_B}{_project_filter(projects)}
    )
    SELECT time_bucket({_WIDTH}, ts) AS bucket, project_id, device_id,
           {delta("count.produced")} AS produced, {delta("count.good")} AS good
    FROM c WHERE ts >= {_A}
    GROUP BY 1, 2, 3
    """


def floor_5m(t: datetime) -> datetime:
    epoch = int(t.timestamp())
    return datetime.fromtimestamp(epoch - epoch % BUCKET_S, UTC)


def floor_1h(t: datetime) -> datetime:
    epoch = int(t.timestamp())
    return datetime.fromtimestamp(epoch - epoch % 3600, UTC)


@dataclass(frozen=True)
class Progress:
    spec: str
    resolution: str
    watermark: datetime | None
    caught_up: bool


async def watermark(conn: AsyncConnection) -> datetime | None:
    value = (await conn.execute(sa.text("SELECT watermark FROM oee_watermark"))).scalar()
    return value if isinstance(value, datetime) else None


async def _first_sample(conn: AsyncConnection, after: datetime | None) -> datetime | None:
    """The first machine-state sample (at or after `after`), through the partial index."""
    where = "" if after is None else " AND ts >= :after"
    value = (
        await conn.execute(
            sa.text(
                "SELECT min(ts) FROM telemetry WHERE metric IN "
                f"('state', 'reason', 'count.produced', 'count.good'){where}"
            ),
            {"after": after},
        )
    ).scalar()
    return value if isinstance(value, datetime) else None


async def _set(conn: AsyncConnection, wm: datetime) -> None:
    await conn.execute(
        sa.text(
            "INSERT INTO oee_watermark (id, watermark, updated_at) VALUES (1, :w, now()) "
            "ON CONFLICT (id) DO UPDATE SET watermark = EXCLUDED.watermark, updated_at = now()"
        ),
        {"w": wm},
    )


async def run_once(engine: AsyncEngine, now: datetime | None = None) -> list[Progress]:
    """One bounded pass: re-aggregate a few buckets before the watermark, then at most
    `MAX_SPAN` of newly final ones."""
    now = now or datetime.now(UTC)
    closed = floor_5m(now - HOLD - GRACE)
    async with engine.begin() as conn:
        got = await conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _LOCK})
        if not got.scalar():
            return []
        wm = await watermark(conn)
        if wm is None:
            first = await _first_sample(conn, None)
            if first is None:
                return [Progress("oee", "5m", None, True)]
            start = wm = floor_5m(first)
        else:
            start = wm - timedelta(seconds=BUCKET_S * RELOOK)
            if closed - wm > MAX_SPAN:
                nxt = await _first_sample(conn, start)
                if nxt is None or nxt >= closed:
                    await _set(conn, closed)
                    return [Progress("oee", "5m", closed, True)]
                if nxt > wm:
                    start = wm = floor_5m(nxt)
        end = min(closed, wm + MAX_SPAN)
        if end <= start:
            return [Progress("oee", "5m", wm, True)]
        params = {"a": start, "b": end, "now": now}
        hours = {"a": floor_1h(start), "b": floor_1h(end - timedelta(microseconds=1)) + HOUR}
        for kind, select, keys, sums in (
            ("states", states_select(), "state, reason", "sum(seconds), sum(entries)"),
            ("counts", counts_select(), "", "sum(produced), sum(good)"),
        ):
            cols = f"bucket, project_id, device_id{', ' if keys else ''}{keys}, " + (
                "seconds, entries" if kind == "states" else "produced, good"
            )
            five, hour = f"oee_{kind}_5m", f"oee_{kind}_1h"
            await conn.execute(
                sa.text(f"DELETE FROM {five} WHERE bucket >= :a AND bucket < :b"), params
            )
            await conn.execute(
                sa.text(f"INSERT INTO {five} ({cols}) {select} ORDER BY 2, 3, 1"), params
            )
            # The hours these buckets belong to, merged again from all their five minutes.
            await conn.execute(
                sa.text(f"DELETE FROM {hour} WHERE bucket >= :a AND bucket < :b"), hours
            )
            group = ", ".join(str(i) for i in range(1, 4 + (2 if keys else 0)))
            await conn.execute(
                sa.text(
                    f"INSERT INTO {hour} ({cols}) SELECT time_bucket(INTERVAL '1 hour', bucket), "
                    f"project_id, device_id{', ' if keys else ''}{keys}, {sums} FROM {five} "
                    f"WHERE bucket >= :a AND bucket < :b GROUP BY {group} ORDER BY 2, 3, 1"
                ),
                hours,
            )
        new_wm = max(wm, end)
        await _set(conn, new_wm)
        return [Progress("oee", "5m", new_wm, new_wm >= closed)]


async def rewind(engine: AsyncEngine, since: datetime) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.text(
                "UPDATE oee_watermark SET watermark = :w, updated_at = now() WHERE watermark > :w"
            ),
            {"w": floor_5m(since)},
        )
