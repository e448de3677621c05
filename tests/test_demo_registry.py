"""`factory5g up` registers the simulated plant's floor maps and module-station pairs with
the owner's rights, since the simulator's own role may not write them: without this the
floor map had no frame and no alarm could be related to its station's 5G module."""

from __future__ import annotations

from collections.abc import Callable

import psycopg2

from f5gdev.devstack.demo_registry import seed_demo_registry
from services.simulator.factory import project_infos
from tests.conftest import make_settings

SIMULATOR = {"projects": 2, "stations": 3, "modules": 2, "agvs": 2, "machines": 1}


def test_the_demo_registry_is_recorded_once(new_database: Callable[..., str]) -> None:
    url = new_database()
    settings = make_settings(url, 1883, simulator=SIMULATOR)
    projects = [p.id for p in project_infos(2)]
    # Stations st-01, st-02 are carried by cpe-01, cpe-02 in each project; st-03 has none.
    assert seed_demo_registry(settings) == 4
    assert seed_demo_registry(settings) == 4  # again: nothing duplicated
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT project_id, map_id, x1, y1 FROM floor_maps ORDER BY 1")
            assert cur.fetchall() == [(p, "hall-1", 60.0, 30.0) for p in sorted(projects)]
            cur.execute(
                "SELECT project_id, device_id, metadata->>'module_of' FROM devices "
                "WHERE metadata ? 'module_of' ORDER BY 1, 2"
            )
            assert cur.fetchall() == sorted(
                (p, f"cpe-0{i}", f"st-0{i}") for p in projects for i in (1, 2)
            )
    finally:
        conn.close()
