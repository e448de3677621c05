"""OEE per ISO 22400-2 from the maintained machine-state tables and the project's shifts.

Time model (all in seconds, within the planned shifts only; docs/plant.md):
planned shift time POT; planned downtime PDOT = states 0 and 4; planned busy time
PBT = POT - PDOT; actual production (run) time APT = state 1. Availability = APT / PBT,
effectiveness = PRI x produced / APT (PRI = ideal cycle time), quality = good / produced,
OEE = A x E x Q. Lines and the project sum the machines' times and quantities first, then
divide (effectiveness over the machines that have an ideal cycle time), so a line's OEE
weighs each machine by its planned time. No shifts: every ratio is null, never 100 %.

The shifts are expanded into UTC intervals here; the database sums, per shift, the hourly
rows of its whole hours, the five-minute rows at its edges and, after the maintainer's
watermark, raw rows through the maintainer's own SELECT: thirty days of a dozen machines
are some 20 k small rows, never the raw telemetry.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.oee.models import (
    Figures,
    OeePareto,
    OeeRow,
    OeeSettings,
    OeeSettingsOut,
    OeeSummary,
    OeeTrend,
    ParetoItem,
    TrendItem,
    parse_hhmm,
)
from services.api.rollups import machine

Group = Literal["machine", "line", "project"]
RUNNING, DOWN = 1, 3
PLANNED_DOWN = (0, 4)
IDLE, SETUP = 2, 5


@dataclass(frozen=True)
class ShiftSpan:
    name: str
    day: date
    start: datetime  # UTC, whole shift
    end: datetime
    a: datetime  # clipped to the range
    b: datetime


def align(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The range on whole five-minute buckets (both ends rounded down)."""
    return machine.floor_5m(start), machine.floor_5m(end)


def shift_spans(cfg: OeeSettings, start: datetime, end: datetime) -> list[ShiftSpan]:
    """Every shift occurrence overlapping [start, end), in UTC, clipped to it."""
    zone = cfg.zone()
    out: list[ShiftSpan] = []
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date()
    day = first
    while day <= last:
        for shift in cfg.shifts:
            if day.isoweekday() not in shift.days:
                continue
            s_local = datetime.combine(day, parse_hhmm(shift.start), tzinfo=zone)
            e_day = day if parse_hhmm(shift.end) > parse_hhmm(shift.start) else day + timedelta(1)
            e_local = datetime.combine(e_day, parse_hhmm(shift.end), tzinfo=zone)
            s_utc, e_utc = s_local.astimezone(UTC), e_local.astimezone(UTC)
            a, b = max(s_utc, start), min(e_utc, end)
            if a < b:
                out.append(ShiftSpan(shift.name, day, s_utc, e_utc, a, b))
        day += timedelta(days=1)
    out.sort(key=lambda s: s.a)
    return out


async def load_settings(conn: AsyncConnection, project_id: str) -> OeeSettingsOut:
    row = (
        await conn.execute(
            sa.text(
                "SELECT settings, updated_at, updated_by FROM oee_settings WHERE project_id = :p"
            ),
            {"p": project_id},
        )
    ).first()
    if row is None:
        return OeeSettingsOut(project_id=project_id)
    return OeeSettingsOut(
        project_id=project_id,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        **row.settings,
    )


def _segments(
    spans: list[ShiftSpan], wm: datetime | None
) -> dict[str, tuple[list[datetime], list[int]]]:
    """Per source, thresholds [a1, b1, a2, b2, ...] and the span (1-based) of each pair:
    whole hours before the watermark from `1h`, the rest before it from `5m`, the time
    after it from `live` (raw rows)."""
    out: dict[str, tuple[list[datetime], list[int]]] = {s: ([], []) for s in ("1h", "5m", "live")}

    def add(source: str, a: datetime, b: datetime, i: int) -> None:
        if a < b:
            bounds, idx = out[source]
            bounds += [a, b]
            idx.append(i)

    for i, span in enumerate(spans, start=1):
        done = span.a if wm is None else min(max(wm, span.a), span.b)
        ha = machine.floor_1h(span.a - timedelta(microseconds=1)) + machine.HOUR
        hb = machine.floor_1h(done)
        if ha < hb:
            add("5m", span.a, ha, i)
            add("1h", ha, hb, i)
            add("5m", hb, done, i)
        else:
            add("5m", span.a, done, i)
        add("live", done, span.b, i)
    return out


