"""Simulated machines follow the OEE machine-state convention, and the simulated plants
get a shift plan, so `make run` shows OEE."""

from __future__ import annotations

import random
from collections import Counter

import orjson
import sqlalchemy as sa

from services.core import db
from services.core.contracts import decode
from services.core.settings import Settings
from services.simulator.devices import DOWN, RUNNING, Machine, MachineStates
from services.simulator.factory import SIM_OEE_SETTINGS, project_infos, register_oee_settings
from tests.conftest import make_settings


def test_machine_states_run_mostly_stop_with_reasons_and_count_parts() -> None:
    states = MachineStates()
    rng = random.Random(5)
    seconds: Counter[int] = Counter()
    reasons: set[int] = set()
    produced = good = resets = 0
    t = 1_000_000.0
    for _ in range(8 * 3600):  # eight simulated hours, one sample a second
        m = states.metrics(t, rng)
        seconds[int(m["state"])] += 1
        if m["state"] == DOWN:
            reasons.add(int(m["reason"]))
        else:
            assert m["reason"] == 0
        if m["count.produced"] < produced:
            resets += 1
        else:
            assert m["count.good"] >= good  # counters only rise, until a reset
            if m["state"] != RUNNING:
                assert m["count.produced"] == produced  # parts are made only while running
        assert m["count.good"] <= m["count.produced"]
        produced, good = int(m["count.produced"]), int(m["count.good"])
        t += 1.0
    total = sum(seconds.values())
    assert 0.6 < seconds[RUNNING] / total < 0.95, seconds
    assert set(seconds) == {1, 2, 3, 4, 5}, seconds
    assert reasons <= {1, 2, 3, 4, 5}
    assert len(reasons) >= 3
    assert produced + resets > 0


def test_machine_records_honour_the_telemetry_contract() -> None:
    machine = Machine("p1", "machine", "cnc-01", "telemetry", random.Random(1))
    for _ in range(50):
        decoded = decode("telemetry", orjson.dumps(machine.next_record(0.0)))
        metrics = decoded.records[0].metrics
        assert {"state", "reason", "count.produced", "count.good"} <= set(metrics)


def test_simulated_projects_get_a_plan_but_keep_their_own(database_url: str) -> None:
    settings: Settings = make_settings(database_url, 1883, simulator={"projects": 2})
    first, second = (info.id for info in project_infos(2))
    engine = sa.create_engine(db.sync_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO oee_settings (project_id, settings, updated_by) "
                    "VALUES (:p, '{\"shifts\": []}', 'admin')"
                ),
                {"p": second},
            )
        register_oee_settings(settings)
        with engine.connect() as conn:
            rows = dict(
                conn.execute(sa.text("SELECT project_id, settings FROM oee_settings")).all()
            )
    finally:
        engine.dispose()
    assert rows[first] == SIM_OEE_SETTINGS
    assert rows[second] == {"shifts": []}
