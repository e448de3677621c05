"""The evidence report of one project and range: KPIs against targets, sections from other
packages, alarms with their response times, and the loss ledger.

Sections that other packages compute (OEE, the 5G availability scorecard) come through
`PROVIDERS`: a section name -> (module, function) imported only when a report is built, each
called as `await fn(conn, project_id, start, end)`. A module that is not installed gives the
section as "not available" instead of failing the report, so the report package depends on
nothing it cannot import, and plugging a section in is one line here. A provider's result
may be a pydantic model, a dataclass or plain data; the renderers show any of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api.kpis.service import project_kpis
from services.api.params import TimeRange
from services.api.report import ledger

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# section -> (module, async function(conn, project_id, start, end)); imported lazily.
PROVIDERS: Final[dict[str, tuple[str, str]]] = {
    "oee": ("services.api.oee.service", "oee_summary"),
    "availability": ("services.api.availability.service", "scorecard"),
}

# KPI name (as project targets name it: `<name>_max` / `<name>_min`) -> path in the summary.
KPIS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("defect_rate", ("inspection", "defect_rate")),
    ("first_pass_yield", ("inspection", "first_pass_yield")),
    ("inspections", ("inspection", "inspections")),
    ("utilisation", ("agv", "utilisation")),
    ("e_stops", ("agv", "e_stops")),
    ("mean_battery_pct", ("agv", "mean_battery_pct")),
    ("latency_p95_ms", ("link", "latency_ms", "p95")),
    ("latency_p99_ms", ("link", "latency_ms", "p99")),
    ("mean_rsrp_dbm", ("link", "mean_rsrp_dbm")),
    ("mean_sinr_db", ("link", "mean_sinr_db")),
    ("mean_loss_pct", ("link", "mean_loss_pct")),
)


def _dig(tree: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(p)
    return tree


def kpis_against_targets(kpis: dict[str, Any], targets: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per KPI: value, target (`≤` for `_max`, `≥` for `_min`) and met/missed."""
    out = []
    for name, path in KPIS:
        value = _dig(kpis, path)
        op = target = status = None
        for suffix, sign in (("_max", "<="), ("_min", ">=")):
            t = targets.get(name + suffix)
            if isinstance(t, int | float) and not isinstance(t, bool):
                op, target = sign, float(t)
                break
        if target is not None and isinstance(value, int | float):
            ok = value <= target if op == "<=" else value >= target
            status = "met" if ok else "missed"
        out.append({"kpi": name, "value": value, "op": op, "target": target, "status": status})
    return out


