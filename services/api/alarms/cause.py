"""Cross-stream root cause: which alarms the 5G link probably caused (docs/plant.md).

- A vision alarm (`defect_rate`, `inference_p95`) while a related 5G module has a link
  alarm active (`rsrp_low`, `sinr_low`, `loss_high`, `latency_p99`), or while its link KPIs
  around the alarm's opening are in the poor band, is `network_suspected`, with the link
  alarm or the KPI values as evidence.
- An AGV alarm (`stalled`, `connection_lost`, `localization_low`) while a related module
  has a link alarm active, or (for `stalled` and `localization_low`) while the AGV's own
  `connection_lost` alarm is active (VDA 5050 `CONNECTIONBROKEN` or silence), is a
  `link_consequence` of that alarm.
- Related: the device itself (an AGV-mounted module reporting under the AGV's id), the
  modules whose registry metadata says `module_of: <device>`, or, when none does, the
  devices on the same `line`.
- "Active at the time": opened at most `SLACK` after the alarm opened and not cleared
  more than `SLACK` before it (a link rule's `for` delays its alarm by tens of seconds).

Why on read in the API and not at alarm open in the rules service: the rules service is
sharded by device, so the replica that opens a station's alarm does not hold the module's
link state; the link alarm often opens after the station's (its `for` is longer); and the
registry relation (`line`, `module_of`) may be set after the fact. Judged on read, from
the alarms table and the link rows, the marking is the same on every replica, follows
late link alarms and registry changes, and costs three indexed queries per page of alarms.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.rollups.specs import RSRP_BANDS_DBM, SINR_BANDS_DB

VISION_RULES: Final = ("defect_rate", "inference_p95")
AGV_RULES: Final = ("stalled", "connection_lost", "localization_low")
LINK_RULES: Final = ("rsrp_low", "sinr_low", "loss_high", "latency_p99")
SLACK: Final = timedelta(minutes=2)
# Link KPIs looked at around a vision alarm's opening, and what counts as degraded: the
# poor band of the scorecard (RSRP under -100 dBm, SINR under 0 dB).
KPI_BEFORE: Final = timedelta(minutes=5)
KPI_AFTER: Final = timedelta(minutes=1)
POOR_RSRP_DBM: Final = RSRP_BANDS_DBM[-1]
POOR_SINR_DB: Final = SINR_BANDS_DB[-1]


def _active(link: Any, at: datetime) -> bool:
    return bool(
        link.opened_at <= at + SLACK and (link.cleared_at is None or link.cleared_at >= at - SLACK)
    )


def _related(
    project: str, device: str, registry: dict[tuple[str, str], tuple[str | None, str | None]]
) -> list[str]:
    own = [device]
    explicit = [d for (p, d), (_, of) in registry.items() if p == project and of == device]
    if explicit:
        return own + explicit
    line = registry.get((project, device), (None, None))[0]
    if line is None:
        return own
    return own + [
        d for (p, d), (ln, _) in registry.items() if p == project and ln == line and d != device
    ]


def _link_evidence(link: Any) -> dict[str, Any]:
    return {
        "alarm_id": int(link.id),
        "device_id": link.device_id,
        "rule": link.rule,
        "severity": link.severity,
        "state": link.state,
        "last_value": link.last_value,
        "opened_at": link.opened_at,
    }


async def attach(conn: AsyncConnection, items: Sequence[dict[str, Any]]) -> None:
    """Set `cause` on each alarm of `items` (None where the link is not implicated)."""
    for item in items:
        item["cause"] = None
    todo = [a for a in items if a["rule"] in VISION_RULES or a["rule"] in AGV_RULES]
    if not todo:
        return
    projects = sorted({a["project_id"] for a in todo})
    rows = await conn.execute(
        sa.text(
            "SELECT project_id, device_id, metadata->>'line' AS line, "
            "metadata->>'module_of' AS module_of FROM devices "
            "WHERE project_id = ANY(CAST(:ps AS text[]))"
        ),
        {"ps": projects},
    )
    registry = {(r.project_id, r.device_id): (r.line, r.module_of) for r in rows}
    related = {a["id"]: _related(a["project_id"], a["device_id"], registry) for a in todo}
    devices = sorted({d for ds in related.values() for d in ds})
    first = min(a["opened_at"] for a in todo) - SLACK
    last = max(a["opened_at"] for a in todo) + SLACK
    rows = await conn.execute(
        sa.text(
            "SELECT id, project_id, device_id, rule, severity, state, last_value, opened_at, "
            "cleared_at FROM alarms WHERE project_id = ANY(CAST(:ps AS text[])) "
            "AND device_id = ANY(CAST(:ds AS text[])) AND rule = ANY(CAST(:rules AS text[])) "
            "AND opened_at <= :last AND (cleared_at IS NULL OR cleared_at >= :first) "
            "ORDER BY opened_at"
        ),
        {
            "ps": projects,
            "ds": devices,
            "rules": [*LINK_RULES, "connection_lost"],
            "first": first,
            "last": last,
        },
    )
    candidates = rows.all()
    kpi_needed: list[dict[str, Any]] = []
    for a in todo:
        mates = set(related[a["id"]])
        at = a["opened_at"]
        links = [
            c
            for c in candidates
            if c.project_id == a["project_id"]
            and c.device_id in mates
            and c.rule in LINK_RULES
            and c.id != a["id"]
            and _active(c, at)
        ]
        links.sort(key=lambda c: abs((c.opened_at - at).total_seconds()))
        if a["rule"] in VISION_RULES:
            if links:
                a["cause"] = {
                    "kind": "network_suspected",
                    "alarm_id": int(links[0].id),
                    "evidence": {"link_alarm": _link_evidence(links[0])},
                }
            else:
                kpi_needed.append(a)
            continue
        if not links and a["rule"] != "connection_lost":
            links = [
                c
                for c in candidates
                if c.project_id == a["project_id"]
                and c.device_id == a["device_id"]
                and c.rule == "connection_lost"
                and c.id != a["id"]
                and _active(c, at)
            ]
        if links:
            a["cause"] = {
                "kind": "link_consequence",
                "alarm_id": int(links[0].id),
                "evidence": {"link_alarm": _link_evidence(links[0])},
            }
    if kpi_needed:
        await _kpi_causes(conn, kpi_needed, related)


async def _kpi_causes(
    conn: AsyncConnection, todo: Sequence[dict[str, Any]], related: dict[int, list[str]]
) -> None:
    """Vision alarms without a link alarm: the related modules' link rows around the
    opening, averaged; poor RSRP or SINR marks the network as suspected."""
    ids: list[int] = []
    projects: list[str] = []
    mods: list[str] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    for a in todo:
        for m in related[a["id"]]:
            ids.append(a["id"])
            projects.append(a["project_id"])
            mods.append(m)
            starts.append(a["opened_at"] - KPI_BEFORE)
            ends.append(a["opened_at"] + KPI_AFTER)
    rows = await conn.execute(
        sa.text(
            "SELECT q.id, q.device_id, k.n, k.rsrp, k.sinr, k.latency FROM unnest("
            "CAST(:ids AS bigint[]), CAST(:ps AS text[]), CAST(:ds AS text[]), "
            "CAST(:a AS timestamptz[]), CAST(:b AS timestamptz[])) "
            "AS q(id, project_id, device_id, a, b) "
            "CROSS JOIN LATERAL (SELECT count(*) AS n, avg(rsrp) AS rsrp, avg(sinr) AS sinr, "
            "max(latency_ms) AS latency FROM link_kpis l WHERE l.project_id = q.project_id "
            "AND l.device_id = q.device_id AND l.ts >= q.a AND l.ts < q.b) AS k "
            "WHERE k.n > 0 AND (k.rsrp < :rsrp OR k.sinr < :sinr) "
            "ORDER BY q.id, k.rsrp"
        ),
        {
            "ids": ids,
            "ps": projects,
            "ds": mods,
            "a": starts,
            "b": ends,
            "rsrp": POOR_RSRP_DBM,
            "sinr": POOR_SINR_DB,
        },
    )
    by_id = {a["id"]: a for a in todo}
    for r in rows:
        a = by_id[r.id]
        if a["cause"] is not None:
            continue
        a["cause"] = {
            "kind": "network_suspected",
            "alarm_id": None,
            "evidence": {
                "link_kpis": {
                    "device_id": r.device_id,
                    "samples": int(r.n),
                    "mean_rsrp_dbm": round(float(r.rsrp), 1),
                    "mean_sinr_db": round(float(r.sinr), 1),
                    "max_latency_ms": None if r.latency is None else float(r.latency),
                    "from": a["opened_at"] - KPI_BEFORE,
                    "to": a["opened_at"] + KPI_AFTER,
                }
            },
        }