async def _rows(
    conn: AsyncConnection,
    project_id: str,
    spans: list[ShiftSpan],
    *,
    per_shift: bool,
    counts: bool,
    reasons: bool = False,
) -> list[tuple[Any, ...]]:
    """Seconds per (shift?, device, state, reason) or counter deltas per (shift?, device)
    inside the spans: maintained hours and five minutes up to the watermark, raw rows
    after it.

    The spans are sorted and disjoint: as thresholds [a1, b1, a2, b2, ...], a bucket in
    pair k falls in slot 2k - 1 (odd), one between pairs in an even slot, so each source
    is read once over its range, never joined row by row against every span."""
    if not spans:
        return []
    wm = await machine.watermark(conn)
    kind = "counts" if counts else "states"
    if counts:
        cols, keys, sums = "bucket, device_id, produced, good", "device_id", "produced, good"
    else:
        cols = "bucket, device_id, state, reason, seconds, entries"
        keys = "device_id, state, reason" if reasons else "device_id, state"
        sums = "seconds, entries"
    live = machine.counts_select(projects=True) if counts else machine.states_select(projects=True)
    params: dict[str, Any] = {"p": project_id, "projects": [project_id], "now": datetime.now(UTC)}
    parts = []
    for source, (bounds, idx) in _segments(spans, wm).items():
        if not bounds:
            continue
        # Slot k (1-based) of the thresholds -> its span, 0 between spans.
        slots = [idx[(k - 1) // 2] if k % 2 else 0 for k in range(1, len(bounds) + 1)]
        params[f"t_{source}"], params[f"i_{source}"] = bounds, slots
        if source == "live":
            params["a"], params["b"] = min(bounds), max(bounds)
            rows = f"SELECT {cols} FROM ({live}) AS live"
        elif source == "1h":
            params["lo_1h"], params["hi_1h"] = min(bounds), max(bounds)
            rows = (
                f"SELECT {cols} FROM oee_{kind}_1h WHERE project_id = :p "
                "AND bucket >= :lo_1h AND bucket < :hi_1h"
            )
        else:
            # Five-minute rows only at the shifts' edges: one index range per edge, not
            # every five minutes of the range.
            params["a_5m"], params["b_5m"] = bounds[0::2], bounds[1::2]
            rows = (
                f"SELECT {cols} FROM oee_{kind}_5m JOIN unnest(CAST(:a_5m AS timestamptz[]), "
                "CAST(:b_5m AS timestamptz[])) AS seg(a, b) ON bucket >= seg.a AND bucket < seg.b "
                "WHERE project_id = :p"
            )
        slot = f"width_bucket(bucket, CAST(:t_{source} AS timestamptz[]))"
        parts.append(
            f"SELECT coalesce((CAST(:i_{source} AS integer[]))[{slot}], 0) AS i, {keys}, {sums} "
            f"FROM ({rows}) AS r_{source}"
        )
    # No WHERE on the slot: the planner cannot estimate one, took ~1 % of the rows for
    # it, and sorted tens of thousands of rows to group them; unfiltered it hashes them.
    # Rows between shifts (slot 0) are grouped apart and dropped here.
    shift_key = "i, " if per_shift else ""
    n_keys = keys.count(",") + 1 + (1 if per_shift else 0)
    only = "" if per_shift else " FILTER (WHERE i > 0)"
    agg = ", ".join(f"sum({c.strip()}){only}" for c in sums.split(","))
    # Grouping compares device ids bytewise, never under the locale's collation.
    outer = keys.replace("device_id", 'device_id COLLATE "C" AS device_id')
    query = (
        f"SELECT {shift_key}{outer}, {agg} FROM ({' UNION ALL '.join(parts)}) AS o "
        f"GROUP BY {', '.join(str(i) for i in range(1, n_keys + 1))}"
    )
    found = [tuple(r) for r in await conn.execute(sa.text(query), params)]
    if per_shift:
        return [r for r in found if r[0] > 0]
    return [r for r in found if r[-1] is not None]


async def _lines(conn: AsyncConnection, project_id: str) -> dict[str, str | None]:
    rows = await conn.execute(
        sa.text(
            "SELECT device_id, metadata->>'line' AS line FROM devices WHERE project_id = :p "
            "AND metadata ? 'line'"
        ),
        {"p": project_id},
    )
    return {r.device_id: r.line for r in rows}


@dataclass
class Acc:
    """Sums of one machine, line, project or shift; ratios come from `figures`."""

    pot: float = 0.0
    states: dict[int, float] = field(default_factory=lambda: defaultdict(float))
    produced: float = 0.0
    good: float = 0.0
    ideal_work: float = 0.0  # sum of PRI x produced over machines with a PRI
    ideal_run: float = 0.0  # APT of those machines
    pri: float | None = None
    machines: set[str] = field(default_factory=set)

    def add(self, other: Acc) -> None:
        self.pot += other.pot
        for k, v in other.states.items():
            self.states[k] += v
        self.produced += other.produced
        self.good += other.good
        self.ideal_work += other.ideal_work
        self.ideal_run += other.ideal_run
        self.machines |= other.machines

    def finish(self, pri: float | None) -> None:
        """Record a single machine's ideal cycle time and its share of ideal work."""
        self.pri = pri
        if pri is not None:
            self.ideal_work = pri * self.produced
            self.ideal_run = self.states.get(RUNNING, 0.0)

    def figures(self) -> dict[str, Any]:
        st = self.states
        pdot = sum(st.get(k, 0.0) for k in PLANNED_DOWN)
        pbt = max(0.0, self.pot - pdot)
        run = st.get(RUNNING, 0.0)
        known = {RUNNING, DOWN, IDLE, SETUP, *PLANNED_DOWN}
        other = sum(v for k, v in st.items() if k not in known)
        accounted = run + st.get(IDLE, 0.0) + st.get(DOWN, 0.0) + st.get(SETUP, 0.0) + other
        a = run / pbt if pbt > 0 else None
        e = self.ideal_work / self.ideal_run if self.ideal_run > 0 else None
        q = self.good / self.produced if self.produced > 0 else None
        return Figures(
            planned_shift_s=self.pot,
            planned_downtime_s=pdot,
            planned_busy_s=pbt,
            run_s=run,
            idle_s=st.get(IDLE, 0.0),
            down_s=st.get(DOWN, 0.0),
            setup_s=st.get(SETUP, 0.0),
            other_s=other,
            unknown_s=max(0.0, pbt - accounted),
            produced=self.produced,
            good=self.good,
            ideal_cycle_s=self.pri,
            availability=a,
            effectiveness=e,
            quality=q,
            oee=None if a is None or e is None or q is None else a * e * q,
        ).model_dump()


def _pri(cfg: OeeSettings, device: str, line: str | None) -> float | None:
    ic = cfg.ideal_cycle_s
    if device in ic.machines:
        return ic.machines[device]
    if line is not None and line in ic.lines:
        return ic.lines[line]
    return ic.default


async def _machines(
    conn: AsyncConnection,
    project_id: str,
    cfg: OeeSettings,
    spans: list[ShiftSpan],
    per_shift: bool,
) -> tuple[dict[tuple[int, str], Acc], dict[str, str | None]]:
    """Per (shift, machine) sums; the shift is 1-based into `spans`, or 0 for all of them
    (a machine's figures need no split by shift: PRI x produced adds up)."""
    states = await _rows(conn, project_id, spans, per_shift=per_shift, counts=False)
    counts = await _rows(conn, project_id, spans, per_shift=per_shift, counts=True)
    lines = await _lines(conn, project_id)
    accs: dict[tuple[int, str], Acc] = {}
    total = sum((s.b - s.a).total_seconds() for s in spans)

    def acc(i: int, device: str) -> Acc:
        got = accs.get((i, device))
        if got is None:
            pot = total if i == 0 else (spans[i - 1].b - spans[i - 1].a).total_seconds()
            got = accs[(i, device)] = Acc(pot=pot)
            got.machines.add(device)
        return got

    for row in states:
        i, (device, state, seconds, _entries) = (row[0], row[1:]) if per_shift else (0, row)
        acc(int(i), device).states[int(state)] += float(seconds)
    for row in counts:
        i, (device, produced, good) = (row[0], row[1:]) if per_shift else (0, row)
        a = acc(int(i), device)
        a.produced += float(produced)
        a.good += float(good)
    devices = {d for _, d in accs}
    # A machine is planned for every shift in range, also those it sent nothing in.
    for device in devices:
        for i in range(1, len(spans) + 1) if per_shift else (0,):
            acc(i, device)
    for (_, device), a in accs.items():
        a.finish(_pri(cfg, device, lines.get(device)))
    return accs, lines


async def oee_summary(
    conn: AsyncConnection, project_id: str, start: datetime, end: datetime, by: Group = "project"
) -> OeeSummary:
    """OEE of a project's machines, lines or the whole project over [start, end)."""
    cfg = await load_settings(conn, project_id)
    start, end = align(start, end)
    spans = shift_spans(cfg, start, end) if end > start else []
    accs, lines = await _machines(conn, project_id, cfg, spans, per_shift=False)
    groups: dict[str | None, Acc] = {}
    line_of: dict[str | None, str | None] = {}
    for (_, device), a in sorted(accs.items()):
        key = device if by == "machine" else lines.get(device) if by == "line" else project_id
        line_of[key] = lines.get(device) if by != "project" else None
        if key not in groups:
            groups[key] = Acc()
            if by == "machine":
                groups[key].pri = a.pri
        groups[key].add(a)
    if by == "project" and not groups:
        groups[project_id] = Acc()
        line_of[project_id] = None
    items = [
        OeeRow(key=k, line=line_of.get(k), machines=len(g.machines), **g.figures())
        for k, g in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]
    return OeeSummary(
        project_id=project_id,
        by=by,
        start=start,
        end=end,
        timezone=cfg.timezone,
        planned=bool(cfg.shifts),
        items=items,
    )


async def oee_pareto(
    conn: AsyncConnection, project_id: str, start: datetime, end: datetime
) -> OeePareto:
    """Unplanned downtime (state 3) inside the shifts by reason: seconds and stops."""
    cfg = await load_settings(conn, project_id)
    start, end = align(start, end)
    spans = shift_spans(cfg, start, end) if end > start else []
    rows = await _rows(conn, project_id, spans, per_shift=False, counts=False, reasons=True)
    by_reason: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for _device, state, reason, seconds, entries in rows:
        if int(state) == DOWN:
            by_reason[int(reason)][0] += float(seconds)
            by_reason[int(reason)][1] += int(entries)
    total = sum(v[0] for v in by_reason.values())
    items: list[ParetoItem] = []
    running = 0.0
    for reason, (seconds, count) in sorted(by_reason.items(), key=lambda kv: (-kv[1][0], kv[0])):
        running += seconds
        items.append(
            ParetoItem(
                reason=reason,
                name=cfg.reasons.get(str(reason)),
                seconds=seconds,
                count=int(count),
                share=seconds / total if total else 0.0,
                cumulative_share=running / total if total else 0.0,
            )
        )
    return OeePareto(project_id=project_id, start=start, end=end, total_seconds=total, items=items)


async def oee_trend(
    conn: AsyncConnection, project_id: str, start: datetime, end: datetime
) -> OeeTrend:
    """Project OEE per shift occurrence, oldest first."""
    cfg = await load_settings(conn, project_id)
    start, end = align(start, end)
    spans = shift_spans(cfg, start, end) if end > start else []
    accs, _ = await _machines(conn, project_id, cfg, spans, per_shift=True)
    per: dict[int, Acc] = {}
    for (i, _device), a in accs.items():
        per.setdefault(i, Acc()).add(a)
    items = []
    for i, span in enumerate(spans, start=1):
        a = per.get(i) or Acc()
        items.append(
            TrendItem(
                shift=span.name,
                date=span.day.isoformat(),
                shift_start=span.start,
                shift_end=span.end,
                **a.figures(),
            )
        )
    return OeeTrend(project_id=project_id, start=start, end=end, timezone=cfg.timezone, items=items)
