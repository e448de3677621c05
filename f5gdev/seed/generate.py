"""Seeding: projects, devices and weeks of stream rows through parallel binary COPY.

The data is shaped like the simulator's (AGV states and battery cycles, a lognormal 5G
latency around 10 ms with RSRP near -90 dBm, ~2 % failed inspections over six defect
types, three machine metrics) but generated in vectorised day-sized batches per device.
Each stream table is loaded over its own connection, so the database's cores, not Python,
set the pace. Rows per device per day is a parameter: CI runs a few hundred, benchmarks
thousands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import asyncpg
import numpy as np
import numpy.typing as npt

from f5gdev.seed.pgbinary import HEADER, TRAILER, Field, encode, to_pg_us
from services.core.db import asyncpg_dsn
from services.core.tables import STREAM_COLUMNS

log = logging.getLogger(__name__)

KINDS: Final = (("station", "inspections"), ("agv", "agv_status"), ("cpe", "link_kpis"))
KINDS_ALL: Final = (*KINDS, ("machine", "telemetry"))
AGV_STATES: Final = ("moving", "loading", "idle", "charging", "error", "estop")
AGV_SHARES: Final = (0.60, 0.15, 0.10, 0.12, 0.02, 0.01)
DEFECT_TYPES: Final = ("scratch", "dent", "missing_screw", "misalignment", "stain", "crack")
METRICS: Final = ("temperature_c", "vibration_mm_s", "spindle_rpm")
# Machine states for OEE (docs/device-guide.md), beside the process metrics.
MACHINE_STATE_METRICS: Final = ("state", "reason", "count.produced", "count.good")
TELEMETRY_METRICS: Final = (*METRICS, *MACHINE_STATE_METRICS)

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SeedDevice:
    project: str
    device: str
    kind: str
    table: str
    index: int


@dataclass(frozen=True)
class SeedPlan:
    projects: int
    devices: int
    days: float
    rows_per_device_per_day: int
    end: datetime

    def device_list(self) -> list[SeedDevice]:
        out = []
        for i in range(self.devices):
            project = f"p{i % self.projects + 1}"
            kind, table = KINDS_ALL[(i // self.projects) % len(KINDS_ALL)]
            out.append(SeedDevice(project, f"{kind}-{i:04d}", kind, table, i))
        return out


def _times(plan: SeedPlan, day: int, dev: SeedDevice, rows: int) -> F64:
    start = plan.end.timestamp() - plan.days * 86400 + day * 86400
    step = 86400 / rows
    # Devices report on a fixed cadence, offset from each other.
    t = start + (dev.index % 97) / 97 * step + np.arange(rows, dtype=np.float64) * step
    out: F64 = t[t < plan.end.timestamp()]
    return out


# Link outages: one silence per 5G module and day, of 1 to 15 minutes, at a time drawn per
# device and day (its own generator, so the other streams' values do not change). The
# module sends nothing meanwhile and its seq goes on where it stopped, as after a radio
# outage with nothing buffered; the 5G scorecard counts these as outages.
LINK_OUTAGE_S: Final = (60.0, 900.0)


def _link_outages(plan: SeedPlan, day: int, dev: SeedDevice, t: F64) -> F64:
    """`t` without the times that fall in this device's outage of the day."""
    rng = np.random.default_rng((dev.index + 1) * 1_000_003 + day)
    start = plan.end.timestamp() - plan.days * 86400 + day * 86400
    length = rng.uniform(*LINK_OUTAGE_S)
    begin = start + rng.uniform(0, 86400 - length)
    out: F64 = t[(t < begin) | (t >= begin + length)]
    return out


def _ids(dev: SeedDevice) -> list[Field]:
    return [Field("text", dev.project.encode()), Field("text", dev.device.encode())]


def _agv(dev: SeedDevice, t: F64, seq0: int, rng: np.random.Generator) -> Iterator[bytes]:
    n = len(t)
    # A one-hour duty cycle per AGV: move, load, idle, charge, with rare errors and e-stops.
    phase = (t / 3600 + dev.index * 0.137) % 1.0
    bounds = np.cumsum(AGV_SHARES)
    state = np.searchsorted(bounds, phase, side="right").clip(0, len(AGV_STATES) - 1)
    battery = np.clip(100 - 85 * phase + rng.normal(0, 1, n), 0, 100)
    ang = phase * 2 * np.pi
    speed = np.where(state == 0, 1.2 + rng.normal(0, 0.1, n).clip(-1, 1), 0.0)
    loc = np.clip(0.97 + rng.normal(0, 0.02, n), 0, 1)
    pg_ts = to_pg_us(t)
    recv = pg_ts + 20_000
    seq = seq0 + np.arange(n, dtype=np.int64)
    for s, name in enumerate(AGV_STATES):
        m = state == s
        k = int(m.sum())
        if not k:
            continue
        err = Field("text", b"E042") if name == "error" else Field("null")
        yield encode(
            k,
            [
                Field("ts", pg_ts[m]),
                *_ids(dev),
                Field("i8", seq[m]),
                Field("f8", 50 + 40 * np.cos(ang[m])),
                Field("f8", 30 + 20 * np.sin(ang[m])),
                Field("f8", (np.degrees(ang[m]) + 90) % 360 - 180),
                Field("f8", speed[m]),
                Field("f8", battery[m]),
                Field("text", name.encode()),
                Field("f8", loc[m]),
                Field("null"),
                err,
                Field("ts", recv[m]),
                Field("null"),  # map_id: the seeded AGVs share one map
            ],
        )


