"""The local stack's command allow-list for the simulated fleet, so `factory5g up` has
sendable commands.

Nothing is sendable by default (docs/commands.md): on a real platform an administrator
allows each name per project and device kind. The local stack's simulator, though, is
there to show the loop, and a dashboard whose device pages offer no command shows none of
it. So `up` allows, for the simulated projects only, the names the simulator obeys: the
VDA 5050 AGVs' instant actions, the Sparkplug machines' metric write (their `Setpoint`)
and a native command the native fleet answers. It inserts with ON CONFLICT DO NOTHING:
running `up` again neither duplicates a row nor brings back one the operator kept, and a
name the operator disallowed at run time comes back only at the next `up`.
"""

from __future__ import annotations

import sqlalchemy as sa

from services.core.db import sync_url
from services.core.settings import Settings
from services.simulator.factory import project_infos

ACTOR = "factory5g up (demo)"
# What the simulated AGVs obey (services/simulator/protocols.py).
VDA5050_ACTIONS = ("startPause", "stopPause", "cancelOrder", "stateRequest", "factsheetRequest")
# Kinds the simulator's native fleet has; it accepts and completes any command at once.
NATIVE = (("machine", "stop"), ("machine", "start"))


def demo_allowlist(settings: Settings) -> list[tuple[str, str, str]]:
    """(project, kind, name) rows for what the simulator, as configured, runs."""
    sim = settings.simulator
    projects = [info.id for info in project_infos(sim.projects)]
    rows: list[tuple[str, str, str]] = []
    if sim.vda5050_agvs:
        project = settings.ingest.vda5050_default_project
        rows += [(project, "agv", name) for name in VDA5050_ACTIONS]
    # The simulator puts Sparkplug line n in group projects[n % len(projects)].
    groups = sorted({projects[line % len(projects)] for line in range(sim.sparkplug_lines)})
    rows += [(group, "spb-device", "write") for group in groups]
    if sim.machines:
        rows += [(p, kind, name) for p in projects for kind, name in NATIVE]
    return rows


def seed_command_allowlist(settings: Settings) -> int:
    """Allow the demo's commands; returns the rows added (0 when they were all there)."""
    insert = sa.text(
        "INSERT INTO command_allow (project_id, kind, name, created_by) "
        "VALUES (:p, :k, :n, :by) ON CONFLICT DO NOTHING"
    )
    engine = sa.create_engine(sync_url(settings.database.url))
    try:
        with engine.begin() as conn:
            return sum(
                conn.execute(insert, {"p": p, "k": k, "n": n, "by": ACTOR}).rowcount
                for p, k, n in demo_allowlist(settings)
            )
    finally:
        engine.dispose()
