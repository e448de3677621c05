"""The 5G communication service availability scorecard of one project over a range.

Definitions (3GPP TS 22.261 / TS 22.104; worked example in docs/plant.md):
- A flow is a device's `link` stream. Its deadline D = transfer interval + survival time
  (the device's first profile with settings, else the project's `*`, else the settings
  defaults). After a message at x, the service is unavailable from x + D until the next
  message y, when y - x > D; after the last message before the range end, from x + D to the
  end. Before its first message a flow counts from when it was first seen (registered or
  first received), so a registered flow that never spoke is unavailable from first seen + D.
- Outages are those intervals cut to the range and to the flow's existence; availability
  = 1 - unavailable / measured, in percent. The project figure weighs flows by measured time.
- Latency percentiles and RSRP/SINR band shares come from the link rollups (samples).

Why it reads what it reads: silences come from `link_gaps` up to its watermark and from raw
rows after it (services/api/availability/gaps.py); per-flow latency and bands from the
rollup cover (hours, minutes, raw edges); two index probes per flow find its first message
and its last one before the end. A 30-day range thus reads a few rows per flow and hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.availability import gaps
from services.api.availability.models import (
    Bands,
    FlowAvailability,
    Percentiles,
    ProjectAvailability,
    Scorecard,
    Targets,
    Verdict,
)
from services.api.rollups import cover, maintain
from services.api.rollups.histogram import LATENCY_BUCKET_COLUMNS, percentile
from services.api.rollups.specs import BAND_NAMES, SPECS
from services.core.settings import AvailabilitySettings

PROJECT_DEFAULT = "*"
_BAND_COLS = [f"rsrp_b{i}" for i in range(4)] + [f"sinr_b{i}" for i in range(4)]
_LINK_COLS = ["n", *LATENCY_BUCKET_COLUMNS, *_BAND_COLS]


@dataclass
class _Flow:
    device_id: str
    first_seen: datetime
    profile: str | None
    interval_s: float
    survival_s: float
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    pairs: list[tuple[datetime, datetime]] = field(default_factory=list)
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def deadline(self) -> timedelta:
        return timedelta(seconds=self.interval_s + self.survival_s)


def outages(
    pairs: Sequence[tuple[datetime, datetime | None]],
    deadline: timedelta,
    start: datetime,
    end: datetime,
) -> list[tuple[datetime, datetime]]:
    """Unavailable intervals within [start, end) from (message, next message or None) pairs."""
    out: list[tuple[datetime, datetime]] = []
    for x, y in pairs:
        stop = end if y is None else min(y, end)
        if y is not None and y - x <= deadline:
            continue
        a, b = max(x + deadline, start), stop
        if a < b:
            out.append((a, b))
    out.sort()
    return out


def _bands(counts: Sequence[int]) -> Bands:
    total = sum(counts)
    shares = {n: (c / total if total else None) for n, c in zip(BAND_NAMES, counts, strict=True)}
    return Bands(**shares)


def _pcts(hist: Sequence[int]) -> Percentiles:
    return Percentiles(
        p50=percentile(hist, 0.50), p95=percentile(hist, 0.95), p99=percentile(hist, 0.99)
    )


def _verdict(pct: float | None, p99: float | None, targets: Targets) -> Verdict:
    return Verdict(
        availability=None if pct is None else pct >= targets.availability_pct,
        latency_p99=None if p99 is None else p99 <= targets.latency_p99_ms,
    )


async def _link_summary(
    conn: AsyncConnection, project_id: str, start: datetime, end: datetime
) -> dict[str, dict[str, int]]:
    marks = await maintain.watermarks(conn)
    wms = {r: marks[("link", r)] for r in ("1m", "1h") if ("link", r) in marks}
    spec = SPECS["link"]
    cols = [c for c in spec.cols if c.name in _LINK_COLS]
    union, params = cover.union(spec, cover.plan(start, end, wms), cols, 60, device=False)
    params["projects"] = [project_id]
    sel = ", ".join(f"sum({c.name}) AS {c.name}" for c in cols)
    rows = await conn.execute(
        sa.text(f"SELECT device_id, {sel} FROM ({union}) AS u GROUP BY device_id"), params
    )
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        m = r._mapping
        out[m["device_id"]] = {c: int(m[c] or 0) for c in _LINK_COLS}
    return out


# Distinct devices of a project in the hourly link rollup, one index probe per device
# (a loose index scan over its unique key (project_id, device_id, bucket)): a DISTINCT
# would read every hour of every device, 8,640 rows a flow over a year.
_HOURLY_SENDERS = """
WITH RECURSIVE d AS (
    (SELECT device_id FROM rollup_link_1h WHERE project_id = :p ORDER BY device_id LIMIT 1)
    UNION ALL
    SELECT (SELECT r.device_id FROM rollup_link_1h r
            WHERE r.project_id = :p AND r.device_id > d.device_id
            ORDER BY r.device_id LIMIT 1)
    FROM d WHERE d.device_id IS NOT NULL
)
SELECT device_id FROM d WHERE device_id IS NOT NULL
"""


async def _senders(conn: AsyncConnection, project_id: str) -> set[str]:
    """Devices whose link stream reached the rollups: flows even when silent over the
    whole range. Minutes are read only where the hours do not cover them yet."""
    ids = {r[0] for r in await conn.execute(sa.text(_HOURLY_SENDERS), {"p": project_id})}
    hours = (await maintain.watermarks(conn)).get(("link", "1h"))
    where = "" if hours is None else " AND bucket >= :h"
    rows = await conn.execute(
        sa.text(f"SELECT DISTINCT device_id FROM rollup_link_1m WHERE project_id = :p{where}"),
        {"p": project_id, "h": hours},
    )
    ids.update(r[0] for r in rows)
    return ids


async def _pairs(
    conn: AsyncConnection,
    project_id: str,
    start: datetime,
    end: datetime,
    floor_s: float,
) -> dict[str, list[tuple[datetime, datetime]]]:
    """Silences longer than the floor whose next message falls in [start, end)."""
    wm = await gaps.watermark(conn)
    out: dict[str, list[tuple[datetime, datetime]]] = {}
    if wm is not None and wm > start:
        rows = await conn.execute(
            sa.text(
                "SELECT device_id, last_ts, next_ts FROM link_gaps WHERE project_id = :p "
                "AND next_ts >= :a AND next_ts < :b"
            ),
            {"p": project_id, "a": start, "b": min(wm, end)},
        )
        for r in rows:
            out.setdefault(r.device_id, []).append((r.last_ts, r.next_ts))
    raw_from = start if wm is None else max(start, wm)
    if raw_from < end:
        rows = await conn.execute(
            sa.text(gaps.GAPS_SQL),
            {"a": raw_from, "b": end, "floor": floor_s, "projects": [project_id]},
        )
        for r in rows:
            out.setdefault(r.device_id, []).append((r.last_ts, r.next_ts))
    return out


def _resolve(
    profiles: Sequence[str], flows: dict[str, tuple[float, float]], d: AvailabilitySettings
) -> tuple[str | None, float, float]:
    for p in (*profiles, PROJECT_DEFAULT):
        if p in flows:
            return p, *flows[p]
    return None, d.transfer_interval_s, d.survival_time_s


async def project_targets(
    conn: AsyncConnection, project_id: str, defaults: AvailabilitySettings
) -> Targets:
    raw = (
        await conn.execute(sa.text("SELECT targets FROM projects WHERE id = :p"), {"p": project_id})
    ).scalar()
    t: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return Targets(
        availability_pct=float(t.get("availability_pct", defaults.target_pct)),
        latency_p99_ms=float(t.get("latency_p99_ms", defaults.latency_p99_target_ms)),
    )


async def scorecard(
    conn: AsyncConnection,
    project_id: str,
    start: datetime,
    end: datetime,
    defaults: AvailabilitySettings | None = None,
) -> Scorecard:
    """Per-flow and project availability, outages, latency and signal bands in [start, end)."""
    d = defaults or AvailabilitySettings()
    targets = await project_targets(conn, project_id, d)
    flow_rows = await conn.execute(
        sa.text(
            "SELECT profile, transfer_interval_s, survival_time_s FROM availability_flows "
            "WHERE project_id = :p"
        ),
        {"p": project_id},
    )
    settings = {r.profile: (r.transfer_interval_s, r.survival_time_s) for r in flow_rows}
    summary = await _link_summary(conn, project_id, start, end)
    pairs = await _pairs(conn, project_id, start, end, d.gap_floor_s)
    candidates = set(summary) | set(pairs) | await _senders(conn, project_id)
    named = sorted(p for p in settings if p != PROJECT_DEFAULT)
    rows = await conn.execute(
        sa.text(
            "SELECT d.device_id, d.first_seen, d.profiles, "
            "(SELECT k.ts FROM link_kpis k WHERE k.project_id = d.project_id "
            " AND k.device_id = d.device_id ORDER BY k.ts LIMIT 1) AS first_ts, "
            "(SELECT k.ts FROM link_kpis k WHERE k.project_id = d.project_id "
            " AND k.device_id = d.device_id AND k.ts < :e ORDER BY k.ts DESC LIMIT 1) AS last_ts "
            "FROM devices d WHERE d.project_id = :p AND d.status <> 'retired' "
            "AND (d.device_id = ANY(CAST(:ids AS text[])) "
            "     OR d.profiles && CAST(:named AS text[])) ORDER BY d.device_id"
        ),
        {"p": project_id, "e": end, "ids": sorted(candidates), "named": named},
    )
    flows: list[_Flow] = []
    for r in rows:
        profile, ti, ts = _resolve(r.profiles or [], settings, d)
        flows.append(
            _Flow(r.device_id, r.first_seen, profile, ti, ts, r.first_ts, r.last_ts,
                  pairs.get(r.device_id, []), summary.get(r.device_id, {}))
        )  # fmt: skip
    items: list[FlowAvailability] = []
    hist_total = [0] * len(LATENCY_BUCKET_COLUMNS)
    rsrp_total, sinr_total = [0] * 4, [0] * 4
    measured_total = unavailable_total = 0.0
    outage_total, longest_total, samples_total, meeting = 0, 0.0, 0, 0
    for f in flows:
        born = min(f.first_seen, f.first_ts) if f.first_ts is not None else f.first_seen
        begin = max(start, born)
        if begin >= end:
            continue
        seq: list[tuple[datetime, datetime | None]] = list(f.pairs)
        if f.first_ts is not None and born < f.first_ts < end:
            # Silence before the first message; when that is at or after the end, the
            # tail below (from first seen) is the same silence and counts it once.
            seq.append((born, f.first_ts))
        seq.append((f.last_ts if f.last_ts is not None else born, None))
        out = outages(seq, f.deadline, begin, end)
        measured = (end - begin).total_seconds()
        lengths = [(b - a).total_seconds() for a, b in out]
        unavailable = sum(lengths)
        pct = 100.0 * (1 - unavailable / measured)
        hist = [f.summary.get(c, 0) for c in LATENCY_BUCKET_COLUMNS]
        rsrp = [f.summary.get(f"rsrp_b{i}", 0) for i in range(4)]
        sinr = [f.summary.get(f"sinr_b{i}", 0) for i in range(4)]
        lat = _pcts(hist)
        met = _verdict(pct, lat.p99, targets)
        items.append(
            FlowAvailability(
                device_id=f.device_id,
                profile=f.profile,
                transfer_interval_s=f.interval_s,
                survival_time_s=f.survival_s,
                measured_s=measured,
                unavailable_s=unavailable,
                availability_pct=pct,
                outages=len(out),
                longest_outage_s=max(lengths, default=0.0),
                samples=f.summary.get("n", 0),
                latency_ms=lat,
                rsrp_bands=_bands(rsrp),
                sinr_bands=_bands(sinr),
                met=met,
            )
        )
        hist_total = [a + b for a, b in zip(hist_total, hist, strict=True)]
        rsrp_total = [a + b for a, b in zip(rsrp_total, rsrp, strict=True)]
        sinr_total = [a + b for a, b in zip(sinr_total, sinr, strict=True)]
        measured_total += measured
        unavailable_total += unavailable
        outage_total += len(out)
        longest_total = max(longest_total, max(lengths, default=0.0))
        samples_total += f.summary.get("n", 0)
        meeting += bool(met.availability)
    pct_total = 100.0 * (1 - unavailable_total / measured_total) if measured_total else None
    lat_total = _pcts(hist_total)
    return Scorecard(
        project_id=project_id,
        start=start,
        end=end,
        targets=targets,
        project=ProjectAvailability(
            flows=len(items),
            flows_meeting_target=meeting,
            measured_s=measured_total,
            unavailable_s=unavailable_total,
            availability_pct=pct_total,
            outages=outage_total,
            longest_outage_s=longest_total,
            samples=samples_total,
            latency_ms=lat_total,
            rsrp_bands=_bands(rsrp_total),
            sinr_bands=_bands(sinr_total),
            met=_verdict(pct_total, lat_total.p99, targets),
        ),
        devices=items,
    )
