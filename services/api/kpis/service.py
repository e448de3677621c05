"""KPI arithmetic over merged rollup summaries of one project and time range.

Each stream's summary is one row of sums over the covering segments (hours, minutes, raw
edges), queried concurrently on separate pooled connections because they are independent.
Definitions (also in docs/api.md):
- defect_rate = failed / inspections; first_pass_yield = passed / inspections, counting each
  inspection as a first pass (stations do not report re-inspections).
- AGV utilisation = moving samples / available samples, available = not charging, error or
  estop; with a fixed report rate, sample shares are time shares. e_stops = entries into
  estop. low_battery_share = samples under 20 % battery; low_battery_hours = that share of
  the range times the AGVs reporting.
- 5G latency percentiles from the rollup histogram; RSRP/SINR shares per quality band.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.params import TimeRange
from services.api.rollups import cover, maintain
from services.api.rollups.histogram import LATENCY_BUCKET_COLUMNS, percentile
from services.api.rollups.specs import AGV_STATES, BAND_NAMES, SPECS, Spec
from services.api.rollups.sql import merge_expr

TOP_DEFECTS = 5
QUERIES_PER_SUMMARY = 4  # stream summaries run concurrently, one connection each


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not b or a is None else float(a) / float(b)


async def _summary(
    engine: AsyncEngine,
    spec: Spec,
    names: Sequence[str],
    segments: list[cover.Segment],
    project: str,
    group_by: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    cols = [c for c in spec.cols if c.name in names]
    union, params = cover.union(spec, segments, cols, 60, device=False)
    params["projects"] = [project]
    sel = ", ".join(f"{merge_expr(c)} AS {c.name}" for c in cols)
    query = f"SELECT {sel}, count(DISTINCT device_id) AS devices FROM ({union}) AS u"
    if group_by is not None:
        query = (
            f"SELECT {group_by}, {sel} FROM ({union}) AS u GROUP BY 1 ORDER BY 2 DESC, 1"
            f" LIMIT {int(limit or 10)}"
        )
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text(query), params)
        return [dict(r._mapping) for r in rows]


async def project_kpis(engine: AsyncEngine, project: str, rng: TimeRange) -> dict[str, Any]:
    async with engine.connect() as conn:
        marks = await maintain.watermarks(conn)
        alarms = (
            await conn.execute(
                sa.text(
                    "SELECT severity, count(*) FILTER (WHERE opened_at >= :s AND opened_at < :e) "
                    "AS opened, count(*) FILTER (WHERE state <> 'cleared') AS active "
                    "FROM alarms WHERE project_id = :p AND (state <> 'cleared' OR "
                    "(opened_at >= :s AND opened_at < :e)) GROUP BY 1 ORDER BY 1"
                ),
                {"p": project, "s": rng.start, "e": rng.end},
            )
        ).all()

    def plan(spec: str) -> list[cover.Segment]:
        wms = {r: marks[(spec, r)] for r in ("1m", "1h") if (spec, r) in marks}
        return cover.plan(rng.start, rng.end, wms)

    agv_cols = ["n", *(f"{s}_n" for s in AGV_STATES), "lowbatt_n", "estop_entries"]
    agv_cols += ["localization_n", "localization_sum", "battery_n", "battery_sum"]
    link_cols = ["n", "latency_ms_n", "latency_ms_sum", "loss_pct_n", "loss_pct_sum"]
    link_cols += ["rsrp_n", "rsrp_sum", "sinr_n", "sinr_sum", *LATENCY_BUCKET_COLUMNS]
    link_cols += [f"rsrp_b{i}" for i in range(4)] + [f"sinr_b{i}" for i in range(4)]
    insp_cols = ["n", "passed_n", "defect_count_sum", "inference_ms_n", "inference_ms_sum"]
    insp, defects, agv, link = await asyncio.gather(
        _summary(engine, SPECS["inspection"], insp_cols, plan("inspection"), project),
        _summary(
            engine, SPECS["defects"], ["n"], plan("defects"), project, "defect_type", TOP_DEFECTS
        ),
        _summary(engine, SPECS["agv"], agv_cols, plan("agv"), project),
        _summary(engine, SPECS["link"], link_cols, plan("link"), project),
    )
    i, a, lk = insp[0], agv[0], link[0]
    n_insp = int(i["n"] or 0)
    passed = int(i["passed_n"] or 0)
    n_agv = int(a["n"] or 0)
    available = n_agv - sum(int(a[f"{s}_n"] or 0) for s in ("charging", "error", "estop"))
    lowbatt_share = _ratio(a["lowbatt_n"], n_agv)
    counts = [int(lk[c] or 0) for c in LATENCY_BUCKET_COLUMNS]
    n_rsrp = sum(int(lk[f"rsrp_b{k}"] or 0) for k in range(4))
    n_sinr = sum(int(lk[f"sinr_b{k}"] or 0) for k in range(4))
    return {
        "project_id": project,
        "start": rng.start,
        "end": rng.end,
        "inspection": {
            "inspections": n_insp,
            "failed": n_insp - passed,
            "defect_rate": _ratio(n_insp - passed, n_insp),
            "first_pass_yield": _ratio(passed, n_insp),
            "defects_per_unit": _ratio(i["defect_count_sum"], n_insp),
            "mean_inference_ms": _ratio(i["inference_ms_sum"], i["inference_ms_n"]),
            "top_defects": [{"type": d["defect_type"], "count": int(d["n"])} for d in defects],
        },
        "agv": {
            "agvs": int(a["devices"] or 0),
            "samples": n_agv,
            "utilisation": _ratio(a["moving_n"], available),
            "state_share": {s: _ratio(a[f"{s}_n"], n_agv) for s in AGV_STATES},
            "e_stops": int(a["estop_entries"] or 0),
            "low_battery_share": lowbatt_share,
            "low_battery_hours": None
            if lowbatt_share is None
            else lowbatt_share * rng.seconds / 3600 * int(a["devices"] or 0),
            "mean_battery_pct": _ratio(a["battery_sum"], a["battery_n"]),
            "mean_localization": _ratio(a["localization_sum"], a["localization_n"]),
        },
        "link": {
            "modules": int(lk["devices"] or 0),
            "samples": int(lk["n"] or 0),
            "latency_ms": {
                "mean": _ratio(lk["latency_ms_sum"], lk["latency_ms_n"]),
                "p50": percentile(counts, 0.50),
                "p95": percentile(counts, 0.95),
                "p99": percentile(counts, 0.99),
            },
            "mean_rsrp_dbm": _ratio(lk["rsrp_sum"], lk["rsrp_n"]),
            "mean_sinr_db": _ratio(lk["sinr_sum"], lk["sinr_n"]),
            "rsrp_bands": {b: _ratio(lk[f"rsrp_b{k}"], n_rsrp) for k, b in enumerate(BAND_NAMES)},
            "sinr_bands": {b: _ratio(lk[f"sinr_b{k}"], n_sinr) for k, b in enumerate(BAND_NAMES)},
            "mean_loss_pct": _ratio(lk["loss_pct_sum"], lk["loss_pct_n"]),
        },
        "alarms": {
            "opened_by_severity": {r.severity: int(r.opened) for r in alarms if r.opened},
            "active_by_severity": {r.severity: int(r.active) for r in alarms if r.active},
        },
    }
