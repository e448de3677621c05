"""The local stack's registry facts for the simulated plant, written with the schema
owner's rights before the simulator starts.

The simulator runs as `factory5g_simulator`, which may only name its projects (least
privilege, `services/security/db_roles.py`): it may not write `devices` or `floor_maps`.
So `factory5g up` records here what the demo needs to show every view: hall 1's extent
and zones for the floor map, and which 5G module carries which vision station
(`module_of`, for the alarms' root cause). The simulator still tries the same writes
itself and logs that its role may not; under `up` they are already there.
"""

from __future__ import annotations

import sqlalchemy as sa

from services.core.db import sync_url
from services.core.settings import Settings
from services.simulator.devices import pair_stations
from services.simulator.factory import build_fleet, project_infos, register_modules
from services.simulator.floor import register_floor


def seed_demo_registry(settings: Settings) -> int:
    """Register hall 1 for each simulated project and the module→station pairs; returns
    the number of pairs recorded."""
    engine = sa.create_engine(sync_url(settings.database.url))
    try:
        with engine.begin() as conn:
            for info in project_infos(settings.simulator.projects):
                conn.execute(
                    sa.text(
                        "INSERT INTO projects (id, name) VALUES (:p, :p) ON CONFLICT DO NOTHING"
                    ),
                    {"p": info.id},
                )
                register_floor(conn, info.id)
    finally:
        engine.dispose()
    pairs = pair_stations(build_fleet(settings))
    register_modules(settings, pairs)
    return len(pairs)
