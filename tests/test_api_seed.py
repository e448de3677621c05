"""Seeding: the binary COPY encoder against PostgreSQL, and the `factory5g seed` command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from f5gdev.seed.generate import KINDS_ALL, TELEMETRY_METRICS
from services.core import db


def _rows(url: str, sql: str) -> list[Any]:
    engine = sa.create_engine(db.sync_url(url))
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))
    finally:
        engine.dispose()


def test_seed_command_loads_every_stream_and_builds_rollups(
    new_database: Callable[..., str],
) -> None:
    url = new_database()
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "seed", "--days", "0.5", "--devices", "8",
         "--projects", "2", "--rows-per-day", "288"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "F5G_DATABASE__URL": url},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "seeded" in out.stdout
    assert "rollups built" in out.stdout
    per_device = 144  # half a day at 288 per day
    counts = {
        t: _rows(url, f"SELECT count(*) FROM {t}")[0][0]
        for t in ("inspections", "agv_status", "link_kpis", "telemetry")
    }
    per_kind = 8 // len(KINDS_ALL)
    assert counts["agv_status"] == per_kind * per_device
    assert counts["inspections"] == per_kind * per_device
    # Each metric takes every len(TELEMETRY_METRICS)-th of a device's timestamps.
    per_metric = -(-per_device // len(TELEMETRY_METRICS))
    assert counts["telemetry"] == per_kind * per_metric * len(TELEMETRY_METRICS)
    # Values survive the hand-built binary format: types, NULLs, JSONB and text intact.
    failed = _rows(url, "SELECT defects, defect_count FROM inspections WHERE NOT passed")
    for defects, count in failed:
        assert isinstance(defects, list)
        assert len(defects) == count == 1
    agv = _rows(url, "SELECT state, battery, error_code, task_id FROM agv_status")
    assert {r.state for r in agv} <= {"idle", "moving", "charging", "loading", "error", "estop"}
    assert all(0 <= r.battery <= 100 and r.task_id is None for r in agv)
    assert all((r.error_code is not None) == (r.state == "error") for r in agv)
    ts = _rows(url, "SELECT min(ts), max(ts), min(received_at - ts) FROM link_kpis")[0]
    assert ts[0] < ts[1]
    assert ts[2].total_seconds() > 0
    devices = _rows(url, "SELECT project_id, count(*) FROM devices GROUP BY 1 ORDER BY 1")
    assert [tuple(d) for d in devices] == [("p1", 4), ("p2", 4)]
    marks = _rows(url, "SELECT count(*) FROM rollup_watermarks")[0][0]
    assert marks == 11  # five specs at two resolutions, and the link gaps (5G availability)
    again = subprocess.run(
        [sys.executable, "-m", "services.cli", "rollup", "--once", "--since",
         "2020-01-01T00:00:00"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "F5G_DATABASE__URL": url},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "rollups current" in again.stdout
    total = _rows(url, "SELECT sum(n) FROM rollup_agv_1m")[0][0]
    assert total == counts["agv_status"]