def _plain(value: Any) -> Any:
    """A provider's result as plain data (pydantic model, dataclass, mapping or list)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


async def provided_section(
    conn: AsyncConnection, name: str, project: str, start: datetime, end: datetime
) -> dict[str, Any]:
    module_name, func_name = PROVIDERS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        return {"available": False}
    fn: Callable[..., Awaitable[Any]] | None = getattr(module, func_name, None)
    if fn is None:
        return {"available": False}
    return {"available": True, "data": _plain(await fn(conn, project, start, end))}


async def alarm_stats(
    conn: AsyncConnection, project: str, start: datetime, end: datetime
) -> dict[str, Any]:
    """Alarms opened in [start, end) by severity and rule, with mean time to acknowledge
    (opened -> acknowledged, over the acknowledged ones) and to clear (opened -> cleared,
    over the cleared ones), in seconds."""
    rows = (
        await conn.execute(
            sa.text(
                "SELECT severity, rule, count(*) AS opened, count(acknowledged_at) AS acked, "
                "coalesce(sum(EXTRACT(EPOCH FROM acknowledged_at - opened_at)), 0) AS ack_s, "
                "count(cleared_at) AS cleared, "
                "coalesce(sum(EXTRACT(EPOCH FROM cleared_at - opened_at)), 0) AS clear_s "
                "FROM alarms WHERE project_id = :p AND opened_at >= :s AND opened_at < :e "
                "GROUP BY severity, rule ORDER BY severity, rule"
            ),
            {"p": project, "s": start, "e": end},
        )
    ).all()

    def entry(
        opened: int, acked: int, ack_s: float, cleared: int, clear_s: float
    ) -> dict[str, Any]:
        return {
            "opened": opened,
            "acknowledged": acked,
            "cleared": cleared,
            "mtta_s": ack_s / acked if acked else None,
            "mttc_s": clear_s / cleared if cleared else None,
        }

    by_rule = []
    totals: dict[str, list[float]] = {}
    for r in rows:
        vals = [int(r.opened), int(r.acked), float(r.ack_s), int(r.cleared), float(r.clear_s)]
        by_rule.append({"severity": r.severity, "rule": r.rule, **entry(*vals)})  # type: ignore[arg-type]
        acc = totals.setdefault(r.severity, [0, 0, 0.0, 0, 0.0])
        for i, v in enumerate(vals):
            acc[i] += v
    all_ = [sum(t[i] for t in totals.values()) for i in range(5)]
    return {
        "by_severity": [
            {"severity": s, **entry(int(t[0]), int(t[1]), t[2], int(t[3]), t[4])}
            for s, t in sorted(totals.items())
        ],
        "by_rule": by_rule,
        "total": entry(int(all_[0]), int(all_[1]), all_[2], int(all_[3]), all_[4]),
    }


async def completeness(
    conn: AsyncConnection, project: str, start: datetime, end: datetime
) -> dict[str, Any]:
    lo, hi = ledger.minutes(start, end)
    devices = await ledger.project_ledger(conn, project, start, end)
    expected = sum(d.expected for d in devices)
    unique = sum(d.received - d.repeats for d in devices)
    return {
        "minutes_start": lo,
        "minutes_end": hi,
        "expected": expected,
        "received": unique,
        "lost": sum(d.lost for d in devices),
        "completeness": unique / expected if expected else None,
        "devices": [
            {
                "device_id": d.device_id,
                "counter": d.counter,
                "expected": d.expected,
                "received": d.received - d.repeats,
                "repeats": d.repeats,
                "lost": d.lost,
                "resets": d.resets,
                "completeness": d.completeness,
                "first_ts": d.first_ts,
                "last_ts": d.last_ts,
            }
            for d in devices
        ],
    }


async def build(engine: AsyncEngine, project: str, rng: TimeRange) -> dict[str, Any]:
    """The whole report as plain data (rendered by `render`).

    Why concurrently: each section is an independent read of its own rollups (KPIs, OEE,
    scorecard, alarms, ledger), and one after the other their times add up (about 350 ms
    over 30 days of 200 devices, more than any single section). Each section runs on a
    connection of its own, so the report takes about as long as its slowest section."""

    async def on_conn(fn: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        async with engine.connect() as conn:
            return await fn(conn)

    async def project_info(conn: AsyncConnection) -> dict[str, Any]:
        row = (
            await conn.execute(
                sa.text(
                    "SELECT id, name, enterprise, city, scenario, targets FROM projects "
                    "WHERE id = :p"
                ),
                {"p": project},
            )
        ).first()
        return dict(row._mapping) if row is not None else {"id": project}

    async def section(name: str) -> dict[str, Any]:
        try:
            return await on_conn(
                lambda conn: provided_section(conn, name, project, rng.start, rng.end)
            )
        except Exception:  # one section's failure must not lose the rest of the report
            log.exception("report section %s failed", name)
            return {"available": False, "error": True}

    kpis, info, alarms, ledger_section, *provided = await asyncio.gather(
        project_kpis(engine, project, rng),
        on_conn(project_info),
        on_conn(lambda conn: alarm_stats(conn, project, rng.start, rng.end)),
        on_conn(lambda conn: completeness(conn, project, rng.start, rng.end)),
        *(section(name) for name in PROVIDERS),
    )
    targets: dict[str, Any] = info.get("targets") or {}
    sections = dict(zip(PROVIDERS, provided, strict=True))
    return {
        "project": {k: info.get(k) for k in ("id", "name", "enterprise", "city", "scenario")},
        "start": rng.start,
        "end": rng.end,
        "kpis": kpis_against_targets(kpis, targets),
        "kpi_summary": kpis,
        **sections,
        "alarms": alarms,
        "completeness": ledger_section,
    }