def _link(dev: SeedDevice, t: F64, seq0: int, rng: np.random.Generator) -> Iterator[bytes]:
    n = len(t)
    pg_ts = to_pg_us(t)
    yield encode(
        n,
        [
            Field("ts", pg_ts),
            *_ids(dev),
            Field("i8", seq0 + np.arange(n, dtype=np.int64)),
            Field("f8", np.clip(rng.normal(-90, 6, n), -156, -31)),
            Field("f8", np.clip(rng.normal(15, 5, n), -23, 40)),
            Field("f8", np.clip(rng.lognormal(np.log(10), 0.35, n), 0, 60000)),
            Field("f8", np.clip(rng.normal(-10, 2, n), -43, 20)),
            Field("f8", np.abs(rng.normal(1.5, 0.5, n))),
            Field("f8", np.clip(rng.exponential(0.05, n), 0, 100)),
            Field("f8", np.abs(rng.normal(40, 5, n))),
            Field("f8", np.abs(rng.normal(300, 30, n))),
            Field("text", f"cell-{dev.index % 7}".encode()),
            Field("text", b"URLLC"),
            Field("ts", pg_ts + 15_000),
        ],
    )


def _inspection(dev: SeedDevice, t: F64, seq0: int, rng: np.random.Generator) -> Iterator[bytes]:
    n = len(t)
    pg_ts = to_pg_us(t)
    seq = seq0 + np.arange(n, dtype=np.int64)
    parts = np.char.add(b"P", np.char.zfill(seq.astype("S"), 12))
    failed = rng.random(n) < 0.02
    dtype_ = rng.integers(0, len(DEFECT_TYPES), n)
    conf = np.clip(rng.normal(0.95, 0.02, n), 0, 1)
    inf = np.abs(rng.normal(35, 5, n))
    groups: list[tuple[npt.NDArray[np.bool_], bytes | None]] = [(~failed, None)]
    for d, name in enumerate(DEFECT_TYPES):
        groups.append((failed & (dtype_ == d), name.encode()))
    for mask, defect in groups:
        k = int(mask.sum())
        if not k:
            continue
        defects = (
            Field("null")
            if defect is None
            else Field("jsonb", b'[{"type": "' + defect + b'", "confidence": 0.9}]')
        )
        yield encode(
            k,
            [
                Field("ts", pg_ts[mask]),
                *_ids(dev),
                Field("i8", seq[mask]),
                Field("text", f"st-{dev.index}".encode()),
                Field("text", parts[mask]),
                Field("bool", np.full(k, defect is None)),
                Field("i2", np.full(k, 0 if defect is None else 1, dtype=np.int16)),
                defects,
                Field("f8", conf[mask]),
                Field("f8", inf[mask]),
                Field("text", b"yolo-v8-qc"),
                Field("ts", pg_ts[mask] + 25_000),
            ],
        )


def _machine_states(dev: SeedDevice, t: F64) -> dict[str, F64]:
    """OEE inputs: a state per quarter hour (mostly running, some unplanned downtime with
    reason codes 1-5, idle, setup, planned stops), counters that a restart resets."""
    slot = np.floor(t / 900).astype(np.int64)
    u = ((slot * 2654435761 + dev.index * 40503) % 2**32) / 2**32
    state = np.select([u < 0.80, u < 0.88, u < 0.95, u < 0.98], [1.0, 2.0, 3.0, 5.0], default=4.0)
    reason = np.where(state == 3.0, 1.0 + (slot * 7 + dev.index) % 5, 0.0)
    produced = np.floor(t / 40) % 50_000  # one part per 40 s, reset every ~23 days
    return {
        "state": state,
        "reason": reason,
        "count.produced": produced,
        "count.good": np.floor(produced * 0.97),
    }


