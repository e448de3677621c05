"""Hand-written SQL over raw rows: what the API's answers would cost without the rollups.

The API benchmark times these next to the API, on the same database in the same run, so
each latency figure comes with a reference that moves with the machine: a box three times
slower makes both slower, and their ratio (the rollups' speed-up) carries from one machine
to the next where a bare millisecond figure does not. They compute the same figures as the
KPI summary and the series endpoint, the way one would write them without rollups:
aggregates and `percentile_cont` straight over the stream tables (`tests/test_loadtests.py`
checks they agree with the API).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg

from services.api.rollups.specs import AGV_STATES, LOOKBACK, LOW_BATTERY_PCT

INSPECTIONS = """
SELECT count(*) AS inspections, count(*) FILTER (WHERE NOT passed) AS failed,
       sum(defect_count) AS defect_count, avg(inference_ms) AS mean_inference_ms
FROM inspections WHERE project_id = $1 AND ts >= $2 AND ts < $3
"""

DEFECTS = """
SELECT d->>'type' AS type, count(*) AS count
FROM inspections CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(defects) = 'array' THEN defects ELSE '[]'::jsonb END) AS d
WHERE project_id = $1 AND ts >= $2 AND ts < $3 AND NOT passed
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5
"""

AGV = f"""
SELECT count(*) AS samples, count(DISTINCT device_id) AS agvs,
       {", ".join(f"count(*) FILTER (WHERE state = '{s}') AS {s}_n" for s in AGV_STATES)},
       count(*) FILTER (WHERE state = 'estop' AND prev IS DISTINCT FROM 'estop') AS e_stops,
       count(*) FILTER (WHERE battery < {LOW_BATTERY_PCT}) AS lowbatt_n,
       avg(battery) AS mean_battery_pct, avg(localization) AS mean_localization
FROM (SELECT ts, device_id, state, battery, localization,
             lag(state) OVER (PARTITION BY device_id ORDER BY ts) AS prev
      FROM agv_status
      WHERE project_id = $1 AND ts >= $2::timestamptz - INTERVAL '{LOOKBACK}'
        AND ts < $3) AS s
WHERE ts >= $2
"""

LINK = """
SELECT count(*) AS samples, count(DISTINCT device_id) AS modules,
       avg(latency_ms) AS latency_mean,
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms) AS latency_q,
       avg(rsrp) AS mean_rsrp_dbm, avg(sinr) AS mean_sinr_db, avg(loss_pct) AS mean_loss_pct,
       count(*) FILTER (WHERE rsrp >= -80) AS rsrp_excellent,
       count(*) FILTER (WHERE rsrp >= -90 AND rsrp < -80) AS rsrp_good,
       count(*) FILTER (WHERE rsrp >= -100 AND rsrp < -90) AS rsrp_fair,
       count(*) FILTER (WHERE rsrp < -100) AS rsrp_poor,
       count(*) FILTER (WHERE sinr >= 20) AS sinr_excellent,
       count(*) FILTER (WHERE sinr >= 13 AND sinr < 20) AS sinr_good,
       count(*) FILTER (WHERE sinr >= 0 AND sinr < 13) AS sinr_fair,
       count(*) FILTER (WHERE sinr < 0) AS sinr_poor
FROM link_kpis WHERE project_id = $1 AND ts >= $2 AND ts < $3
"""

ALARMS = """
SELECT severity, count(*) FILTER (WHERE opened_at >= $2 AND opened_at < $3) AS opened,
       count(*) FILTER (WHERE state <> 'cleared') AS active
FROM alarms WHERE project_id = $1 AND (state <> 'cleared' OR (opened_at >= $2 AND opened_at < $3))
GROUP BY 1 ORDER BY 1
"""

SERIES = """
SELECT time_bucket(make_interval(secs => $5), ts) AS t, count({field}) AS count,
       min({field}) AS min, max({field}) AS max, avg({field}) AS avg, last({field}, ts) AS last
FROM {table} WHERE project_id = $1 AND device_id = $4 AND ts >= $2 AND ts < $3
GROUP BY 1 ORDER BY 1
"""


async def kpis(
    conns: list[asyncpg.Connection], project: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """The KPI summary's figures from raw rows, its five queries run concurrently on
    five connections as the API runs its own."""
    queries = (INSPECTIONS, DEFECTS, AGV, LINK, ALARMS)
    if len(conns) < len(queries):
        raise ValueError(f"need {len(queries)} connections, got {len(conns)}")
    insp, defects, agv, link, alarms = await asyncio.gather(
        *(c.fetch(q, project, start, end) for c, q in zip(conns, queries, strict=False))
    )
    return {
        "inspection": dict(insp[0]),
        "top_defects": [dict(r) for r in defects],
        "agv": dict(agv[0]),
        "link": dict(link[0]),
        "alarms": [dict(r) for r in alarms],
    }


async def series(
    conn: asyncpg.Connection,
    table: str,
    field: str,
    project: str,
    device: str,
    start: datetime,
    end: datetime,
    bucket_s: int,
) -> list[asyncpg.Record]:
    """One field of one device in buckets of `bucket_s`, from raw rows."""
    sql = SERIES.format(table=table, field=field)  # names are ours, never user input
    rows: list[asyncpg.Record] = await conn.fetch(sql, project, start, end, device, float(bucket_s))
    return rows
