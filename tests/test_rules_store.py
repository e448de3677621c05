"""Bulk storing of alarm transitions must leave exactly what one statement per transition does.

The same mixed batch (a storm of openings, repeats of active alarms, an opening of an alarm
twice in one batch, updates and clears between them) is stored once through `store.apply`
and once row by row through `_apply_one`, each in its own project; alarms, events and the
returned (published) transitions must match.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from services.core.db import asyncpg_dsn
from services.rules import store
from services.rules.engine import CLEARED, OPENED, UPDATED, Transition


def tr(kind: str, project: str, device: str, at: float, count: int = 1) -> Transition:
    return Transition(
        kind,
        project,
        "agv",
        device,
        "safety_stop",
        "state",
        "critical",
        at,
        at,
        float(count),
        count,
        f"{device} {kind}",
        {"n": count, "device": device},
    )


def batch(project: str, t0: float) -> list[Transition]:
    out = [tr(OPENED, project, f"d{i}", t0) for i in range(10)]
    out.append(tr(UPDATED, project, "d3", t0 + 1, 2))
    out.append(tr(OPENED, project, "d3", t0 + 2, 3))  # already active: counted as a repeat
    out.append(tr(CLEARED, project, "d4", t0 + 3))
    out.extend(tr(OPENED, project, f"d{i}", t0 + 4, 2) for i in (4, 5, 10, 11, 12))
    out.append(tr(OPENED, project, "d10", t0 + 5, 4))  # twice in one batch
    return out


async def snapshot(conn: Any, project: str) -> tuple[list[Any], list[Any]]:
    alarms = await conn.fetch(
        "SELECT device_id, state, count, last_value, evidence, opened_at, updated_at,"
        " cleared_at, message FROM alarms WHERE project_id = $1 ORDER BY device_id, id",
        project,
    )
    events = await conn.fetch(
        "SELECT a.device_id, e.transition, e.ts, e.severity, e.evidence FROM alarm_events e"
        " JOIN alarms a ON a.id = e.alarm_id WHERE a.project_id = $1"
        " ORDER BY a.device_id, e.ts, e.transition",
        project,
    )
    return [tuple(r) for r in alarms], [tuple(r) for r in events]


async def test_bulk_store_matches_row_by_row(database_url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    t0 = time.time() - 60
    try:
        # Earlier batches: d5 is active before the storm in both projects.
        for project in ("bulk", "rows"):
            await store.apply(conn, [tr(OPENED, project, "d5", t0 - 10)])
        bulk = await store.apply(conn, batch("bulk", t0))
        rows: list[store.Stored] = []
        async with conn.transaction():
            for t in batch("rows", t0):
                stored = await store._apply_one(conn, t)
                if stored is not None:
                    rows.append(stored)
        assert await snapshot(conn, "bulk") == await snapshot(conn, "rows")
        assert [(s.transition.device, s.name, s.state, s.count) for s in bulk] == [
            (s.transition.device, s.name, s.state, s.count) for s in rows
        ]
        runs = store._runs(batch("bulk", t0))
        assert max(len(r) for r in runs) >= store.BULK_MIN  # the bulk path was taken
    finally:
        await conn.close()


def test_runs_keep_order_and_never_repeat_an_alarm() -> None:
    transitions = batch("p", 0.0)
    runs = store._runs(transitions)
    assert [t for run in runs for t in run] == transitions
    for run in runs:
        keys = [(t.project, t.device, t.rule) for t in run]
        assert len(keys) == len(set(keys))
        assert len(run) == 1 or all(t.transition == OPENED for t in run)