def _telemetry(dev: SeedDevice, t: F64, seq0: int, rng: np.random.Generator) -> Iterator[bytes]:
    # rows_per_device_per_day counts rows, shared evenly by the metrics.
    t = t[:: len(TELEMETRY_METRICS)]
    n = len(t)
    pg_ts = to_pg_us(t)
    seq = seq0 + np.arange(n, dtype=np.int64)
    values = {
        "temperature_c": 45 + 5 * np.sin(t / 3600) + rng.normal(0, 0.5, n),
        "vibration_mm_s": np.abs(rng.normal(2.5, 0.4, n)),
        "spindle_rpm": 12000 + rng.normal(0, 50, n),
        **_machine_states(dev, t),
    }
    for metric in TELEMETRY_METRICS:
        yield encode(
            n,
            [
                Field("ts", pg_ts),
                *_ids(dev),
                Field("i8", seq),
                Field("text", metric.encode()),
                Field("f8", values[metric]),
                Field("ts", pg_ts + 10_000),
            ],
        )


Generator = Callable[[SeedDevice, F64, int, np.random.Generator], Iterator[bytes]]
GENERATORS: Final[dict[str, Generator]] = {
    "agv_status": _agv,
    "link_kpis": _link,
    "inspections": _inspection,
    "telemetry": _telemetry,
}


async def _stream(
    plan: SeedPlan, table: str, devs: list[SeedDevice], seed: int
) -> AsyncIterator[bytes]:
    """Day by day, all devices per day: only the current day's chunk and its indexes are
    hot while loading, which keeps PostgreSQL's inserts in memory."""
    yield HEADER
    rngs = {d.index: np.random.default_rng(seed * 100_003 + d.index) for d in devs}
    seqs = dict.fromkeys(rngs, 0)
    for day in range(int(np.ceil(plan.days))):
        for dev in devs:
            t = _times(plan, day, dev, plan.rows_per_device_per_day)
            if table == "link_kpis":
                t = _link_outages(plan, day, dev, t)
            for chunk in GENERATORS[table](dev, t, seqs[dev.index], rngs[dev.index]):
                yield chunk
            seqs[dev.index] += len(t)
            await asyncio.sleep(0)  # let the other tables' COPYs send
    yield TRAILER


async def _copy(url: str, plan: SeedPlan, table: str, devs: list[SeedDevice], seed: int) -> int:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        status = await conn.copy_to_table(
            table,
            source=_stream(plan, table, devs, seed),
            columns=list(STREAM_COLUMNS[table]),
            format="binary",
        )
        return int(str(status).split()[-1])
    finally:
        await conn.close()


async def seed(url: str, plan: SeedPlan, seed: int = 1) -> dict[str, int]:
    """Register projects and devices, then load every stream table concurrently."""
    devs = plan.device_list()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.executemany(
            "INSERT INTO projects (id, name, enterprise, city, scenario) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            [
                (
                    f"p{i + 1}",
                    f"Demo plant {i + 1}",
                    "Demo Manufacturing",
                    "Shenzhen",
                    "vision inspection, AGV logistics",
                )
                for i in range(plan.projects)
            ],
        )
        await conn.executemany(
            "INSERT INTO devices (project_id, device_id, kind, first_seen, last_seen, online) "
            "VALUES ($1, $2, $3, $4, $5, true) ON CONFLICT (project_id, device_id) "
            "DO UPDATE SET last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen)",
            [
                (d.project, d.device, d.kind, plan.end - timedelta(days=plan.days), plan.end)
                for d in devs
            ],
        )
        await _oee_settings(conn, plan)
    finally:
        await conn.close()
    by_table: dict[str, list[SeedDevice]] = {}
    for d in devs:
        by_table.setdefault(d.table, []).append(d)
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(_copy(url, plan, table, ds, seed) for table, ds in by_table.items())
    )
    result = dict(zip(by_table, counts, strict=True))
    log.info("seeded %d rows in %.1f s", sum(counts), time.perf_counter() - started)
    return result


OEE_SETTINGS: Final = {
    "timezone": "Asia/Shanghai",
    "shifts": [
        {"name": "A", "start": "06:00", "end": "14:00", "days": [1, 2, 3, 4, 5, 6, 7]},
        {"name": "B", "start": "14:00", "end": "22:00", "days": [1, 2, 3, 4, 5, 6, 7]},
        {"name": "C", "start": "22:00", "end": "06:00", "days": [1, 2, 3, 4, 5, 6, 7]},
    ],
    "ideal_cycle_s": {"default": 30.0, "lines": {}, "machines": {}},
    "reasons": {"1": "Tool break", "2": "No material", "3": "Jam", "4": "Quality check",
                "5": "Operator absent"},
}  # fmt: skip


async def _oee_settings(conn: asyncpg.Connection, plan: SeedPlan) -> None:
    """Three shifts and an ideal cycle time per project, so OEE has a plan to measure."""
    await conn.executemany(
        "INSERT INTO oee_settings (project_id, settings, updated_by) "
        "VALUES ($1, $2::jsonb, 'seed') ON CONFLICT (project_id) DO NOTHING",
        [(f"p{i + 1}", json.dumps(OEE_SETTINGS)) for i in range(plan.projects)],
    )


def default_end() -> datetime:
    now = datetime.now(UTC)
    return now.replace(second=0, microsecond=0)


def describe(result: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in sorted(result.items()))
